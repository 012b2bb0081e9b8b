#!/usr/bin/env bash
# The one test command: sets up everything a fresh machine lacks, then runs the whole suite.
#   scripts/test.sh                 every test (unit, CLI, integration on SQLite/PostgreSQL/etcd, e2e on a sandbox)
#   scripts/test.sh tests/unit -q   any pytest arguments narrow it
#   scripts/test.sh -n 0 ...        one process (easier to read a failing test's output)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two processes, a test file each at a time (a module's tests share one sandbox): sandbox tests spend
# most of their time waiting on the cluster, so two run side by side on a 2-core machine. `-n 0`
# (or any -n) given here overrides it; UPGRADER_TEST_PROCESSES sets the default.
spread=(-n "${UPGRADER_TEST_PROCESSES:-2}" --dist loadfile)
for arg in "$@"; do
  case $arg in -n|-n[0-9]*|--numprocesses*|--dist*) spread=() ;; esac
done
exec .venv/bin/python -m pytest "${spread[@]}" "$@"
