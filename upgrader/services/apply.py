"""`upgrader apply PLAN` and `upgrader resume RUN`: a reviewed plan made into an upgraded cluster.

apply refuses, before anything changes: a plan already applied (or with a run to resume), a cluster
that changed since the plan was made (exit 3, naming what changed), another run on the cluster
(exit 7, naming its holder, host and run), a preflight that fails (exit 4). Then it records the run
and hands it to the engine under the cluster's lease, renewed while the run lives.

resume continues an interrupted or failed run with the options it was started with: a step the dead
process was in is observed first (did it take effect?), then completed or run again. A lease left
by a process of this host that no longer exists is taken over at once; any other waits for its TTL.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from upgrader.domain.certificates import is_renewal
from upgrader.domain.inventory import inventory_to_dict
from upgrader.domain.plans import Plan, Step, plan_from_dict
from upgrader.domain.records import ClusterRecord, LockRecord, PlanRecord, RunRecord
from upgrader.domain.rollback import is_rollback
from upgrader.domain.runbooks import is_runbook
from upgrader.domain.runs import RunStatus
from upgrader.domain.text import excerpt
from upgrader.engine.context import (
    ApplyOptions,
    Hooks,
    PausedError,
    RollbackHooks,
    RunbookHooks,
    RunContext,
    SoakPendingError,
    StepEvent,
    StopRequestedError,
)
from upgrader.engine.executor import StepFailedError, execute
from upgrader.engine.lease import TTL_SECONDS, LeaseKeeper
from upgrader.errors import (
    ClusterChangedError,
    LockLostError,
    PreflightError,
    RehearsalFailedError,
    RunLockedError,
    RunRefusedError,
    UpgraderError,
    UsageError,
)
from upgrader.ports import NodeTransport
from upgrader.services import inventory as inventory_service
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import EtcdSession, etcd_session
from upgrader.services.health import etcd_checks
from upgrader.services.preflight import PreflightRequest, run_preflight
from upgrader.services.run_outcome import cordoned_by_run, failure_outcome, restore_entry
from upgrader.services.snapshots import create_snapshot
from upgrader.services.wiring import AppContext

Report = Callable[[StepEvent], None]


@dataclass(frozen=True, slots=True)
class RunResult:
    """How apply/resume ended: the run as recorded, and lease_lost when it stopped because another
    holder took its lease (nothing more could be written)."""

    run: RunRecord
    lease_lost: str | None = None


def load_plan(app: AppContext, plan_id: int) -> tuple[PlanRecord, Plan]:
    """The plan to show before confirming; RunRefusedError when it is applied or has a run to resume,
    RunLockedError when its run is running under another process's live lease."""
    with app.unit_of_work() as uow:
        record = uow.repo.get_plan(plan_id)
        if is_runbook(record.document):  # its steps confirm through `runbook run` / `resume`, never here
            raise RunRefusedError(f"plan {plan_id} is the record of a runbook run, not an upgrade: start a runbook "
                                  "with `upgrader runbook run NAME --cluster C`, continue one with "
                                  "`upgrader resume RUN`")
        _refuse_reapply(record, uow.repo.list_runs(plan_id=plan_id), uow.repo.get_lock(record.cluster),
                        app.clock.now())
    return record, plan_from_dict(dict(record.document))


def _refuse_reapply(plan: PlanRecord, runs: list[RunRecord], lock: LockRecord | None, now: datetime) -> None:
    for run in runs:
        if run.status is RunStatus.SUCCEEDED:
            raise RunRefusedError(f"plan {plan.id} was already applied by run {run.id}; make a new plan "
                                  f"(`upgrader plan {plan.cluster} --to ...`)")
        if run.status is RunStatus.RUNNING and lock is not None and lock.run_id == run.id and lock.expires_at > now:
            # Someone is applying it right now: say who (as an apply of another plan of this cluster
            # would hear), not "resume", which would only be refused too.
            raise RunLockedError(f"plan {plan.id} is being applied by run {run.id}: cluster {plan.cluster!r} is "
                                 f"locked by {lock.holder} (token {lock.fencing_token}, run {run.id}) until "
                                 f"{lock.expires_at:%Y-%m-%dT%H:%M:%SZ}; watch it with `upgrader runs show {run.id}`")
        if run.status is RunStatus.INTERRUPTED and isinstance((run.outcome or {}).get("soaking"), dict):
            raise RunRefusedError(f"plan {plan.id} already has run {run.id}, soaking in a two-step hop: end the "
                                  f"soak with `upgrader finalize {run.id}` or go back with "
                                  f"`upgrader rollback {plan.cluster}`")
        if run.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED):
            raise RunRefusedError(f"plan {plan.id} already has run {run.id} ({run.status.value}): continue it with "
                                  f"`upgrader resume {run.id}`")


Pause = Callable[[Step], "str | None"]
Confirm = Callable[[Step, list[str]], bool]  # a person asked: the step and what it will do -> go on?


def apply(app: AppContext, plan_id: int, options: ApplyOptions, *, report: Report = lambda e: None,
          stop: threading.Event | None = None, lease_token: int | None = None,
          pause: Pause | None = None) -> RunResult:
    """``lease_token``: the caller already holds the cluster's lease (the scheduler's tick) and keeps
    it; ``pause``: asked before each step (see RunContext.pause)."""
    record, plan = load_plan(app, plan_id)
    with app.unit_of_work() as uow:
        cluster = uow.repo.get_cluster(record.cluster)
    _refuse_changed(app, cluster, record, plan)
    held = nullcontext(lease_token) if lease_token is not None else _lease(app, cluster.name, run_id=None)
    with held as token:
        report_ = run_preflight(app, PreflightRequest(cluster=cluster.name, target=str(plan.target)))
        if not report_.passed:
            failing = [f"{c.name}: {c.message}" for c in report_.checks if c.blocks]
            raise PreflightError(f"preflight refused the apply of plan {plan_id} (nothing was changed): "
                                 + "; ".join(failing[:3]) + (f" (+{len(failing) - 3} more)" if len(failing) > 3 else "")
                                 + f"; see `upgrader preflight {cluster.name} --to {plan.target}`")
        preflight_outputs = {"passed": True, "checks": len(report_.checks),
                             "warnings": [c.name for c in report_.checks
                                          if c.status.value == "failed" and not c.blocks]}
        with app.unit_of_work() as uow:
            run = uow.repo.create_run(plan_id=plan_id, started_by=app.actor.user, host=app.actor.host,
                                      command_line=app.actor.command_line, token=token, options=options.to_dict())
            record_event(app, uow, "run-started", cluster=cluster.name, run_id=run.id,
                         data={"plan": plan_id, "target": str(plan.target), "options": options.to_dict()})
            uow.commit()
        return _drive(app, cluster, plan, run, token, options, report, stop or threading.Event(),
                      preflight=lambda: preflight_outputs, pause=pause)


def resume(app: AppContext, run_id: int, *, report: Report = lambda e: None,
           stop: threading.Event | None = None, finalize_step: int | None = None,
           lease_token: int | None = None, pause: Pause | None = None,
           confirm: Confirm | None = None, yes: bool = False) -> RunResult:
    """Continue the run; ``finalize_step`` (only `upgrader finalize`) is the soak step that ends now;
    ``lease_token`` and ``pause`` as for :func:`apply`; ``confirm``/``yes``: a runbook's run asks a
    person (or takes --yes for the answer) before each step that confirms and was not confirmed yet."""
    with app.unit_of_work() as uow:
        run = uow.repo.get_run(run_id)
        if run.status in (RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK):
            raise RunRefusedError(f"run {run_id} already ended ({run.status.value}); nothing to resume")
        cluster = uow.repo.get_cluster(run.cluster)
        plan_record = uow.repo.get_plan(run.plan_id)
        lock = uow.repo.get_lock(cluster.name)
    plan = plan_from_dict(dict(plan_record.document))
    options = ApplyOptions.from_dict(run.options)
    held = nullcontext(lease_token) if lease_token is not None else _lease(
        app, cluster.name, run_id=run.id, take_over=_dead_holder(app, lock))
    with held as token:
        with app.unit_of_work() as uow:
            run = uow.repo.claim_run(run_id, token=token)
            record_event(app, uow, "run-resumed", cluster=cluster.name, run_id=run.id, data={"lease": token})
            uow.commit()
        if is_rollback(plan_record.document):
            from upgrader.services import rollback

            return rollback.resume(app, run.id, token, report=report, stop=stop or threading.Event())
        if is_renewal(plan_record.document):
            from upgrader.services import certificates

            return certificates.resume(app, run.id, token, report=report, stop=stop or threading.Event())
        if is_runbook(plan_record.document):
            from upgrader.services import runbooks

            return runbooks.resume(app, run.id, token, report=report, stop=stop or threading.Event(),
                                   confirm=confirm, yes=yes)

        def preflight() -> dict[str, Any]:
            again = run_preflight(app, PreflightRequest(cluster=cluster.name, target=str(plan.target)))
            if not again.passed:
                raise PreflightError("preflight refused: " + "; ".join(c.message for c in again.checks if c.blocks))
            return {"passed": True, "checks": len(again.checks)}

        return _drive(app, cluster, plan, run, token, options, report, stop or threading.Event(), preflight=preflight,
                      finalize_step=finalize_step, pause=pause)


MIN_TTL, MAX_TTL = 5.0, 3600.0


def lease_ttl() -> float:
    """``UPGRADER_LEASE_TTL`` seconds (default 60): how long a run that stopped renewing keeps the cluster."""
    text = os.environ.get("UPGRADER_LEASE_TTL")
    if not text:
        return TTL_SECONDS
    try:
        ttl = float(text)
    except ValueError:
        ttl = float("nan")
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UsageError(f"UPGRADER_LEASE_TTL={excerpt(text)}: expected seconds from {MIN_TTL:g} to {MAX_TTL:g}")
    return ttl


@contextmanager
def _lease(app: AppContext, cluster: str, *, run_id: int | None, take_over: int | None = None) -> Iterator[int]:
    holder = f"apply@{app.actor.host}:{os.getpid()}"[:255]
    with app.unit_of_work() as uow:
        token = int(uow.repo.acquire_lock(cluster=cluster, holder=holder, ttl_seconds=lease_ttl(),
                                          now=app.clock.now(), run_id=run_id, take_over=take_over))
        if take_over is not None:
            record_event(app, uow, "lease-taken-over", cluster=cluster, run_id=run_id,
                         data={"lease_from": take_over, "lease": token})
        uow.commit()
    try:
        yield token
    finally:
        with app.unit_of_work() as uow:
            uow.repo.release_lock(cluster=cluster, token=token)
            uow.commit()


def _dead_holder(app: AppContext, lock: LockRecord | None) -> int | None:
    """The token of a lease held by an upgrader process of this host that no longer exists."""
    if lock is None or "@" not in lock.holder:
        return None
    where = lock.holder.split("@", 1)[1]
    host, _, pid = where.rpartition(":")
    if host != app.actor.host or not pid.isdigit() or int(pid) == os.getpid():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return int(lock.fencing_token)
    except PermissionError:  # alive, another user's
        return None
    return None


def _refuse_changed(app: AppContext, cluster: ClusterRecord, record: PlanRecord, plan: Plan) -> None:
    if record.source_fingerprint is None:
        return  # a plan made from an inventory file: nothing live to compare with
    now = inventory_service.observe(app, cluster=cluster.name, members=None, nodes=False)
    if now.fingerprint == record.source_fingerprint:
        return
    with app.unit_of_work() as uow:
        before = uow.repo.get_observation(record.observation_id) if record.observation_id else None
    changes = describe_changes(before.inventory if before else None, inventory_to_dict(now))
    raise ClusterChangedError(f"cluster {cluster.name} changed since plan {record.id} was made ({changes}); "
                              f"make a new plan: `upgrader plan {cluster.name} --to {plan.target}`")


def describe_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """What differs between two inventories, node by node, in a few words."""
    if before is None:
        return "its fingerprint differs"
    old = {n.get("name"): n for n in before.get("nodes", [])}
    new = {n.get("name"): n for n in after.get("nodes", [])}
    said = [f"node {n} added" for n in sorted(set(new) - set(old), key=str)]
    said += [f"node {n} removed" for n in sorted(set(old) - set(new), key=str)]
    for name in sorted(set(old) & set(new), key=str):
        for key in ("kubelet", "components", "ready", "unschedulable", "control_plane"):
            if old[name].get(key) != new[name].get(key):
                said.append(f"{name} {key} {_short(old[name].get(key))} -> {_short(new[name].get(key))}")
    return "; ".join(said[:5]) + (f" (+{len(said) - 5} more)" if len(said) > 5 else "") if said else \
        "its fingerprint differs"


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class DriveExtras:
    """What a rollback's run (services/rollback.py) or a certificate renewal's (services/certificates.py,
    no rollback hooks) adds to the machinery an apply's run goes through.

    ``inventory``: the nodes to reach, recorded when the rollback was planned: on resume the API may be
    down (the control plane stopped), so it is not asked. ``etcd``: the session, opened when it can be
    (a stopped control plane has none to open) instead of before the run starts. ``failure``: the
    outcome of a failed step, in place of apply's. ``rollback``: the hooks of the rollback's steps."""

    document: Mapping[str, Any]
    inventory: Mapping[str, Any]
    etcd: Callable[[], EtcdSession | None]
    rollback: RollbackHooks | None
    failure: Callable[[RunRecord, StepFailedError], dict[str, Any]]
    succeeded: Mapping[str, Any] | None = None  # added to the outcome of a run that succeeded
    runbook: RunbookHooks | None = None  # a runbook's run: its confirmations and service-backed steps


def _drive(app: AppContext, cluster: ClusterRecord, plan: Plan, run: RunRecord, token: int, options: ApplyOptions,
           report: Report, stop: threading.Event, *, preflight: Callable[[], dict[str, Any]],
           finalize_step: int | None = None, extras: DriveExtras | None = None,
           pause: Pause | None = None) -> RunResult:
    api = app.cluster_api(cluster)
    if extras is not None:
        inventory: Mapping[str, Any] = extras.inventory
    else:
        try:
            inventory = api.observe_inventory()
        except UpgraderError as e:  # nothing ran yet: the run waits, resumable, for the API to come back
            _end(app, cluster, run.id, token, RunStatus.INTERRUPTED,
                 {"next": f"upgrader resume {run.id}", "reason": f"could not start: {e.message}"})
            raise
    transports: dict[str, NodeTransport] = {}

    def transport(node: str) -> NodeTransport:
        if node not in transports:
            transports[node] = app.transport(cluster, node, inventory=inventory)
        return transports[node]

    with _etcd_for(app, cluster, run.id, token, inventory, lazy=extras is not None) as session:
        def etcd_health() -> tuple[bool, str]:
            now = session if extras is None else extras.etcd()
            return _etcd_health(now) if now is not None else (False, "etcd not reachable yet")

        hooks = Hooks(preflight=preflight,
                      snapshot=lambda step: _snapshot(app, cluster, run.id, step, rehearse=options.rehearse),
                      etcd_health=etcd_health, event=lambda kind, data: _event(app, cluster.name, run.id, kind, data),
                      rollback=extras.rollback if extras is not None else None)
        ctx = RunContext(run_id=run.id, token=token, cluster=cluster.name, plan=plan, options=options,
                         unit_of_work=app.unit_of_work, api=api, transports=transport, clock=app.clock, hooks=hooks,
                         report=report, stop=stop, finalize_step=finalize_step,
                         document=extras.document if extras is not None else {}, pause=pause,
                         runbook=extras.runbook if extras is not None else None)
        if ctx.runbook is not None:  # a runbook's step that confirms is asked before it starts
            ctx.pause = _asking(ctx, ctx.runbook, pause)
        lost: list[str] = []

        def on_lost(message: str) -> None:
            lost.append(message)
            ctx.lost.set()
            stop.set()

        keeper = LeaseKeeper(unit_of_work=app.unit_of_work, now=app.clock.now, cluster=cluster.name, token=token,
                             ttl=lease_ttl(), on_lost=on_lost)
        try:
            with keeper:
                execute(ctx, {s.n: s for s in run.steps})
        except LockLostError as e:
            return RunResult(_get(app, run.id), lease_lost=e.message)
        except PausedError as e:  # a safe point the caller chose (the maintenance window closes)
            return RunResult(_end(app, cluster, run.id, token, RunStatus.INTERRUPTED, {
                "next": f"upgrader resume {run.id}", "reason": e.reason,
                "paused": {"reason": e.reason, "before_step": e.step.n}}))
        except StopRequestedError:
            if lost:
                return RunResult(_get(app, run.id), lease_lost=lost[0])
            return RunResult(_end(app, cluster, run.id, token, RunStatus.INTERRUPTED,
                                  {"next": f"upgrader resume {run.id}", "reason": "interrupted by the operator"}))
        except SoakPendingError as e:  # step one done: the run pauses until finalize (or a rollback)
            return RunResult(_end(app, cluster, run.id, token, RunStatus.INTERRUPTED, soaking_outcome(e, run.id,
                                                                                                      cluster.name)))
        except StepFailedError as e:
            if extras is not None:
                failed = extras.failure(_get(app, run.id), e)
                return RunResult(_end(app, cluster, run.id, token, RunStatus.FAILED, failed))
            outcome = failure_outcome(app, api, cluster.name, _get(app, run.id), e, options, etcd=session)
            if isinstance(e.cause, RehearsalFailedError):  # going back is what failed: no automatic rollback
                return RunResult(_end(app, cluster, run.id, token, RunStatus.FAILED, outcome | {
                    "reason": "rollback rehearsal failed", "exit_code": e.cause.exit_code,
                    "next": [f"the hop did not start; fix what the rehearsal found, then: upgrader resume {run.id}",
                             *outcome["next"][1:]]}))
            status, outcome = _auto_rollback(app, cluster, run.id, token, options, outcome, report, stop)
            return RunResult(_end(app, cluster, run.id, token, status, outcome))
        except KeyboardInterrupt:  # a second Ctrl-C or SIGTERM: the step in flight stays `running`
            with suppress(UpgraderError):
                _end(app, cluster, run.id, token, RunStatus.INTERRUPTED,
                     {"next": f"upgrader resume {run.id}", "reason": "interrupted in the middle of a step"})
            raise
        added = dict(extras.succeeded or {}) if extras is not None else {}
        done = {"target": str(plan.target)} | added
        return RunResult(_end(app, cluster, run.id, token, RunStatus.SUCCEEDED, done))


def _asking(ctx: RunContext, runbook: RunbookHooks, pause: Pause | None) -> Pause:
    def ask(step: Step) -> str | None:
        reason = pause(step) if pause is not None else None
        return reason if reason is not None else runbook.confirm(ctx, step)
    return ask


def _auto_rollback(app: AppContext, cluster: ClusterRecord, run_id: int, token: int, options: ApplyOptions,
                   outcome: dict[str, Any], report: Report, stop: threading.Event) -> tuple[RunStatus, dict[str, Any]]:
    """A failed step or gate with auto-rollback on: back to the snapshot taken before the failing hop,
    under this run's lease, the two runs linked. (rolled_back, ...) when the rollback succeeded; else
    (failed, ...) with the rollback's node-by-node state and the runbook to follow. Nothing is deleted."""
    if not options.auto_rollback or outcome.get("snapshot_id") is None or not outcome.get("changed"):
        return RunStatus.FAILED, outcome
    from upgrader.services import rollback

    try:
        previewed = rollback.preview(app, cluster=cluster.name, snapshot_id=int(outcome["snapshot_id"]),
                                     rollback_of=run_id, wait_api=options.gate_timeout)
        done = rollback.run_under_lease(app, previewed, token=token, options=replace(options, auto_rollback=False),
                                        report=report, stop=stop)
    except UpgraderError as e:  # refused before it changed anything (a snapshot failing verification)
        return RunStatus.FAILED, outcome | {
            "auto_rollback": {"ok": False, "error": e.message},
            "next": [*outcome["next"], f"automatic rollback was refused ({e.message}); nothing was rolled back"]}
    said = dict(done.run.outcome or {})
    if done.run.status is RunStatus.SUCCEEDED:  # back at the snapshot: no incident runbook is called for
        kept = {k: v for k, v in outcome.items() if k not in ("runbook", "runbooks")}
        return RunStatus.ROLLED_BACK, kept | {
            "auto_rollback": {"ok": True, "run": done.run.id, "snapshot_id": outcome["snapshot_id"]},
            "next": [f"rolled back to snapshot {outcome['snapshot_id']} by run {done.run.id} "
                     f"(`upgrader runs show {done.run.id}`)"]}
    return RunStatus.FAILED, outcome | {
        "auto_rollback": {"ok": False, "run": done.run.id, "status": done.run.status.value,
                          "error": said.get("error") or said.get("reason"), "nodes": said.get("nodes")},
        **_rollback_runbooks(said.get("runbook") or restore_entry(cluster.name, outcome.get("snapshot_id")),
                             outcome),
        "next": [f"the automatic rollback (run {done.run.id}) {done.run.status.value}: "
                 f"{said.get('error') or said.get('reason')}; nothing was deleted",
                 *(said.get("next") or [f"upgrader resume {done.run.id}"])]}


def _rollback_runbooks(entry: Any, outcome: dict[str, Any]) -> dict[str, Any]:
    """A failed automatic rollback: its runbook comes first, then those the hop's own failure called for."""
    return {"runbook": entry, "runbooks": [entry, *(outcome.get("runbooks") or [])]}


def soaking_outcome(e: SoakPendingError, run_id: int, cluster: str) -> dict[str, Any]:
    """The run's outcome while a two-step hop soaks: what runs, until when, and the two ways on."""
    soak = e.details
    outcome: dict[str, Any] = {
        "soaking": soak,
        "reason": f"soaking at {soak['version']} emulating {soak['emulated']} until {soak['until']}"
                  + (" (etcd held at its minor)" if soak["etcd_held"] else ""),
        "next": [f"upgrader finalize {run_id}  (raise the emulated version: the point of no return)",
                 f"upgrader rollback {cluster}  (swap the binaries back; no etcd restore)"],
    }
    if soak.get("finalize_refused"):
        outcome["finalize_refused"] = soak["finalize_refused"]
    return outcome


@contextmanager
def _etcd_for(app: AppContext, cluster: ClusterRecord, run_id: int, token: int,
              inventory: Mapping[str, Any], *, lazy: bool = False) -> Iterator[EtcdSession | None]:
    """The cluster's etcd for the gates; when it cannot be opened the run is left interrupted, resumable
    (``lazy``: the caller opens its own when it can, see DriveExtras)."""
    if lazy:
        yield None
        return
    opened = etcd_session(app, cluster, inventory)
    try:
        session = opened.__enter__()
    except UpgraderError as e:
        _end(app, cluster, run_id, token, RunStatus.INTERRUPTED,
             {"next": f"upgrader resume {run_id}", "reason": f"could not reach etcd: {e.message}"})
        raise
    try:
        yield session
    finally:
        opened.__exit__(None, None, None)


def _get(app: AppContext, run_id: int) -> RunRecord:
    with app.unit_of_work() as uow:
        return uow.repo.get_run(run_id)


def _end(app: AppContext, cluster: ClusterRecord, run_id: int, token: int, status: RunStatus,
         outcome: dict[str, Any]) -> RunRecord:
    with app.unit_of_work() as uow:
        run = uow.repo.set_run_status(run_id, status, token=token, outcome=outcome)
        record_event(app, uow, f"run-{status.value}", cluster=cluster.name, run_id=run_id, data=outcome)
        uow.commit()
    return run


def _event(app: AppContext, cluster: str, run_id: int, kind: str, data: dict[str, Any]) -> None:
    with app.unit_of_work() as uow:
        record_event(app, uow, kind, cluster=cluster, run_id=run_id, data=data)
        uow.commit()


def _snapshot(app: AppContext, cluster: ClusterRecord, run_id: int, step: Step, *,
              rehearse: bool = False) -> dict[str, Any]:
    """The hop's snapshot; with ``rehearse``, its rollback rehearsed at once (a scratch etcd beside this
    host, never the cluster): RehearsalFailedError, before the hop changes anything, when it fails."""
    made = create_snapshot(app, cluster=cluster.name, label=f"run-{run_id}-step-{step.n}", take_lease=False,
                           run_id=run_id)
    taken = {"snapshot_id": made.record.id, "known_good": made.record.known_good, "sha256": made.record.sha256,
             "revision": made.record.etcd_status.get("revision")}
    if not rehearse:
        return taken
    from upgrader.services.rollback_loss import rehearse as rehearse_rollback

    try:
        done = rehearse_rollback(app, cluster=cluster.name, snapshot_id=int(made.record.id), run_id=run_id)
    except UpgraderError as e:
        raise RehearsalFailedError(f"the rollback rehearsal of snapshot {made.record.id} failed, so the hop did "
                                   f"not start: {e.message}") from e
    loss = done.loss.counts() if done.loss is not None else {}
    return taken | {"rehearsed": {"ok": True, "restore_tool": done.restore_tool, "restored_keys": done.restored_keys,
                                  "loss": loss, "seconds": round(done.seconds, 3)}}


def _etcd_health(session: EtcdSession | None) -> tuple[bool, str]:
    if session is None:
        return False, "etcd not reachable"
    checks = etcd_checks(session.members(timeout=5.0))
    ok = all(c.ok for c in checks)
    return ok, "; ".join(c.message for c in checks if not c.ok) if not ok else checks[0].message


hold_lease = _lease  # the cluster's lease, for a caller that runs several use cases under one (the tick)
dead_holder = _dead_holder

__all__ = ["RunResult", "apply", "cordoned_by_run", "dead_holder", "describe_changes", "hold_lease", "load_plan",
           "resume", "soaking_outcome"]
