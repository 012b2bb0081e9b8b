"""`upgrader schedule tick`: the one command cron runs, every few minutes, on one host or many.

For each scheduled cluster, in order:
1. outside its maintenance window, or inside a freeze: nothing (the idle case: no API call, no SSH);
2. a run in flight under a live lease (another tick, an operator): reported busy, never waited for;
3. its own scheduled run left interrupted (a window closed, a tick was killed): resumed, unless the
   next hop would not finish before the window ends;
4. a two-step run whose soak has ended: finalized;
5. a failed run, or an operator's run left half done: reported as needing a person;
6. otherwise the target its channel picks (skipped versions, and targets a scheduled run was rolled
   back from, passed over), planned, preflighted, snapshotted and applied under the cluster's lease,
   pausing at a safe point when the window is about to close; and when no upgrade is due,
   certificates expiring within the horizon are renewed.

Safe under cron: the cluster's lease is taken without waiting before anything is planned, so many
ticks on one ledger start each cluster's upgrade at most once; a locked cluster is reported and the
tick moves on. Exit codes, most severe first: 6 a cluster needs a person, 5 a cluster was rolled
back, 7 busy, 0 nothing to do or all good.
"""


from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from upgrader.domain.records import ClusterRecord
from upgrader.domain.schedule import frozen, windows_around
from upgrader.errors import ClusterNotFoundError, UpgraderError, UsageError
from upgrader.services.audit import record_event
from upgrader.services.schedule import load_zone, policy_of
from upgrader.services.schedule_window import ClusterTick, TickState, act, iso
from upgrader.services.wiring import AppContext

if TYPE_CHECKING:
    from upgrader.services.apply import Report

SEVERITY = (6, 5, 7)  # exit codes, most severe first; anything else is 0
QUIET = frozenset({"outside-window", "frozen", "up-to-date", "waiting", "soaking"})  # nothing happened


@dataclass(frozen=True, slots=True)
class TickResult:
    now: datetime
    clusters: tuple[ClusterTick, ...]
    catalog: dict[str, Any] | None = None  # refreshed, or the reason it could not be (the stored one was used)
    notified: tuple[dict[str, Any], ...] = ()

    @property
    def exit_code(self) -> int:
        return severest(c.exit_code for c in self.clusters)

    def to_dict(self) -> dict[str, Any]:
        return {"now": iso(self.now), "exit_code": self.exit_code, "clusters": [c.to_dict() for c in self.clusters],
                "catalog": self.catalog, "notified": list(self.notified)}



def severest(codes: Iterable[int]) -> int:
    seen = set(codes)
    return next((code for code in SEVERITY if code in seen), 0)



def tick(app: AppContext, *, clusters: Sequence[str] = (), now: datetime | None = None,
         catalog_url: str | None = None, report: Report = lambda e: None,
         working: Callable[[], None] = lambda: None) -> TickResult:
    """``working``: called once, before the first cluster inside an open, unfrozen window (the CLI sets
    up logging there: an idle tick never pays for it)."""
    with app.unit_of_work() as uow:
        records = uow.repo.list_clusters()
    known = {r.name: r for r in records}
    for name in clusters:
        if name not in known:
            raise ClusterNotFoundError(f"no cluster named {name!r} (see `upgrader cluster list`)")
        if not known[name].schedule:
            raise UsageError(f"cluster {name} has no schedule: set one with `upgrader schedule set {name} "
                             "--window 'sat 02:00-06:00'`")
    chosen = [known[n] for n in dict.fromkeys(clusters)] if clusters else [r for r in records if r.schedule]
    state = TickState(app, start=now or app.clock.now(), started=app.clock.monotonic(), catalog_url=catalog_url,
                  working=working,
                  report=report)
    done = []
    for record in chosen:
        try:
            one = _one(state, record)
        except UpgraderError as e:  # this cluster needs someone; the others still get their tick
            one = ClusterTick(record.name, "needs-person", e.message, 6)
        if one.action not in QUIET:
            _record(app, one)
        done.append(one)
    result = TickResult(now=state.start, clusters=tuple(done), catalog=state.catalog)
    return _notify(app, result, {r.name: r for r in chosen})



def _one(state: TickState, record: ClusterRecord) -> ClusterTick:
    name = record.name
    policy = policy_of(record)
    assert policy is not None
    zone = load_zone(policy.tz)
    now = state.now()
    window, upcoming = windows_around(policy.windows, zone, now)
    if window is None:
        return ClusterTick(name, "outside-window", "outside its maintenance windows",
                           next_window=iso(upcoming.start) if upcoming else None)
    freeze = frozen(policy.freezes, zone, now)
    if freeze is not None:
        return ClusterTick(name, "frozen", f"frozen until {freeze.end.isoformat()} (inclusive)",
                           window_end=iso(window.end))
    return act(state, record, policy, window)


def _record(app: AppContext, one: ClusterTick) -> None:
    with app.unit_of_work() as uow:
        record_event(app, uow, "schedule-tick", cluster=one.cluster, run_id=one.run_id, data=one.to_dict())
        uow.commit()


def _notify(app: AppContext, result: TickResult, records: dict[str, ClusterRecord]) -> TickResult:
    """Post each webhook the summary of its clusters, when something happened to one of them. A
    failure is logged and listed, never fatal: the tick's exit code is about the clusters."""
    if all(c.action in QUIET for c in result.clusters):  # the idle tick: no policy read again
        return result
    by_url: dict[str, list[ClusterTick]] = {}
    for one in result.clusters:
        policy = policy_of(records[one.cluster]) if records[one.cluster].schedule else None
        if policy is not None and policy.notify:
            by_url.setdefault(policy.notify, []).append(one)
    if not any(c.action not in QUIET for group in by_url.values() for c in group):
        return result
    from upgrader.web.webhook import post_summary

    notified = []
    for url, group in by_url.items():
        if all(c.action in QUIET for c in group):
            continue
        doc = {"kind": "upgrader.schedule.tick", "now": iso(result.now), "host": app.actor.host,
               "exit_code": severest(c.exit_code for c in group),
               "clusters": [c.to_dict() for c in group]}
        failed = post_summary(url, doc)
        notified.append({"clusters": [c.cluster for c in group], "ok": failed is None, "error": failed})
    return TickResult(now=result.now, clusters=result.clusters, catalog=result.catalog, notified=tuple(notified))

