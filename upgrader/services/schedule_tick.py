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

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from upgrader.domain.records import ClusterRecord, LockRecord, RunRecord
from upgrader.domain.runs import RunStatus
from upgrader.domain.schedule import (
    Occurrence,
    SchedulePolicy,
    frozen,
    held_back,
    pause_reason,
    pick_target,
    step_estimates,
    windows_around,
)
from upgrader.domain.versions import Version
from upgrader.errors import ClusterNotFoundError, RunLockedError, UpgraderError, UsageError
from upgrader.services.audit import record_event
from upgrader.services.schedule import load_zone, policy_of
from upgrader.services.wiring import AppContext

if TYPE_CHECKING:
    from upgrader.domain.catalog import Release
    from upgrader.domain.plans import Plan, Step
    from upgrader.services.apply import Report, RunResult

# The idle tick (every cluster outside its windows or frozen: what cron pays every few minutes) needs
# none of the engine: the apply service, planning and logging are imported where a cluster needs them.
SEVERITY = (6, 5, 7)  # exit codes, most severe first; anything else is 0
QUIET = frozenset({"outside-window", "frozen", "up-to-date", "waiting", "soaking"})  # nothing happened
CERT_RECHECK = timedelta(hours=12)  # certificates are read from the nodes at most this often per cluster


@dataclass(frozen=True, slots=True)
class ClusterTick:
    """What one tick did for one cluster."""

    cluster: str
    action: str  # outside-window frozen up-to-date waiting soaking busy upgraded paused finalized rolled-back
    #              certificates-renewed needs-person
    detail: str
    exit_code: int = 0
    run_id: int | None = None
    target: str | None = None
    window_end: str | None = None
    next_window: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "action": self.action, "detail": self.detail, "exit_code": self.exit_code,
                "run_id": self.run_id, "target": self.target, "window_end": self.window_end,
                "next_window": self.next_window}


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
        return {"now": _iso(self.now), "exit_code": self.exit_code, "clusters": [c.to_dict() for c in self.clusters],
                "catalog": self.catalog, "notified": list(self.notified)}


def severest(codes: Iterable[int]) -> int:
    seen = set(codes)
    return next((code for code in SEVERITY if code in seen), 0)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Tick:
    """The state one tick shares between its clusters: its clock, and the catalog, read once."""

    app: AppContext
    start: datetime
    started: float
    catalog_url: str | None
    report: Report
    working: Callable[[], None] = lambda: None  # called once before the first cluster with work to do
    worked: bool = False
    releases: list[Release] | None = None
    catalog: dict[str, Any] | None = None
    estimates: dict[str, float] | None = None

    def now(self) -> datetime:
        """The tick's ``--now`` moved on by the time the tick has run: windows close on it."""
        return self.start + timedelta(seconds=self.app.clock.monotonic() - self.started)

    def release_list(self) -> list[Release]:
        if self.releases is None:
            from upgrader.services import catalog

            stored, warning = catalog.refresh_if_stale(self.app, url=self.catalog_url, now=self.app.clock.now())
            self.catalog = {"fetched_at": _iso(stored.fetched_at) if stored else None,
                            "source": stored.source if stored else None, "warning": warning}
            self.releases = catalog.releases(self.app)
        return self.releases

    def per_action(self) -> dict[str, float]:
        if self.estimates is None:
            with self.app.unit_of_work() as uow:
                self.estimates = step_estimates(uow.repo.recent_step_seconds())
        return self.estimates


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
    state = _Tick(app, start=now or app.clock.now(), started=app.clock.monotonic(), catalog_url=catalog_url,
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


def _one(state: _Tick, record: ClusterRecord) -> ClusterTick:
    name = record.name
    policy = policy_of(record)
    assert policy is not None
    zone = load_zone(policy.tz)
    now = state.now()
    window, upcoming = windows_around(policy.windows, zone, now)
    if window is None:
        return ClusterTick(name, "outside-window", "outside its maintenance windows",
                           next_window=_iso(upcoming.start) if upcoming else None)
    freeze = frozen(policy.freezes, zone, now)
    if freeze is not None:
        return ClusterTick(name, "frozen", f"frozen until {freeze.end.isoformat()} (inclusive)",
                           window_end=_iso(window.end))
    if not state.worked:
        state.worked = True
        state.working()
    app = state.app
    with app.unit_of_work() as uow:
        runs = uow.repo.list_runs(name)
        lock = uow.repo.get_lock(name)
    open_run = runs[0] if runs and runs[0].status in (RunStatus.RUNNING, RunStatus.INTERRUPTED,
                                                      RunStatus.FAILED) else None
    if open_run is not None:
        return _open_run(state, record, policy, window, open_run, lock)
    return _next_target(state, record, policy, window, runs)


@contextmanager
def _leased(app: AppContext, cluster: str, *, run_id: int | None = None,
            take_over: int | None = None) -> Iterator[int]:
    """The cluster's lease, taken without waiting (RunLockedError) and renewed from a thread while
    the tick plans and preflights under it, before the run's own renewals start."""
    from upgrader import logs
    from upgrader.engine.lease import LeaseKeeper
    from upgrader.services.apply import hold_lease, lease_ttl

    log = logs.get_logger(__name__)
    with hold_lease(app, cluster, run_id=run_id, take_over=take_over) as token:
        keeper = LeaseKeeper(unit_of_work=app.unit_of_work, now=app.clock.now, cluster=cluster, token=token,
                             ttl=lease_ttl(), on_lost=lambda message: log.warning("lease_lost", cluster=cluster,
                                                                                  error=message))
        with keeper:
            yield token


def _live(app: AppContext, lock: LockRecord | None) -> bool:
    """Someone holds the cluster's lease now: not expired, and not a dead process of this host."""
    from upgrader.services.apply import dead_holder

    return lock is not None and lock.expires_at > app.clock.now() and dead_holder(app, lock) is None


def _open_run(state: _Tick, record: ClusterRecord, policy: SchedulePolicy, window: Occurrence, run: RunRecord,
              lock: LockRecord | None) -> ClusterTick:
    app, name = state.app, record.name
    if run.status is RunStatus.RUNNING and _live(app, lock):
        holder = lock.holder if lock is not None else "?"
        return ClusterTick(name, "busy", f"run {run.id} is running under {holder}", 7, run_id=run.id)
    from upgrader.services.finalize import soaking

    soak = soaking(run)
    if soak is not None:
        if str(soak.get("until", "")) > _iso(state.now()):
            return ClusterTick(name, "soaking", f"run {run.id} soaks until {soak.get('until')}", run_id=run.id)
        return _finalize(state, name, run)
    if run.status is RunStatus.FAILED:
        said = dict(run.outcome or {})
        return ClusterTick(name, "needs-person", f"run {run.id} failed: {said.get('error') or said.get('reason')}; "
                           f"see `upgrader runs show {run.id}`", 6, run_id=run.id)
    if not run.options.get("scheduled"):
        return ClusterTick(name, "needs-person", f"run {run.id} (started by {run.started_by} on {run.host}) is "
                           f"{run.status.value}: finish it with `upgrader resume {run.id}`", 6, run_id=run.id)
    plan = _plan_of(app, run)
    pending = [s for s in plan.steps if _status(run, s.n) not in ("succeeded", "skipped")]
    if pending and pending[0].hop is not None:
        reason = pause_reason(pending[0], plan, state.per_action(), window.end, state.now())
        if reason is not None:
            return ClusterTick(name, "waiting", f"run {run.id} continues in a later window: {reason}",
                               run_id=run.id, window_end=_iso(window.end))
    from upgrader.services.apply import dead_holder, resume

    try:
        with _leased(app, name, run_id=run.id, take_over=dead_holder(app, lock)) as token:
            result = resume(app, run.id, report=state.report, lease_token=token,
                            pause=_pauser(state, plan, window))
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7, run_id=run.id)
    return _ended(name, result, str(plan.target), window)


def _finalize(state: _Tick, name: str, run: RunRecord) -> ClusterTick:
    from upgrader.services.finalize import finalize

    try:
        result = finalize(state.app, run.id, report=state.report)
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7, run_id=run.id)
    ended = _ended(name, result, None, None)
    return ended if ended.action != "upgraded" else ClusterTick(
        name, "finalized", f"run {run.id}: the soak ended, finalized and completed", run_id=run.id)


def _next_target(state: _Tick, record: ClusterRecord, policy: SchedulePolicy, window: Occurrence,
                 runs: Sequence[RunRecord]) -> ClusterTick:
    from upgrader.domain.validation import control_plane_version
    from upgrader.engine.context import ApplyOptions
    from upgrader.services import plans
    from upgrader.services.apply import apply

    app, name = state.app, record.name
    inventory = plans.observe(app, cluster=name)
    current = control_plane_version(inventory)
    releases = state.release_list()
    reasons = {Version.parse(s.version): s.reason for s in record.skips}
    for version, why in held_back(_rolled_back_targets(app, record, runs), releases).items():
        reasons.setdefault(version, f"held back: {why}")
    decision = pick_target(policy, current, releases, frozenset(reasons), state.now(), skip_reasons=reasons)
    if decision.target is None:
        renewed = _certificates(state, record, policy, window)
        return renewed or ClusterTick(name, "up-to-date", decision.reason, window_end=_iso(window.end))
    try:
        with _leased(app, name) as token:
            made = plans.make_plan(app, plans.PlanRequest(cluster=name, target=str(decision.target), state=None,
                                                          catalog=None, max_unavailable=policy.max_unavailable),
                                   record=False)
            if not made.plan.steps:
                return ClusterTick(name, "up-to-date", f"already at {decision.target}", window_end=_iso(window.end))
            first = next((s for s in made.plan.steps if s.hop is not None), None)
            reason = pause_reason(first, made.plan, state.per_action(), window.end, state.now()) if first else None
            if reason is not None:
                return ClusterTick(name, "waiting", f"{decision.target} waits for a longer window: {reason}",
                                   target=str(decision.target), window_end=_iso(window.end))
            plan_id = plans.record_plan(app, made)
            options = ApplyOptions(auto_rollback=policy.auto_rollback, scheduled=True)
            result = apply(app, plan_id, options, report=state.report, lease_token=token,
                           pause=_pauser(state, made.plan, window))
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7)
    return _ended(name, result, str(decision.target), window)


def _rolled_back_targets(app: AppContext, record: ClusterRecord, runs: Sequence[RunRecord]) -> dict[Version, str]:
    """Targets a scheduled run was rolled back from since the schedule was last set, with the run:
    not retried unattended (an operator sets the schedule again, or skips the version, once they
    have looked; see domain.schedule.held_back)."""
    set_at = str((record.schedule or {}).get("set_at") or "")
    targets: dict[Version, str] = {}
    for run in runs:
        if run.status is RunStatus.ROLLED_BACK and run.options.get("scheduled") and _iso(run.created_at) >= set_at:
            targets.setdefault(_plan_of(app, run).target, f"run {run.id} was rolled back")
    return targets


def _pauser(state: _Tick, plan: Plan, window: Occurrence) -> Callable[[Step], str | None]:
    per_action = state.per_action()
    return lambda step: pause_reason(step, plan, per_action, window.end, state.now())


def _ended(name: str, result: RunResult, target: str | None, window: Occurrence | None) -> ClusterTick:
    run = result.run
    said = dict(run.outcome or {})
    end = _iso(window.end) if window else None
    if result.lease_lost:
        return ClusterTick(name, "busy", result.lease_lost, 7, run_id=run.id, target=target)
    if run.status is RunStatus.SUCCEEDED:
        return ClusterTick(name, "upgraded", f"run {run.id} reached {target or said.get('target')}", run_id=run.id,
                           target=target, window_end=end)
    if run.status is RunStatus.ROLLED_BACK:
        return ClusterTick(name, "rolled-back", f"run {run.id} failed ({said.get('error')}) and was rolled back; "
                           f"{target} is held back until the schedule is set again", 5, run_id=run.id, target=target)
    if run.status is RunStatus.INTERRUPTED and said.get("paused"):
        return ClusterTick(name, "paused", f"run {run.id} paused: {said['paused']['reason']}; the next window's "
                           "tick continues it", run_id=run.id, target=target, window_end=end)
    if run.status is RunStatus.INTERRUPTED and said.get("soaking"):
        return ClusterTick(name, "soaking", str(said.get("reason")), run_id=run.id, target=target)
    nxt = said.get("next")
    first = nxt[0] if isinstance(nxt, list) and nxt else nxt
    why = said.get("error") or said.get("reason")
    return ClusterTick(name, "needs-person", f"run {run.id} {run.status.value}: {why}"
                       + (f"; next: {first}" if first else ""), 6, run_id=run.id, target=target)


def _certificates(state: _Tick, record: ClusterRecord, policy: SchedulePolicy,
                  window: Occurrence) -> ClusterTick | None:
    """Renew kubeadm's certificates when any expires within the horizon (read at most every 12 h)."""
    from upgrader.engine.context import ApplyOptions
    from upgrader.services import certificates

    app, name = state.app, record.name
    real_now = app.clock.now()  # certificates expire in real time, whatever --now says about windows
    with app.unit_of_work() as uow:
        last = next((e for e in uow.repo.list_events(name, limit=200) if e.kind == "certificates-checked"), None)
    if last is not None and real_now - last.at < CERT_RECHECK:
        soonest = (last.data or {}).get("soonest")
        horizon = timedelta(days=policy.cert_horizon_days) + CERT_RECHECK
        if soonest and str(soonest) > _iso(real_now + horizon):
            return None
    found = certificates.expiring(app, name, horizon_days=policy.cert_horizon_days, now=real_now)
    with app.unit_of_work() as uow:
        record_event(app, uow, "certificates-checked", cluster=name,
                     data={"soonest": _iso(found.soonest) if found.soonest else None, "due": found.due})
        uow.commit()
    if not found.due:
        return None
    try:
        with _leased(app, name) as token:
            result = certificates.renew(app, name, options=ApplyOptions(scheduled=True), report=state.report,
                                        lease_token=token)
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7)
    ended = _ended(name, result, None, window)
    if ended.action != "upgraded":
        return ended
    return ClusterTick(name, "certificates-renewed", f"run {result.run.id} renewed the certificates (the soonest "
                       f"expired {_iso(found.soonest) if found.soonest else '?'})", run_id=result.run.id,
                       window_end=_iso(window.end))


def _plan_of(app: AppContext, run: RunRecord) -> Plan:
    from upgrader.domain.plans import plan_from_dict

    with app.unit_of_work() as uow:
        return plan_from_dict(dict(uow.repo.get_plan(run.plan_id).document))


def _status(run: RunRecord, n: int) -> str:
    return next((s.status.value for s in run.steps if s.n == n), "pending")


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
        doc = {"kind": "upgrader.schedule.tick", "now": _iso(result.now), "host": app.actor.host,
               "exit_code": severest(c.exit_code for c in group),
               "clusters": [c.to_dict() for c in group]}
        failed = post_summary(url, doc)
        notified.append({"clusters": [c.cluster for c in group], "ok": failed is None, "error": failed})
    return TickResult(now=result.now, clusters=result.clusters, catalog=result.catalog, notified=tuple(notified))
