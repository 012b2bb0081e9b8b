"""apply's progress: a live table with one row per node on a terminal, one JSON line per transition otherwise."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from upgrader.cli.progress import Progress
from upgrader.engine.context import StepEvent


def _event(n: int, action: str, node: str | None, status: str, detail: str = "") -> StepEvent:
    return StepEvent(run_id=7, n=n, action=action, node=node, version="v1.31.4", status=status, detail=detail)


def test_the_live_view_keeps_the_latest_step_of_each_node() -> None:
    progress = Progress(total=27, live=False)
    progress._log = None  # the table alone, without configuring logging
    progress.report(_event(3, "upgrade-kubeadm", "cp-1", "running"))
    progress.report(_event(3, "upgrade-kubeadm", "cp-1", "succeeded"))
    progress.report(_event(15, "drain", "worker-1", "running"))
    progress.report(_event(20, "health-gate", None, "failed", "worker-1 NotReady"))
    out = io.StringIO()
    Console(file=out, width=120, force_terminal=False).print(progress._table())
    text = out.getvalue()
    rows = [line for line in text.splitlines() if "cp-1" in line or "worker-1" in line or "(cluster)" in line]
    assert len(rows) == 3
    assert "3/27" in rows[0] and "succeeded" in rows[0] and "running" not in rows[0]
    assert "drain" in rows[1] and "running" in rows[1]
    assert "(cluster)" in rows[2] and "failed" in rows[2] and "worker-1 NotReady" in rows[2]


def test_without_a_terminal_each_transition_is_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    import logging
    import sys

    with Progress(total=27, live=False) as progress:
        logging.getLogger().handlers[0].setStream(sys.stderr)  # the stream pytest captures
        progress.report(_event(4, "kubeadm-upgrade-apply", "cp-1", "running"))
        progress.report(_event(4, "kubeadm-upgrade-apply", "cp-1", "failed", "exit 1"))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert [(d["event"], d["step"], d["node"]) for d in lines] == [
        ("step_running", 4, "cp-1"), ("step_failed", 4, "cp-1")]
    assert lines[1]["detail"] == "exit 1" and lines[0]["run"] == 7
