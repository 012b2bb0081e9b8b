"""`sandbox up --dir` that cannot be a sandbox's directory exits 2 with one line, writing nothing.

A file, a path under a file, a directory nobody may write in (immutable, which binds root too), a
path in /proc; and a sandboxes root that cannot exist. Refused through the real CLI, which must
leave no sandbox, no registry entry and no ledger row behind.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import assert_up_refused, needs_etcd, sandbox_cli

REPO = Path(__file__).resolve().parents[2]
pytestmark = needs_etcd


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"




@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """A directory even root cannot write in (chattr +i), made writable again afterwards."""
    path.mkdir()
    flagged = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if flagged.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag: {flagged.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_dir_that_cannot_hold_a_sandbox_exits_2(home: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    assert_up_refused(home, ("--dir", str(a_file)), f"{a_file} is not a directory")
    assert_up_refused(home, ("--dir", str(a_file / "sub")), f"{a_file} is not a directory")
    assert_up_refused(home, ("--dir", "/proc/upgrader-sandbox"), "cannot create sandbox demo in /proc/upgrader-sandbox")
    assert a_file.read_text() == "not a directory"
    with immutable(tmp_path / "locked") as locked:
        assert_up_refused(home, ("--dir", str(locked)),
                          f"cannot create sandbox demo in {locked}: Operation not permitted")
        assert_up_refused(home, ("--dir", str(locked / "sub")), "Operation not permitted")
        assert list(locked.iterdir()) == []


def test_a_sandboxes_root_that_cannot_be_made_exits_2(tmp_path: Path) -> None:
    """XDG_DATA_HOME under a file: the root, its locks and the registry cannot exist."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    done = sandbox_cli(a_file / "home", "sandbox", "up", "demo")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot use" in done.stderr and "for sandboxes" in done.stderr, done.stderr
    listed = sandbox_cli(a_file / "home", "sandbox", "list", "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
