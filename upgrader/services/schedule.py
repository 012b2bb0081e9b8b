"""`upgrader schedule set|show|clear|list`: a cluster's maintenance windows, freezes and channel.

The policy is validated whole (domain.schedule) before anything is written, and stored in the
cluster's row as one JSON document with who set it and when. ``set`` changes only the fields it is
given, so `schedule set prod --freeze 2026-12-20..2027-01-05` keeps the windows; a new schedule needs
at least one window. ``set_at`` also tells the tick which rolled-back runs an operator has seen:
a target a scheduled run was rolled back from is not tried again until the schedule is set anew.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from upgrader.domain.names import validate_name
from upgrader.domain.records import ClusterRecord
from upgrader.domain.schedule import (
    Channel,
    Occurrence,
    SchedulePolicy,
    frozen,
    parse_age,
    parse_channel,
    parse_freeze,
    parse_schedule_target,
    parse_window,
    windows_around,
)
from upgrader.domain.text import excerpt
from upgrader.errors import InvalidScheduleError
from upgrader.services.audit import record_event
from upgrader.services.wiring import AppContext

META = ("set_at", "set_by")  # stored beside the policy's own fields


def load_zone(name: str) -> tzinfo:
    """An IANA zone by name (``Europe/Berlin``, ``UTC``), from the system's or Python's tz database."""
    if not name or len(name) > 64 or name.startswith("/") or ".." in name or not name.isascii():
        raise InvalidScheduleError(f"--tz {excerpt(name)}: not a time zone name (e.g. Europe/Berlin or UTC)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidScheduleError(f"--tz {excerpt(name)}: unknown time zone (e.g. Europe/Berlin or UTC)") from None


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A cluster's schedule as stored, and where it stands at ``now``."""

    cluster: str
    policy: SchedulePolicy
    set_at: str | None
    set_by: str | None
    window: Occurrence | None  # the window open now
    next_window: Occurrence | None
    frozen_until: str | None  # the freeze in force now: its last day

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "policy": shown_policy(self.policy), "set_at": self.set_at,
                "set_by": self.set_by, "open_window": _occurrence(self.window),
                "next_window": _occurrence(self.next_window), "frozen_until": self.frozen_until}


def shown_policy(policy: SchedulePolicy) -> dict[str, Any]:
    """The policy to print or record in an event: the webhook URL without its query, fragment or user
    part, which may carry a token."""
    doc = policy.to_dict()
    if doc.get("notify"):
        from upgrader.web.webhook import safe_url

        doc["notify"] = safe_url(str(doc["notify"]))
    return doc


def _occurrence(occ: Occurrence | None) -> dict[str, str] | None:
    if occ is None:
        return None
    return {"start": occ.start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": occ.end.strftime("%Y-%m-%dT%H:%M:%SZ")}


def policy_of(record: ClusterRecord) -> SchedulePolicy | None:
    if not record.schedule:
        return None
    doc = {k: v for k, v in record.schedule.items() if k not in META}
    return SchedulePolicy.from_dict(doc)


def describe(record: ClusterRecord, policy: SchedulePolicy, now: datetime) -> Scheduled:
    zone = load_zone(policy.tz)
    freeze = frozen(policy.freezes, zone, now)
    meta = record.schedule or {}
    window, upcoming = windows_around(policy.windows, zone, now)
    return Scheduled(cluster=record.name, policy=policy, set_at=meta.get("set_at"), set_by=meta.get("set_by"),
                     window=window, next_window=upcoming,
                     frozen_until=freeze.end.isoformat() if freeze is not None else None)


def parse_changes(given: Mapping[str, Any]) -> dict[str, Any]:
    """The `schedule set` options given (raw text) as policy fields; each bad one names itself."""
    changes: dict[str, Any] = {}
    if "window" in given:
        changes["windows"] = tuple(parse_window(w) for w in given["window"])
    if "tz" in given:
        load_zone(str(given["tz"]))
        changes["tz"] = str(given["tz"])
    if "channel" in given:
        changes["channel"] = parse_channel(str(given["channel"]))
        if changes["channel"] is not Channel.PINNED and "target" not in given:
            changes["target"] = None  # leaving pinned drops its target
    if "target" in given:
        changes["target"] = parse_schedule_target(str(given["target"]))
    if "min_release_age" in given:
        changes["min_release_age"] = parse_age(str(given["min_release_age"]))
    if "freeze" in given:
        texts = list(given["freeze"])
        changes["freezes"] = () if texts == ["none"] else tuple(parse_freeze(f) for f in texts)
    for key in ("max_unavailable", "auto_rollback"):
        if key in given:
            changes[key] = given[key]
    if "notify" in given:
        changes["notify"] = None if given["notify"] == "none" else str(given["notify"])
    if "cert_horizon" in given:
        changes["cert_horizon_days"] = int(given["cert_horizon"])
    return changes


def set_schedule(app: AppContext, cluster: str, changes: Mapping[str, Any]) -> Scheduled:
    """Validate the merged policy, then store it (one write). ``changes`` holds only the fields given,
    already parsed (domain values: windows, freezes, ...); ``tz`` is checked against the zone database."""
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    current = policy_of(record)
    if current is None:
        if not changes.get("windows"):
            raise InvalidScheduleError(f"cluster {cluster} has no schedule yet: give at least one --window "
                                       "(e.g. --window 'sat 02:00-06:00')")
        policy = SchedulePolicy(**dict(changes))  # every rule is checked on construction
    else:
        policy = current.with_changes(**dict(changes))
    now = app.clock.now()
    stored = policy.to_dict() | {"set_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "set_by": app.actor.user}
    with app.unit_of_work() as uow:
        record = uow.repo.set_cluster_schedule(cluster, stored)
        record_event(app, uow, "schedule-set", cluster=cluster, data={"policy": shown_policy(policy)})
        uow.commit()
    return describe(record, policy, now)


def clear_schedule(app: AppContext, cluster: str) -> bool:
    """Unschedule the cluster; False when it had no schedule (nothing is written then)."""
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
        if not record.schedule:
            return False
        uow.repo.set_cluster_schedule(cluster, None)
        record_event(app, uow, "schedule-cleared", cluster=cluster, data={})
        uow.commit()
    return True


def show_schedule(app: AppContext, cluster: str) -> Scheduled | None:
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    policy = policy_of(record)
    return describe(record, policy, app.clock.now()) if policy is not None else None


def list_schedules(app: AppContext) -> list[Scheduled]:
    with app.unit_of_work() as uow:
        records = uow.repo.list_clusters()
    now = app.clock.now()
    found = []
    for record in records:
        policy = policy_of(record)
        if policy is not None:
            found.append(describe(record, policy, now))
    return found
