"""The terminal question before a runbook step: what the step will do and what to expect, on stderr,
then the person's answer (no by default)."""

from __future__ import annotations

from pathlib import Path

import pytest

from upgrader.cli import runbook
from upgrader.domain.plans import Action, Reversibility, Step

STEP = Step(n=2, action=Action.UNCORDON_LEFT_BY_UPGRADER, node=None, version=None, batch=None,
            reversibility=Reversibility.NONE,
            params={"name": "uncordon", "title": "Uncordon the nodes", "with": {}, "confirm": True,
                    "expect": "only marked nodes"})


@pytest.mark.parametrize("answer", [True, False])
def test_ask_shows_the_step_and_returns_the_answer(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], answer: bool) -> None:
    asked: list[tuple[str, bool]] = []

    def confirm(text: str, default: bool = False, err: bool = False) -> bool:
        asked.append((text, default))
        return answer

    monkeypatch.setattr(runbook.typer, "confirm", confirm)
    assert runbook.ask(STEP, ["PATCH node w-1: spec.unschedulable=false"]) is answer
    err = capsys.readouterr().err
    assert "step 2: Uncordon the nodes" in err and "PATCH node w-1" in err and "expect: only marked nodes" in err
    assert asked == [("Run this step?", False)]


def test_end_of_input_at_the_prompt_is_no_answer_and_ctrl_c_stays_an_interrupt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    class Interrupted(io.StringIO):
        def readline(self, size: int | None = -1) -> str:
            raise KeyboardInterrupt

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # Ctrl-D, a closed pipe
    with pytest.raises(EOFError):
        runbook.ask(STEP, [])
    monkeypatch.setattr("sys.stdin", Interrupted())
    with pytest.raises(KeyboardInterrupt):
        runbook.ask(STEP, [])


def test_a_run_whose_prompt_meets_end_of_input_is_interrupted_resumable_and_records_no_answer(
        tmp_path: Path) -> None:
    from tests.unit.node_world import CLUSTER, NodeWorld
    from tests.unit.test_runbook_runs import OPTIONS, cordon, events, node
    from upgrader.domain.runs import RunStatus
    from upgrader.services import apply, runbooks

    world = NodeWorld(tmp_path, control_planes=1, workers=1, version="v1.33.6")
    cordon(world, "w-1", "7")

    def no_input(step: Step, lines: list[str]) -> bool:
        raise EOFError

    previewed = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {})
    stopped = runbooks.run(world.app, previewed, confirm=no_input, options=OPTIONS)
    assert stopped.run.status is RunStatus.INTERRUPTED
    assert "step 2 (uncordon) not confirmed: no answer (end of input)" in (stopped.run.outcome or {})["reason"]
    assert [(e["step"], e["answered"]) for e in events(world, "runbook-step-declined")] == [
        (2, "no answer (end of input)")]
    assert node(world, "w-1")["spec"]["unschedulable"] is True  # nothing of the step ran
    done = apply.resume(world.app, stopped.run.id, yes=True)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
