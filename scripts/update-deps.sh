#!/usr/bin/env bash
# Refresh uv.lock from what the registry serves today, install it, then run the whole suite.
#   scripts/update-deps.sh                       every dependency to its newest allowed version
#   scripts/update-deps.sh --upgrade-package X   only X (and what it needs)
# Commit pyproject.toml and uv.lock together once the tests pass. To move uv itself, change the
# pin and both hashes in scripts/uv-requirements.txt (x86_64 and aarch64 manylinux wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-sync
if [ $# -eq 0 ]; then set -- --upgrade; fi
UV_PYTHON_DOWNLOADS=never .tools/bin/uv lock "$@"
git --no-pager diff --stat -- uv.lock || true
bash scripts/test.sh
bash scripts/lint.sh
