"""A cluster's schedule policy: when it may be upgraded, to what, and how carefully.

The policy is a value: constructing one validates it (messages name the ``schedule set`` option),
and :meth:`SchedulePolicy.from_dict` reads the stored JSON document back, naming the field that is
wrong. Whether ``tz`` names a real zone is checked where the zone database is read, not here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from upgrader.domain.schedule_dates import Freeze, format_age, parse_age, parse_freeze
from upgrader.domain.schedule_windows import Window, parse_window
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Minor, Version, parse_target
from upgrader.errors import InvalidScheduleError, InvalidVersionError

DEFAULT_MIN_RELEASE_AGE = 14 * 86400.0
MAX_NOTIFY_LENGTH = 2048
MAX_UNAVAILABLE = 10000
MAX_HORIZON_DAYS = 365
MAX_AGE = 365 * 86400.0


class Channel(StrEnum):
    PATCH = "patch"  # the newest patch of the current minor
    MINOR = "minor"  # the next minor once its newest patch is old enough, else the patch rule
    PINNED = "pinned"  # the given target, and no further


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    windows: tuple[Window, ...]
    tz: str = "UTC"
    channel: Channel = Channel.PATCH
    target: Version | Minor | None = None  # pinned only; a Minor means its newest allowed patch
    min_release_age: float = DEFAULT_MIN_RELEASE_AGE  # seconds
    freezes: tuple[Freeze, ...] = ()
    max_unavailable: int = 1
    auto_rollback: bool = True
    notify: str | None = None  # a webhook (http or https) that gets each tick's JSON summary
    cert_horizon_days: int = 30  # renew certificates that expire within this many days

    def __post_init__(self) -> None:
        _check_policy({name: getattr(self, name) for name in _FIELDS}, _OPTIONS)

    def with_changes(self, **given: Any) -> SchedulePolicy:
        """A copy with some fields replaced, validated again."""
        return replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        """The stored document: JSON types only, the same keys every time."""
        return {
            "windows": [w.to_text() for w in self.windows],
            "tz": self.tz,
            "channel": str(self.channel),
            "target": str(self.target) if self.target is not None else None,
            "min_release_age": self.min_release_age,
            "freezes": [f.to_text() for f in self.freezes],
            "max_unavailable": self.max_unavailable,
            "auto_rollback": self.auto_rollback,
            "notify": self.notify,
            "cert_horizon_days": self.cert_horizon_days,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SchedulePolicy:
        """The inverse of :meth:`to_dict`; InvalidScheduleError names the field that is wrong."""
        if not isinstance(doc, Mapping):
            raise InvalidScheduleError(f"schedule policy: expected a JSON object, got {type(doc).__name__}")
        unknown = sorted(str(k) for k in doc if k not in _FIELDS)
        if unknown:
            raise InvalidScheduleError(f"schedule policy: unknown field(s) {', '.join(unknown)}")
        if "windows" not in doc:
            raise InvalidScheduleError("schedule policy: field 'windows' is missing")
        labels = {name: f"schedule policy field '{name}'" for name in _FIELDS}
        given = {name: _READERS[name](doc[name], labels[name]) for name in _FIELDS if name in doc}
        _check_policy({name: given.get(name, _DEFAULTS.get(name)) for name in _FIELDS}, labels)
        return cls(**given)

    def describe_age(self) -> str:
        return format_age(self.min_release_age)


_FIELDS = ("windows", "tz", "channel", "target", "min_release_age", "freezes", "max_unavailable", "auto_rollback",
           "notify", "cert_horizon_days")
_OPTIONS = {"windows": "--window", "tz": "--tz", "channel": "--channel", "target": "--target",
            "min_release_age": "--min-release-age", "freezes": "--freeze", "max_unavailable": "--max-unavailable",
            "auto_rollback": "--auto-rollback", "notify": "--notify", "cert_horizon_days": "--cert-horizon-days"}
_DEFAULTS = {f.name: f.default for f in fields(SchedulePolicy) if f.name != "windows"}
_Fail = Callable[[str, str], InvalidScheduleError]


def _check_policy(values: Mapping[str, Any], labels: Mapping[str, str]) -> None:
    """Every field's rule; ``labels`` say how a message names a field (an option, or a stored field)."""

    def fail(name: str, why: str) -> InvalidScheduleError:
        return InvalidScheduleError(f"{labels[name]}: {why}")

    p = _Values(values)

    if not isinstance(p.windows, tuple) or not all(isinstance(w, Window) for w in p.windows):
        raise fail("windows", "expected windows")
    if not p.windows:
        raise fail("windows", "at least one window is needed (nothing runs outside a window)")
    if not isinstance(p.tz, str) or not p.tz.strip() or len(p.tz) > 255:
        raise fail("tz", f"{excerpt(p.tz)} is not a time zone name")
    if not isinstance(p.channel, Channel):
        raise fail("channel", f"{excerpt(p.channel)} is not patch, minor or pinned")
    _check_target(p, fail)
    age = p.min_release_age
    if isinstance(age, bool) or not isinstance(age, int | float) or not (math.isfinite(age) and 0 <= age <= MAX_AGE):
        raise fail("min_release_age", f"{excerpt(age)} is not 0 to 365 days in seconds")
    if not isinstance(p.freezes, tuple) or not all(isinstance(f, Freeze) for f in p.freezes):
        raise fail("freezes", "expected freezes")
    _check_int(p.max_unavailable, 1, MAX_UNAVAILABLE, lambda why: fail("max_unavailable", why))
    if not isinstance(p.auto_rollback, bool):
        raise fail("auto_rollback", f"{excerpt(p.auto_rollback)} is not true or false")
    if p.notify is not None:
        problem = notify_problem(p.notify)
        if problem:
            raise fail("notify", f"{excerpt(p.notify)}: {problem}")
    _check_int(p.cert_horizon_days, 1, MAX_HORIZON_DAYS, lambda why: fail("cert_horizon_days", why))


class _Values:
    """The fields to check, read as attributes."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # for mypy: every field is there
        raise AttributeError(name)


def _check_target(p: _Values, fail: _Fail) -> None:
    if p.target is not None and not isinstance(p.target, Version | Minor):
        raise fail("target", f"{excerpt(p.target)} is not a version")
    if p.channel is Channel.PINNED and p.target is None:
        raise fail("target", "the pinned channel needs a target (vX.Y or vX.Y.Z)")
    if p.channel is not Channel.PINNED and p.target is not None:
        raise fail("target", f"a target is only for the pinned channel (this one is {p.channel})")


def _check_int(value: object, low: int, high: int, fail: Callable[[str], InvalidScheduleError]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise fail(f"{excerpt(value)} is not a whole number from {low} to {high}")


def notify_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook, or None: http or https with a host, no spaces, <= 2048 chars."""
    if not isinstance(url, str) or not url:
        return "expected an http or https URL"
    if len(url) > MAX_NOTIFY_LENGTH:
        return f"longer than {MAX_NOTIFY_LENGTH} characters"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "a URL has no spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as e:
        return f"not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are allowed"
    if not parts.hostname:
        return "the URL has no host"
    return None


# Readers of the stored document: each turns a JSON value into the field's type or raises naming it.
def _read_windows(value: Any, label: str) -> tuple[Window, ...]:
    return tuple(parse_window(w, option=label) for w in _list(value, label))


def _read_freezes(value: Any, label: str) -> tuple[Freeze, ...]:
    return tuple(parse_freeze(f, option=label) for f in _list(value, label))


def _read_channel(value: Any, label: str) -> Channel:
    try:
        return Channel(value)
    except ValueError as e:
        raise InvalidScheduleError(f"{label}: {excerpt(value)} is not patch, minor or pinned") from e


def _read_target(value: Any, label: str) -> Version | Minor | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_target(value)
        raise InvalidScheduleError(f"{label}: {excerpt(value)} is not a version (vX.Y or vX.Y.Z)")
    except InvalidVersionError as e:
        raise InvalidScheduleError(f"{label}: {e}") from e


def _read_age(value: Any, label: str) -> float:
    if isinstance(value, str):
        return parse_age(value, option=label)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _same(value: Any, label: str) -> Any:
    return value  # checked with the rest of the policy


def _list(value: Any, label: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidScheduleError(f"{label}: expected a list, got {type(value).__name__}")
    return value


_READERS: dict[str, Any] = {
    "windows": _read_windows, "tz": _same, "channel": _read_channel, "target": _read_target,
    "min_release_age": _read_age, "freezes": _read_freezes, "max_unavailable": _same, "auto_rollback": _same,
    "notify": _same, "cert_horizon_days": _same,
}


def parse_channel(text: str, *, option: str = "--channel") -> Channel:
    return _read_channel(text.strip().lower() if isinstance(text, str) else text, option)


def parse_schedule_target(text: str, *, option: str = "--target") -> Version | Minor:
    target = _read_target(text, option)
    assert target is not None
    return target
