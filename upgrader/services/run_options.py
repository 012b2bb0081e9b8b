"""The options of a run, with the pace of its health gates settable for every kind of run.

``apply`` takes ``--gate-interval``/``--gate-passes``; a rollback, a certificate renewal, a runbook
and a scheduled tick have no such flags. ``UPGRADER_GATE_INTERVAL`` (seconds between a gate's
readings, default 2) and ``UPGRADER_GATE_PASSES`` (good readings in a row, default 3) set the pace of
every run started without the flags: a rehearsal on a sandbox can go faster than production, where the
defaults' flap damping is wanted. The pace is stored with the run, so ``resume`` keeps it.
"""

from __future__ import annotations

import math
import os
from typing import Any

from upgrader.domain.text import excerpt
from upgrader.engine.context import ApplyOptions
from upgrader.errors import UsageError

INTERVAL_ENV = "UPGRADER_GATE_INTERVAL"
PASSES_ENV = "UPGRADER_GATE_PASSES"
MIN_INTERVAL, MAX_INTERVAL = 0.1, 60.0
MAX_PASSES = 100


def gate_pace() -> dict[str, Any]:
    """The gate options the environment sets ({} when it sets none); UsageError (exit 2) when malformed."""
    pace: dict[str, Any] = {}
    interval = os.environ.get(INTERVAL_ENV)
    if interval:
        try:
            seconds = float(interval)
        except ValueError:
            seconds = math.nan
        if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise UsageError(f"{INTERVAL_ENV}={excerpt(interval)}: expected seconds from {MIN_INTERVAL:g} "
                             f"to {MAX_INTERVAL:g}")
        pace["gate_interval"] = seconds
    passes = os.environ.get(PASSES_ENV)
    if passes:
        if not passes.isascii() or not passes.isdigit() or not 1 <= int(passes) <= MAX_PASSES:
            raise UsageError(f"{PASSES_ENV}={excerpt(passes)}: expected a whole number from 1 to {MAX_PASSES}")
        pace["gate_passes"] = int(passes)
    return pace


def run_options(**given: Any) -> ApplyOptions:
    """ApplyOptions from ``given``, the gate pace not given taken from the environment."""
    return ApplyOptions(**(gate_pace() | given))
