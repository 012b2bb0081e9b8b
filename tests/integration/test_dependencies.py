"""Dependency hygiene, checked for real: the lock guards pyproject.toml, deptry catches an undeclared
import, and no code reaches into a library's private modules.

The first two run the same tools scripts/lint.sh runs, on a copy of the project with one thing
planted, so they prove the checks can fail (and keep failing if someone loosens their config).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".tools" / "bin" / "uv"
DEPTRY = REPO / ".venv" / "bin" / "deptry"


def _copy_project(tmp: Path) -> Path:
    project = tmp / "project"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(REPO / name, project / name)
    for name in ("upgrader", "migrations", "playbooks"):
        shutil.copytree(REPO / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_lock_check_passes_as_committed_and_fails_when_pyproject_changes(tmp_path):
    if not UV.is_file():
        pytest.fail(f"{UV} is missing: run scripts/setup.sh (scripts/test.sh does)")
    project = _copy_project(tmp_path)
    check = [str(UV), "lock", "--check", "--offline"]
    assert _run(check, project).returncode == 0, "uv.lock is out of date: run scripts/update-deps.sh"
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"pyyaml>=6",', '"pyyaml>=6",\n  "six>=1.16",'))
    refused = _run(check, project)
    assert refused.returncode != 0
    lock_before = (REPO / "uv.lock").read_text()
    assert (project / "uv.lock").read_text() == lock_before  # a check never rewrites the lock


@pytest.mark.parametrize(("module", "planted", "name"), [
    ("upgrader/cli/__init__.py", "import click\n", "click"),  # what typer 0.28 broke
    ("upgrader/ledger/db.py", "from pydantic import BaseModel\n", "pydantic"),  # the kubernetes client has it
])
def test_deptry_refuses_an_import_that_pyproject_does_not_declare(tmp_path, module, planted, name):
    project = _copy_project(tmp_path)
    assert _run([str(DEPTRY), "upgrader", "migrations"], project).returncode == 0
    path = project / module
    source = path.read_text()
    anchor = "from __future__ import annotations\n"
    path.write_text(source.replace(anchor, anchor + planted, 1))
    refused = _run([str(DEPTRY), "upgrader", "migrations"], project)
    assert refused.returncode != 0
    assert f"'{name}' imported but" in refused.stdout + refused.stderr


def _imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _private_imports(path: Path) -> list[str]:
    """Modules of other libraries this file imports through a private (underscored) part."""
    private = []
    for name in _imported_modules(path):
        parts = name.split(".")
        if parts[0] not in ("upgrader", "tests", "__future__") and any(p.startswith("_") for p in parts):
            private.append(name)
    return private


def test_no_code_imports_a_private_module_of_another_library():
    offenders = [f"{path.relative_to(REPO)}: {name}"
                 for root in ("upgrader", "migrations", "scripts", "tests")
                 for path in (REPO / root).rglob("*.py") for name in _private_imports(path)]
    assert offenders == []


def test_the_private_module_check_sees_a_planted_one(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("from __future__ import annotations\nfrom typer._click import exceptions\nimport os._x\n")
    assert _private_imports(planted) == ["typer._click", "os._x"]
