"""A sandbox name never reaches outside the sandboxes root, and `down` deletes only what `up` made.

Crafted names (``../x``, ``..``, ``a/b``, ...) are refused (exit 2, one line) by every command that
takes a NAME before a path is built from it, and a decoy directory where such a name would have
led, holding a config.json that names it, survives. Valid names that lead to a directory `up` did
not make (one placed in the root by hand, a registry entry pointing elsewhere, a config.json naming
another directory) are refused too: deleting needs the marker `up` writes when it creates a sandbox.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import sandbox_cli
from upgrader.errors import InvalidNameError
from upgrader.sandbox.lifecycle.registry import locate
from upgrader.sandbox.lifecycle.root import NameLock
from upgrader.services import sandbox as service
from upgrader.services.wiring import AppContext

ABSOLUTE = "<absolute>"  # replaced by a path in the test's tmp dir
CRAFTED = ["../x", "..", "a/b", "../../..", ABSOLUTE, "x\n", "x/../y", ".hidden", ""]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UPGRADER_DB", str(tmp_path / "ledger.db"))
    _root(tmp_path / "home").mkdir(parents=True)  # as on any machine that ran a sandbox: `..` resolves through it
    return tmp_path / "home"


def _root(home: Path) -> Path:
    return home / "upgrader" / "sandboxes"


def _decoy(path: Path, name: str) -> Path:
    """A directory holding a config.json that names it (as a sandbox called ``name``) and a file to lose."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({
        "name": name, "dir": str(path), "version": "v1.30.6", "control_planes": ["cp-1"], "workers": ["worker-1"],
        "lb_port": 1, "apiserver_ports": {"cp-1": 2}, "etcd_client_ports": {"cp-1": 3},
        "etcd_peer_ports": {"cp-1": 4}}))
    (path / "precious").write_text("keep me")
    return path


def _intact(path: Path) -> bool:
    return (path / "precious").read_text() == "keep me" and (path / "config.json").exists()


def _refused(done: subprocess.CompletedProcess[str], *, says: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _crafted(home: Path, name: str) -> str:
    return str(home.parent / "absolute-decoy") if name == ABSOLUTE else name


@pytest.mark.parametrize("name", [*CRAFTED, "x\0", "Demo", "-x", "x\u0661"])
def test_every_sandbox_function_refuses_a_crafted_name_before_building_a_path(home: Path, name: str) -> None:
    root = _root(home)
    name = _crafted(home, name)
    decoy = _decoy((root / name.replace("\0", "")).resolve(), name)
    app = AppContext(db=None)
    calls = {
        "locate": lambda: locate(name),
        "lock": lambda: NameLock(name, doing="stopped"),
        "down": lambda: service.down(app, name=name, keep=False),
        "down --keep": lambda: service.down(app, name=name, keep=True),
        "status": lambda: service.status(name=name),
        "fault": lambda: service.inject_fault(name=name, spec="drain-blocked:worker-1"),
        "fault --clear": lambda: service.clear_faults(name=name, spec=None),
        "exec": lambda: service.exec_on_node(app, name=name, node="cp-1", argv=["true"], timeout=5),
        "up": lambda: service.up(app, service.UpRequest(name=name), register=False),
    }
    try:
        for what, call in calls.items():
            with pytest.raises(InvalidNameError, match="invalid sandbox name"):
                call()
            assert _intact(decoy), what
    finally:
        app.close()
    assert not (root / ".locks").exists() or not any((root / ".locks").iterdir())  # no lock file either


@pytest.mark.parametrize("name", CRAFTED[:6])
def test_crafted_names_on_the_command_line(home: Path, name: str) -> None:
    """`down` and friends exit 2 with one line and leave a decoy where the name would lead alone."""
    name = _crafted(home, name)
    decoy = _decoy((_root(home) / name).resolve(), name)
    for args in (("down", name), ("down", name, "--keep"), ("status", name), ("fault", name, "--clear"),
                 ("exec", name, "cp-1", "--", "true")):
        _refused(sandbox_cli(home, "sandbox", *args), says="invalid sandbox name")
        assert _intact(decoy), args


def test_down_deletes_only_a_directory_up_made(home: Path) -> None:
    root = _root(home)
    placed = _decoy(root / "victim", "victim")  # a valid name, a config.json naming itself, no marker
    outside = _decoy(home.parent / "outside", "elsewhere")
    root.mkdir(parents=True, exist_ok=True)
    (root / "registry.json").write_text(json.dumps({"elsewhere": str(outside)}))
    elsewhere = home.parent / "elsewhere-target"
    (elsewhere / "precious").parent.mkdir()
    (elsewhere / "precious").write_text("keep me")
    liar = _decoy(root / "liar", "liar")
    cfg = json.loads((liar / "config.json").read_text())
    (liar / "config.json").write_text(json.dumps({**cfg, "dir": str(elsewhere)}))

    for name, where in (("victim", placed), ("elsewhere", outside)):
        _refused(sandbox_cli(home, "sandbox", "down", name), says="was not made by `upgrader sandbox up`")
        assert _intact(where), name
    _refused(sandbox_cli(home, "sandbox", "down", "liar"), says="holds no sandbox 'liar'")
    assert (elsewhere / "precious").exists() and _intact(liar)
    _refused(sandbox_cli(home, "sandbox", "status", "liar"), says="holds no sandbox 'liar'")

    # --keep deletes nothing, so it may stop the processes of a sandbox made before the marker existed
    kept = sandbox_cli(home, "sandbox", "down", "victim", "--keep")
    assert kept.returncode == 0, kept.stderr
    assert _intact(placed)



@pytest.mark.parametrize("registry", ["null", '{"demo": 5}', "[1, 2]", '{"../x": "/tmp"}', '{"demo": "relative/dir"}',
                                      "not json", '{"demo": null}'])
def test_a_damaged_registry_never_makes_a_command_fail(home: Path, registry: str) -> None:
    (_root(home) / "registry.json").write_text(registry)
    listed = sandbox_cli(home, "sandbox", "list", "-o", "json")
    assert (listed.returncode, json.loads(listed.stdout or "null")) == (0, []), listed.stderr
    _refused(sandbox_cli(home, "sandbox", "status", "demo"), says="no sandbox named 'demo'")
    gone = sandbox_cli(home, "sandbox", "down", "demo")
    assert gone.returncode == 0 and "Traceback" not in gone.stderr, gone.stderr
