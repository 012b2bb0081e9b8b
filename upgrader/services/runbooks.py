"""`upgrader runbook list|show|run`: incident runbooks, written procedures a person can follow under
stress, whose every step, answer and output is recorded.

The runbooks ship in ``playbooks/runbooks/`` (an operator's ``--runbooks DIR`` adds to them and
overrides one of the same name). Each file is read strictly (domain/runbooks.py: a bad one names the
file, the step and the field, exit 2).

run: the params are checked against the cluster (a node that exists, a control-plane node, a run or
snapshot of this cluster), the runbook is recorded as a plan document of ``kind: runbook`` (its name,
the params, the file's sha256 and text) and run like an apply's (services.apply._drive) under the
cluster's lease. Before each step that confirms (by default every step that changes something) the
person is shown what it will do, from the step's handler, and asked; the answer is an event
``runbook-step-confirmed`` or ``runbook-step-declined`` (step, who, when, what was shown). A declined
step stops the run there, interrupted and resumable; ``upgrader resume RUN`` asks again only for the
steps not yet confirmed. With no one to ask and no ``--yes``, the run stops at that step the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upgrader.domain.inventory import parse_inventory
from upgrader.domain.names import validate_name
from upgrader.domain.plans import Plan, Step, plan_from_dict
from upgrader.domain.records import ClusterRecord, RunRecord
from upgrader.domain.runbook_actions import ArgKind
from upgrader.domain.runbooks import (
    Runbook,
    plan_runbook,
    resolve_params,
    runbook_document,
)
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.engine.executor import StepFailedError
from upgrader.engine.steps import HANDLERS
from upgrader.errors import RunNotFoundError, SnapshotNotFoundError, UpgraderError, UsageError
from upgrader.services.apply import Confirm, DriveExtras, Report, RunResult, _drive, _lease, dead_holder
from upgrader.services.audit import record_event
from upgrader.services.etcd_access import LazyEtcdSession
from upgrader.services.run_options import run_options
from upgrader.services.runbook_children import Children
from upgrader.services.runbook_files import Listed, LoadedRunbook, catalog, listing, load, show
from upgrader.services.wiring import AppContext

CONFIRMED, DECLINED = "runbook-step-confirmed", "runbook-step-declined"
EVENTS_READ = 5000  # of one run and one kind: at most one per step
NO_ANSWER = "no answer (end of input)"

__all__ = ["Listed", "LoadedRunbook", "RunbookPreview", "catalog", "listing", "load", "preview", "resume", "run",
           "show"]


# -- a run ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RunbookPreview:
    """What a runbook run will do on this cluster, read before anything changes."""

    loaded: LoadedRunbook
    cluster: str
    values: Mapping[str, str | None]
    plan: Plan
    inventory: Mapping[str, Any]
    would: tuple[tuple[str, ...], ...]  # per step, what its handler says it will do
    # what the describing read (a rollback's preview: its loss list takes a scratch restore), reused by
    # the run that follows at once instead of read again
    children: Children | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        rb = self.loaded.runbook
        return {"runbook": rb.name, "title": rb.title, "cluster": self.cluster, "params": dict(self.values),
                "sha256": self.loaded.sha256,
                "steps": [{"n": s.n, "name": s.params["name"], "title": s.params["title"], "action": str(s.action),
                           "with": dict(s.params["with"]), "confirm": s.params["confirm"],
                           "expect": s.params["expect"], "would": list(w)}
                          for s, w in zip(self.plan.steps, self.would, strict=True)],
                "after": list(rb.after)}


def preview(app: AppContext, name: str, cluster: str, params: Mapping[str, str], *,
            extra: Path | None = None, options: ApplyOptions | None = None) -> RunbookPreview:
    """The runbook, its params checked against the cluster, and what each step will do; nothing changes."""
    validate_name(cluster)
    loaded = load(name, extra)
    values = resolve_params(loaded.runbook, params)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    inventory = _inventory(app, record)
    _check_params(app, loaded.runbook, values, cluster, inventory)
    parsed = parse_inventory(inventory)
    versions = [n.components.apiserver for n in parsed.control_planes if n.components is not None]
    versions += [n.kubelet for n in parsed.nodes]
    version = max(versions) if versions else Version.parse("v1.0.0")
    plan = plan_runbook(loaded.runbook, values, cluster=cluster, version=version, fingerprint=parsed.fingerprint)
    options = options or run_options(auto_rollback=False)
    children = Children(app, record, report=lambda e: None, stop=threading.Event())
    children.check(list(plan.steps))
    would = _describe_all(app, record, plan, inventory, options, children)
    return RunbookPreview(loaded, cluster, values, plan, inventory, would, children)


def _inventory(app: AppContext, record: ClusterRecord) -> dict[str, Any]:
    """The cluster's nodes: asked of the API, or, when it does not answer (the incident may be that),
    the last observation the ledger holds."""
    try:
        return app.cluster_api(record).observe_inventory()
    except UpgraderError as e:
        with app.unit_of_work() as uow:
            last = uow.repo.latest_observation(record.name)
        if last is None:
            raise UsageError(f"cluster {record.name}: the API does not answer ({e.message}) and the ledger holds "
                             "no observation of its nodes") from e
        return dict(last.inventory)


def _check_params(app: AppContext, runbook: Runbook, values: Mapping[str, str | None], cluster: str,
                  inventory: Mapping[str, Any]) -> None:
    parsed = parse_inventory(inventory)
    nodes = {n.name: n for n in parsed.nodes}
    for param in runbook.params:
        value = values.get(param.name)
        if value is None:
            continue
        where = f"--param {param.name}={value}"
        if param.kind in (ArgKind.NODE, ArgKind.CONTROL_PLANE_NODE, ArgKind.WORKER_NODE):
            node = nodes.get(value)
            if node is None:
                raise UsageError(f"{where}: cluster {cluster} has no node {value!r} "
                                 f"(nodes: {', '.join(sorted(nodes))})")
            if param.kind is ArgKind.CONTROL_PLANE_NODE and not node.control_plane:
                raise UsageError(f"{where}: {value} is not a control-plane node")
            if param.kind is ArgKind.WORKER_NODE and node.control_plane:
                raise UsageError(f"{where}: {value} is a control-plane node, not a worker")
        elif param.kind is ArgKind.RUN:
            with app.unit_of_work() as uow:
                try:
                    found = uow.repo.get_run(int(value))
                except RunNotFoundError:
                    raise UsageError(f"{where}: no run {value} in the ledger") from None
            if found.cluster != cluster:
                raise UsageError(f"{where}: run {value} is a run of cluster {found.cluster}, not of {cluster}")
        elif param.kind is ArgKind.SNAPSHOT:
            with app.unit_of_work() as uow:
                try:
                    snap = uow.repo.get_snapshot(int(value))
                except SnapshotNotFoundError:
                    raise UsageError(f"{where}: no snapshot {value} in the ledger") from None
            if snap.cluster != cluster:
                raise UsageError(f"{where}: snapshot {value} is a snapshot of cluster {snap.cluster}, not of "
                                 f"{cluster}")


def _describe_all(app: AppContext, record: ClusterRecord, plan: Plan, inventory: Mapping[str, Any],
                  options: ApplyOptions, children: Children) -> tuple[tuple[str, ...], ...]:
    """Each step's handler's own account of what it will do, read with a context that runs nothing."""
    ctx = RunContext(run_id=0, token=0, cluster=record.name, plan=plan, options=options,
                     unit_of_work=app.unit_of_work, api=app.cluster_api(record),
                     transports=lambda node: app.transport(record, node, inventory=inventory), clock=app.clock,
                     hooks=Hooks(preflight=dict, snapshot=lambda s: {}, etcd_health=lambda: (False, "not asked")),
                     runbook=children.hooks(lambda c, s: None))
    return tuple(tuple(describe(ctx, step)) for step in plan.steps)


def describe(ctx: RunContext, step: Step) -> list[str]:
    try:
        return HANDLERS[step.action].describe(ctx, step)
    except UpgraderError as e:
        return [f"(cannot tell now: {e.message})"]


def run(app: AppContext, previewed: RunbookPreview, *, yes: bool = False, confirm: Confirm | None = None,
        options: ApplyOptions | None = None, report: Report = lambda e: None,
        stop: threading.Event | None = None) -> RunResult:
    """Record the runbook run and drive it under the cluster's lease (RunLockedError, exit 7, when
    another run holds it). ``yes`` answers every confirmation; else ``confirm`` asks the person; with
    neither, the run stops, resumable, before the first step that confirms."""
    options = options or run_options(auto_rollback=False)
    rb = previewed.loaded
    document = runbook_document(previewed.plan, rb.runbook, previewed.values, sha256=rb.sha256, text=rb.text)
    document["runbook"]["inventory"] = dict(previewed.inventory)
    plan = previewed.plan
    with app.unit_of_work() as uow:
        lock = uow.repo.get_lock(previewed.cluster)
    # a runbook is what runs after a crash: the lease of an upgrader process of this host that died is
    # taken over at once, as resume does; any other holder is waited out (RunLockedError, exit 7)
    with _lease(app, previewed.cluster, run_id=None, take_over=dead_holder(app, lock)) as token:
        with app.unit_of_work() as uow:
            plan_id = uow.repo.save_plan(cluster=plan.cluster, observation=None, created_by=app.actor.user,
                                         target=str(plan.target), strategy=document["strategy"], skipped_versions=[],
                                         source_fingerprint=None, document=document, steps=document["steps"])
            started = uow.repo.create_run(plan_id=plan_id, started_by=app.actor.user, host=app.actor.host,
                                          command_line=app.actor.command_line, token=token,
                                          options=options.to_dict())
            record_event(app, uow, "runbook-started", cluster=plan.cluster, run_id=started.id,
                         data={"plan": plan_id, "runbook": rb.runbook.name, "params": dict(previewed.values),
                               "sha256": rb.sha256})
            uow.commit()
            cluster = uow.repo.get_cluster(plan.cluster)
        return _go(app, cluster, started, token, options, document, report, stop or threading.Event(), yes, confirm,
                   previewed.children)


def resume(app: AppContext, run_id: int, token: int, *, report: Report, stop: threading.Event,
           confirm: Confirm | None = None, yes: bool = False) -> RunResult:
    """services.apply.resume hands a runbook's run here once it holds the lease and claimed the run."""
    with app.unit_of_work() as uow:
        started = uow.repo.get_run(run_id)
        document = dict(uow.repo.get_plan(started.plan_id).document)
        cluster = uow.repo.get_cluster(started.cluster)
    return _go(app, cluster, started, token, ApplyOptions.from_dict(started.options), document, report, stop, yes,
               confirm)


def _go(app: AppContext, cluster: ClusterRecord, started: RunRecord, token: int, options: ApplyOptions,
        document: Mapping[str, Any], report: Report, stop: threading.Event, yes: bool,
        confirm: Confirm | None, children: Children | None = None) -> RunResult:
    spec = document["runbook"]
    plan = plan_from_dict(dict(document))
    children = (children or Children(app, cluster, report=report, stop=stop)).bind(report=report, stop=stop)
    with LazyEtcdSession(app, cluster, spec["inventory"]) as etcd:
        extras = DriveExtras(
            document=document, inventory=spec["inventory"], etcd=etcd.session, rollback=None,
            failure=lambda failed, error: failure_outcome(spec["name"], failed, error),
            succeeded={"summary": f"runbook {spec['name']} done on {cluster.name}", "runbook": spec["name"]},
            runbook=children.hooks(_confirmer(app, cluster.name, yes, confirm)))
        return _drive(app, cluster, plan, started, token, options, report, stop,
                      preflight=lambda: {"passed": True}, extras=extras)


def _confirmer(app: AppContext, cluster: str, yes: bool,
               confirm: Confirm | None) -> Callable[[RunContext, Step], str | None]:
    def ask(ctx: RunContext, step: Step) -> str | None:
        params = step.params or {}
        if not params.get("confirm") or step.n in confirmed_steps(app, cluster, ctx.run_id):
            return None
        name = params.get("name", step.action)
        if not yes and confirm is None:
            return (f"step {step.n} ({name}) waits for a person's confirmation and no one can be asked: "
                    f"`upgrader resume {ctx.run_id}` from a terminal, or with --yes")
        lines = describe(ctx, step)
        how = "--yes" if yes else "terminal"
        try:
            answer = True if yes else bool(confirm(step, lines) if confirm is not None else False)
        except EOFError:  # the input ended (Ctrl-D, a closed pipe) before an answer: no is the answer
            answer, how = False, NO_ANSWER
        with app.unit_of_work() as uow:
            record_event(app, uow, CONFIRMED if answer else DECLINED, cluster=cluster, run_id=ctx.run_id,
                         data={"step": step.n, "name": name, "title": params.get("title"), "shown": lines,
                               "by": app.actor.user, "answered": how})
            uow.commit()
        if answer:
            return None
        said = f"not confirmed: {NO_ANSWER}" if how == NO_ANSWER else f"declined by {app.actor.user}"
        return f"step {step.n} ({name}) {said}; nothing of it ran: `upgrader resume {ctx.run_id}` asks again"
    return ask


def confirmed_steps(app: AppContext, cluster: str, run_id: int) -> set[int]:
    """The steps of the run a person (or --yes) confirmed, read from the audit trail."""
    with app.unit_of_work() as uow:
        events = uow.repo.list_events(cluster, limit=EVENTS_READ, run_id=run_id, kind=CONFIRMED)
    return {int((e.data or {})["step"]) for e in events if isinstance((e.data or {}).get("step"), int)}


def failure_outcome(runbook: str, failed: RunRecord, error: StepFailedError) -> dict[str, Any]:
    step = error.step
    params = step.params or {}
    return {
        "reason": f"runbook {runbook}: step {step.n} ({params.get('name', step.action)}) failed",
        "error": error.message,
        "runbook": runbook,
        "step": step.n,
        "action": str(step.action),
        "node": step.node,
        "output": error.tail,
        "next": [f"read what the step saw: upgrader runs show {failed.id}",
                 f"fix the cause, then continue: upgrader resume {failed.id}"],
    }
