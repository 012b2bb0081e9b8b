"""The pure rules of scheduled upgrades, in one place for the schedule service and CLI to import.

The rules live in smaller modules: windows (schedule_windows), freezes and ages (schedule_dates),
the policy value (schedule_policy), the channel's choice of target (schedule_targets), and step
estimates with the safe points where a closing window stops a run (schedule_timing).
"""

from __future__ import annotations

from upgrader.domain.schedule_dates import Freeze, describe_duration, format_age, frozen, parse_age, parse_freeze
from upgrader.domain.schedule_policy import (
    DEFAULT_MIN_RELEASE_AGE,
    Channel,
    SchedulePolicy,
    notify_problem,
    parse_channel,
    parse_schedule_target,
)
from upgrader.domain.schedule_targets import Decision, held_back, pick_target
from upgrader.domain.schedule_timing import (
    DEFAULT_STEP_SECONDS,
    default_seconds,
    estimate,
    hop_starts,
    pause_reason,
    step_estimates,
)
from upgrader.domain.schedule_windows import (
    Occurrence,
    Window,
    next_window,
    occurrences,
    parse_window,
    require_aware,
    wall_to_utc,
    window_at,
    windows_around,
)

__all__ = [
    "DEFAULT_MIN_RELEASE_AGE",
    "DEFAULT_STEP_SECONDS",
    "Channel",
    "Decision",
    "Freeze",
    "Occurrence",
    "SchedulePolicy",
    "Window",
    "default_seconds",
    "describe_duration",
    "estimate",
    "format_age",
    "frozen",
    "held_back",
    "hop_starts",
    "next_window",
    "notify_problem",
    "occurrences",
    "parse_age",
    "parse_channel",
    "parse_freeze",
    "parse_schedule_target",
    "parse_window",
    "pause_reason",
    "pick_target",
    "require_aware",
    "step_estimates",
    "wall_to_utc",
    "window_at",
    "windows_around",
]
