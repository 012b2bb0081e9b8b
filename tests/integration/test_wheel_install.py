"""The wheel is self-contained: built from this tree, installed from the lock into a fresh venv, it runs
from a directory outside the repository with its migrations inside it.

One module-scoped install (a build and two installs take ~10 s) serves every test here. The venv gets
the runtime set first, exactly as uv.lock pins it (no extras, so nothing a dev tool drags in can
hide an undeclared import), then the `postgres` extra from the same wheel.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.test_cli_usage import USAGE_ERRORS

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".tools" / "bin" / "uv"


def _uv(*args: str, cwd: Path = REPO) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run([str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"uv {' '.join(args)} failed:\n{proc.stderr}"
    return proc.stdout


def _locked(tmp: Path, *extras: str) -> Path:
    """uv.lock's set for these extras, with hashes, as a requirements file (upgrader itself left out)."""
    path = tmp / f"locked-{'-'.join(extras) or 'runtime'}.txt"
    _uv("export", "--frozen", "--no-emit-project", "--format", "requirements-txt", "--output-file", str(path),
        *(f"--extra={e}" for e in extras))
    return path


@dataclass
class Installed:
    venv: Path
    wheel: Path
    home: Path

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        base = {"PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home),
                "XDG_DATA_HOME": str(self.home / "data"), "LANG": "C.UTF-8"}
        return subprocess.run([str(self.venv / "bin" / "upgrader"), *args], cwd=self.home, env={**base, **(env or {})},
                              capture_output=True, text=True, timeout=120, check=False)

    def versions(self) -> dict[str, str]:
        out = _uv("pip", "freeze", "--python", str(self.venv / "bin" / "python"))
        return dict(line.split("==", 1) for line in out.splitlines() if "==" in line)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    if not UV.is_file():
        pytest.fail(f"{UV} is missing: run scripts/setup.sh (scripts/test.sh does)")
    tmp = tmp_path_factory.mktemp("wheel")
    _uv("build", "--wheel", "--out-dir", str(tmp / "dist"))
    (wheel,) = (tmp / "dist").glob("upgrader-*.whl")
    venv = tmp / "venv"
    _uv("venv", "--quiet", "--python", "python3", str(venv))
    python = str(venv / "bin" / "python")
    _uv("pip", "install", "--quiet", "--python", python, "--require-hashes", "-r", str(_locked(tmp)))
    _uv("pip", "install", "--quiet", "--python", python, "--no-deps", str(wheel))
    home = tmp / "home"  # the working directory: nowhere near the repository
    home.mkdir()
    yield Installed(venv, wheel, home)


def test_the_wheel_carries_migrations_playbooks_and_the_catalog(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert {"upgrader/migrations/env.py", "upgrader/migrations/script.py.mako",
            "upgrader/migrations/versions/0001_initial.py", "upgrader/playbooks/README.md",
            "upgrader/data/catalog.txt", *(f"upgrader/playbooks/upgrade/{role}.yaml" for role in
                                           ("first-control-plane", "control-plane", "worker"))} <= names
    assert not any(n.startswith(("tests/", "scripts/", "migrations/")) for n in names)


def test_the_venv_holds_exactly_the_locked_runtime_set(installed, tmp_path):
    locked, unconditional = {}, set()
    for line in _locked(tmp_path).read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split(" ")[0].split("==")
            locked[name.lower()] = version
            if ";" not in line:  # no environment marker (colorama, say, is for Windows only)
                unconditional.add(name.lower())
    got = {k.lower(): v for k, v in installed.versions().items() if k.lower() != "upgrader"}
    assert got == {name: locked[name] for name in got}
    assert unconditional <= set(got)
    assert "click" not in got  # only dev tools bring it: an `import click` would fail here


def test_version_and_a_usage_error_outside_the_repository(installed):
    version = installed.run("--version")
    assert version.returncode == 0 and version.stdout.startswith("upgrader ")
    for case in USAGE_ERRORS:
        argv, message = case.values
        r = installed.run(*argv)
        assert r.returncode == 2 and r.stderr.startswith("Usage: upgrader") and message in r.stderr, (argv, r.stderr)


def test_a_fresh_sqlite_ledger_is_migrated_from_inside_the_wheel(installed):
    kubeconfig = installed.home / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n"
        "contexts:\n- name: a\n  context: {cluster: c, user: u}\ncurrent-context: a\nusers:\n- name: u\n  user: {}\n")
    inventory = installed.home / "inventory.json"
    inventory.write_text(
        '{"cluster": "prod", "observed_at": "2026-11-30T00:00:00Z", "nodes": ['
        '{"name": "cp-1", "control_plane": true, "kubelet": "v1.31.4", "ready": true, "unschedulable": false,'
        ' "components": {"kube-apiserver": "v1.31.4", "kube-controller-manager": "v1.31.4",'
        ' "kube-scheduler": "v1.31.4", "etcd": "3.5.15-0"}},'
        '{"name": "w-1", "control_plane": false, "kubelet": "v1.31.4", "ready": true, "unschedulable": false}]}')
    env = {"UPGRADER_DB": str(installed.home / "fresh.db")}
    added = installed.run("cluster", "add", "prod", "--kubeconfig", str(kubeconfig), env=env)
    assert added.returncode == 0, added.stderr
    planned = installed.run("plan", "prod", "--to", "v1.33", "--state", str(inventory), "-o", "json", env=env)
    assert planned.returncode == 0, planned.stderr
    assert '"target": "v1.33.' in planned.stdout
    shown = installed.run("playbook", "show", "worker", "-o", "json")  # the plan expanded these very files
    assert shown.returncode == 0, shown.stderr
    assert 'site-packages/upgrader/playbooks/upgrade/worker.yaml"' in shown.stdout
    current = installed.run("db", "current", "-o", "json", env=env)
    assert current.returncode == 0 and '"up_to_date": true' in current.stdout


def test_the_postgres_extra_installs_from_the_wheel_and_reaches_postgresql(installed, postgres_url, tmp_path):
    python = str(installed.venv / "bin" / "python")
    _uv("pip", "install", "--quiet", "--python", python, "--require-hashes", "-r", str(_locked(tmp_path, "postgres")))
    # Installing the extra from the wheel itself adds nothing: the lock already brought psycopg.
    before = installed.versions()
    _uv("pip", "install", "--quiet", "--python", python, f"upgrader[postgres] @ {installed.wheel.as_uri()}")
    assert installed.versions() == before and "psycopg" in before
    env = {"UPGRADER_DB": postgres_url}
    upgraded = installed.run("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    current = installed.run("db", "current", "-o", "json", env=env)
    assert current.returncode == 0 and '"up_to_date": true' in current.stdout
