"""The terminal question before a runbook step: what the step will do and what to expect, on stderr,
then the person's answer (no by default)."""

from __future__ import annotations

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
