"""What a schedule tick does for one cluster inside an open, unfrozen maintenance window.

In order: a run in flight under a live lease is reported busy (never waited for); the cluster's own
scheduled run left interrupted (a window closed, a tick was killed) is resumed, unless its next hop
would not finish before the window ends; a two-step run whose soak has ended is finalized; a failed
run, or an operator's run left half done, needs a person. Otherwise the channel's target (skipped
versions, and what a scheduled run was rolled back from, passed over) is planned, preflighted,
snapshotted and applied under the cluster's lease, taken without waiting; and when no upgrade is
due, certificates expiring within the horizon are renewed. See services/schedule_tick.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from upgrader.domain.records import ClusterRecord, LockRecord, RunRecord
from upgrader.domain.runs import RunStatus
from upgrader.domain.schedule import (
    Occurrence,
    SchedulePolicy,
    held_back,
    pause_reason,
    pick_target,
    step_estimates,
)
from upgrader.domain.versions import Version
from upgrader.errors import RunLockedError
from upgrader.services.audit import record_event
from upgrader.services.wiring import AppContext

if TYPE_CHECKING:
    from upgrader.domain.catalog import Release
    from upgrader.domain.plans import Plan, Step
    from upgrader.services.apply import Report, RunResult

# Imported by every tick, idle or not: the apply service, planning and logging are imported inside
# the functions that need them (an idle tick is what cron pays every few minutes).
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



def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")



@dataclass
class TickState:
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
            self.catalog = {"fetched_at": iso(stored.fetched_at) if stored else None,
                            "source": stored.source if stored else None, "warning": warning}
            self.releases = catalog.releases(self.app)
        return self.releases

    def per_action(self) -> dict[str, float]:
        if self.estimates is None:
            with self.app.unit_of_work() as uow:
                self.estimates = step_estimates(uow.repo.recent_step_seconds())
        return self.estimates



def act(state: TickState, record: ClusterRecord, policy: SchedulePolicy, window: Occurrence) -> ClusterTick:
    """The cluster is in ``window`` and not frozen: do what is due."""
    name = record.name
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


def _open_run(state: TickState, record: ClusterRecord, policy: SchedulePolicy, window: Occurrence, run: RunRecord,
              lock: LockRecord | None) -> ClusterTick:
    app, name = state.app, record.name
    if run.status is RunStatus.RUNNING and _live(app, lock):
        holder = lock.holder if lock is not None else "?"
        return ClusterTick(name, "busy", f"run {run.id} is running under {holder}", 7, run_id=run.id)
    from upgrader.services.finalize import soaking

    soak = soaking(run)
    if soak is not None:
        if str(soak.get("until", "")) > iso(state.now()):
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
                               run_id=run.id, window_end=iso(window.end))
    from upgrader.services.apply import dead_holder, resume

    try:
        with _leased(app, name, run_id=run.id, take_over=dead_holder(app, lock)) as token:
            result = resume(app, run.id, report=state.report, lease_token=token,
                            pause=_pauser(state, plan, window))
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7, run_id=run.id)
    return _ended(name, result, str(plan.target), window)


def _finalize(state: TickState, name: str, run: RunRecord) -> ClusterTick:
    from upgrader.services.finalize import finalize

    try:
        result = finalize(state.app, run.id, report=state.report)
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7, run_id=run.id)
    ended = _ended(name, result, None, None)
    return ended if ended.action != "upgraded" else ClusterTick(
        name, "finalized", f"run {run.id}: the soak ended, finalized and completed", run_id=run.id)


def _next_target(state: TickState, record: ClusterRecord, policy: SchedulePolicy, window: Occurrence,
                 runs: Sequence[RunRecord]) -> ClusterTick:
    from upgrader.domain.validation import control_plane_version
    from upgrader.services import plans
    from upgrader.services.apply import apply
    from upgrader.services.run_options import run_options

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
        return renewed or ClusterTick(name, "up-to-date", decision.reason, window_end=iso(window.end))
    try:
        with _leased(app, name) as token:
            made = plans.make_plan(app, plans.PlanRequest(cluster=name, target=str(decision.target), state=None,
                                                          catalog=None, max_unavailable=policy.max_unavailable),
                                   record=False)
            if not made.plan.steps:
                return ClusterTick(name, "up-to-date", f"already at {decision.target}", window_end=iso(window.end))
            first = next((s for s in made.plan.steps if s.hop is not None), None)
            reason = pause_reason(first, made.plan, state.per_action(), window.end, state.now()) if first else None
            if reason is not None:
                return ClusterTick(name, "waiting", f"{decision.target} waits for a longer window: {reason}",
                                   target=str(decision.target), window_end=iso(window.end))
            plan_id = plans.record_plan(app, made)
            options = run_options(auto_rollback=policy.auto_rollback, scheduled=True)
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
        if run.status is RunStatus.ROLLED_BACK and run.options.get("scheduled") and iso(run.created_at) >= set_at:
            targets.setdefault(_plan_of(app, run).target, f"run {run.id} was rolled back")
    return targets


def _pauser(state: TickState, plan: Plan, window: Occurrence) -> Callable[[Step], str | None]:
    per_action = state.per_action()
    return lambda step: pause_reason(step, plan, per_action, window.end, state.now())


def _ended(name: str, result: RunResult, target: str | None, window: Occurrence | None) -> ClusterTick:
    run = result.run
    said = dict(run.outcome or {})
    end = iso(window.end) if window else None
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


def _certificates(state: TickState, record: ClusterRecord, policy: SchedulePolicy,
                  window: Occurrence) -> ClusterTick | None:
    """Renew kubeadm's certificates when any expires within the horizon (read at most every 12 h)."""
    from upgrader.services import certificates
    from upgrader.services.run_options import run_options

    app, name = state.app, record.name
    real_now = app.clock.now()  # certificates expire in real time, whatever --now says about windows
    with app.unit_of_work() as uow:
        last = next((e for e in uow.repo.list_events(name, limit=200) if e.kind == "certificates-checked"), None)
    if last is not None and real_now - last.at < CERT_RECHECK:
        soonest = (last.data or {}).get("soonest")
        horizon = timedelta(days=policy.cert_horizon_days) + CERT_RECHECK
        if soonest and str(soonest) > iso(real_now + horizon):
            return None
    found = certificates.expiring(app, name, horizon_days=policy.cert_horizon_days, now=real_now)
    with app.unit_of_work() as uow:
        record_event(app, uow, "certificates-checked", cluster=name,
                     data={"soonest": iso(found.soonest) if found.soonest else None, "due": found.due})
        uow.commit()
    if not found.due:
        return None
    try:
        with _leased(app, name) as token:
            result = certificates.renew(app, name, options=run_options(scheduled=True), report=state.report,
                                        lease_token=token)
    except RunLockedError as e:
        return ClusterTick(name, "busy", e.message, 7)
    ended = _ended(name, result, None, window)
    if ended.action != "upgraded":
        return ended
    return ClusterTick(name, "certificates-renewed", f"run {result.run.id} renewed the certificates (the soonest "
                       f"expired {iso(found.soonest) if found.soonest else '?'})", run_id=result.run.id,
                       window_end=iso(window.end))


def _plan_of(app: AppContext, run: RunRecord) -> Plan:
    from upgrader.domain.plans import plan_from_dict

    with app.unit_of_work() as uow:
        return plan_from_dict(dict(uow.repo.get_plan(run.plan_id).document))


def _status(run: RunRecord, n: int) -> str:
    return next((s.status.value for s in run.steps if s.n == n), "pending")


