"""A command that needs an outside program says which one is missing and which package has it, at once,
and leaves nothing behind. Each case runs with a PATH that lacks the program; nothing is uninstalled.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest


def _path_without(tmp: Path, missing: str, keep: tuple[str, ...]) -> str:
    """A PATH holding only links to the programs in ``keep``: ``missing`` cannot be found on it."""
    bin_dir = tmp / f"bin-without-{missing}"
    bin_dir.mkdir()
    for program in keep:
        real = shutil.which(program)
        assert real is not None, f"{program} must be installed for this test (scripts/setup.sh installs it)"
        os.symlink(real, bin_dir / program)
    return str(bin_dir)


@pytest.mark.parametrize(("missing", "package", "keep"), [
    ("etcd", "etcd-server", ("etcdctl",)),
    ("etcdctl", "etcd-client", ("etcd",)),
])
def test_sandbox_up_without_a_program_exits_2_at_once_naming_its_package(cli, missing, package, keep):
    started = time.monotonic()
    r = cli("sandbox", "up", "t1", "--wait", "60s", env={"PATH": _path_without(cli.tmp, missing, keep)})
    elapsed = time.monotonic() - started
    assert r.code == 2, r.err
    assert r.err.strip() == f"error: {missing} not found on PATH: install Debian's {package}, or run scripts/setup.sh"
    # It did not start a supervisor and wait out --wait for a program that was never there.
    assert elapsed < 20
    assert not (cli.tmp / "xdg" / "upgrader" / "sandboxes").exists()
    assert not cli.db.exists()
