"""`sandbox up` refuses node counts beyond what one small machine holds: exit 2, one line, nothing written.

The bounds (7 control planes, 60 workers; see MAX_CONTROL_PLANES in upgrader/sandbox/lifecycle/up.py
for what a node costs) are documented in `--help`. Refused through the real CLI, which must leave no
sandbox, no registry entry and no ledger row behind.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import assert_up_refused, needs_etcd
from upgrader.sandbox.lifecycle.up import MAX_CONTROL_PLANES, MAX_WORKERS, UpRequest, _check_request

REPO = Path(__file__).resolve().parents[2]
pytestmark = needs_etcd


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"




@pytest.mark.parametrize(("args", "says"), [
    (("--control-planes", str(MAX_CONTROL_PLANES + 1)), f"at most {MAX_CONTROL_PLANES} control-plane nodes"),
    (("--control-planes", "100"), f"at most {MAX_CONTROL_PLANES} control-plane nodes"),
    (("--control-planes", "0"), f"at least one control-plane node (--control-planes 1 to {MAX_CONTROL_PLANES})"),
    (("--workers", str(MAX_WORKERS + 1)), f"at most {MAX_WORKERS} workers"),
    (("--workers", "-1"), f"--workers must be 0 or more (at most {MAX_WORKERS})"),
])
def test_node_counts_beyond_the_bounds_exit_2(home: Path, args: tuple[str, ...], says: str) -> None:
    assert_up_refused(home, args, says)


def test_help_documents_the_bounds() -> None:
    done = subprocess.run([sys.executable, "-m", "upgrader", "sandbox", "up", "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=True)
    flat = " ".join(done.stdout.split())
    assert f"Control-plane nodes, 1 to {MAX_CONTROL_PLANES}" in flat
    assert f"Worker nodes, 0 to {MAX_WORKERS}" in flat


def test_the_bounds_hold_the_3_plus_50_sandbox_the_apply_benchmark_upgrades() -> None:
    _check_request(UpRequest(name="benchapply", version="v1.30.6", control_planes=3, workers=50))  # no UsageError
