#!/usr/bin/env bash
# Static checks CI runs beside the tests: ruff (style, bugs), mypy (strict on the domain), import-linter (layers).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "run scripts/test.sh once first (it creates .venv)" >&2; exit 2; }
.venv/bin/ruff check upgrader tests scripts migrations
.venv/bin/mypy upgrader
.venv/bin/lint-imports
