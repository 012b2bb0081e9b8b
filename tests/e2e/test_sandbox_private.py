"""A sandbox's directories are its user's alone: the root, each sandbox, `nodes` and every node root
are 0700 (etcd data, kubeconfigs and keys live there); kubeconfigs and the marker are 0600. An
empty `--dir` the user gave is made 0700 too, and `down` empties it but leaves it where it was."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.e2e.conftest import Cli


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sandbox_directories_are_private(cli: Cli, tmp_path: Path) -> None:
    info = cli.up("private", "--control-planes", "1", "--workers", "1")
    sandbox_dir = Path(info["dir"])
    root = cli.home / "upgrader" / "sandboxes"
    assert sandbox_dir.parent == root
    # $XDG_DATA_HOME/upgrader is made by the first command to need it, and also holds the ledger
    for d in (root.parent, root, sandbox_dir, sandbox_dir / "nodes", sandbox_dir / "nodes" / "cp-1",
              sandbox_dir / "nodes" / "worker-1", sandbox_dir / "nodes" / "cp-1" / "var" / "lib" / "etcd"):
        assert _mode(d) == 0o700, (d, oct(_mode(d)))
    for f in (sandbox_dir / "kubeconfig", sandbox_dir / ".upgrader-sandbox", root / "registry.json",
              sandbox_dir / "nodes" / "cp-1" / "etc" / "kubernetes" / "admin.conf"):
        assert _mode(f) == 0o600, (f, oct(_mode(f)))

    given = tmp_path / "given"
    given.mkdir(mode=0o755)
    cli.up("given", "--dir", str(given), "--control-planes", "1", "--workers", "0")
    assert _mode(given) == 0o700 and _mode(given / "nodes" / "cp-1") == 0o700
    cli.run("sandbox", "down", "given")
    assert given.is_dir() and list(given.iterdir()) == []
