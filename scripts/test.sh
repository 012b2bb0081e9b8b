#!/usr/bin/env bash
# The one test command: sets up everything a fresh machine lacks, then runs the whole suite.
#   scripts/test.sh                 every test (unit, CLI, integration on SQLite/PostgreSQL/etcd, e2e on a sandbox)
#   scripts/test.sh tests/unit -q   any pytest arguments narrow it
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
