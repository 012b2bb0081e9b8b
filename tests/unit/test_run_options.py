"""The gate pace of runs started without apply's flags: UPGRADER_GATE_INTERVAL / UPGRADER_GATE_PASSES."""

from __future__ import annotations

import pytest

from upgrader.errors import UsageError
from upgrader.services.run_options import INTERVAL_ENV, PASSES_ENV, run_options


def test_defaults_without_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INTERVAL_ENV, raising=False)
    monkeypatch.delenv(PASSES_ENV, raising=False)
    options = run_options(auto_rollback=False)
    assert (options.gate_interval, options.gate_passes, options.auto_rollback) == (2.0, 3, False)


def test_the_environment_sets_the_pace_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0.5")
    monkeypatch.setenv(PASSES_ENV, "2")
    assert (run_options().gate_interval, run_options().gate_passes) == (0.5, 2)
    given = run_options(gate_passes=7, gate_interval=1.0)
    assert (given.gate_interval, given.gate_passes) == (1.0, 7)
    assert run_options().to_dict()["gate_passes"] == 2, "stored with the run, so resume keeps the pace"


@pytest.mark.parametrize(("name", "value", "says"), [
    (INTERVAL_ENV, "fast", "expected seconds from 0.1 to 60"),
    (INTERVAL_ENV, "0", "expected seconds from 0.1 to 60"),
    (INTERVAL_ENV, "nan", "expected seconds from 0.1 to 60"),
    (INTERVAL_ENV, "3600", "expected seconds from 0.1 to 60"),
    (PASSES_ENV, "0", "expected a whole number from 1 to 100"),
    (PASSES_ENV, "2.5", "expected a whole number from 1 to 100"),
    (PASSES_ENV, "-1", "expected a whole number from 1 to 100"),
    (PASSES_ENV, "\u0661", "expected a whole number from 1 to 100"),
])
def test_a_malformed_pace_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                         says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UsageError) as refused:
        run_options()
    assert refused.value.exit_code == 2
    assert str(refused.value).startswith(f"{name}=") and says in str(refused.value)
