#!/usr/bin/env bash
# Static checks CI runs beside the tests: ruff (style, bugs), mypy (strict on the domain),
# import-linter (layers), deptry (every import declared in pyproject.toml, nothing declared unused),
# and the lock (uv.lock must match pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "run scripts/setup.sh once first (it creates .venv)" >&2; exit 2; }
.tools/bin/uv lock --check --offline --quiet || {
  echo "uv.lock does not match pyproject.toml: run scripts/update-deps.sh" >&2; exit 1; }
.venv/bin/ruff check upgrader tests scripts migrations
.venv/bin/mypy upgrader
.venv/bin/lint-imports
.venv/bin/deptry upgrader migrations
