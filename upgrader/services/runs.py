"""Reading runs back: `runs list`, `runs show`, `history`, and `apply --dry-run`'s preview.

The preview walks the plan with the same handlers a run uses and asks each what it would do; the only
things it runs are read-only probes (which package manager a node has), so it changes nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from upgrader.domain.names import validate_name
from upgrader.domain.plans import Plan
from upgrader.domain.records import EventRecord, RunRecord, SnapshotRecord
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.engine.steps import HANDLERS
from upgrader.errors import UpgraderError
from upgrader.ports import NodeTransport
from upgrader.services.apply import load_plan
from upgrader.services.wiring import AppContext


def list_runs(app: AppContext, *, cluster: str | None = None) -> list[RunRecord]:
    if cluster is not None:
        validate_name(cluster)
    with app.unit_of_work() as uow:
        if cluster is not None:
            uow.repo.get_cluster(cluster)  # ClusterNotFoundError rather than an empty list for a typo
        return uow.repo.list_runs(cluster)


def show_run(app: AppContext, *, run_id: int) -> tuple[RunRecord, Plan]:
    from upgrader.domain.plans import plan_from_dict

    with app.unit_of_work() as uow:
        run = uow.repo.get_run(run_id)
        plan = plan_from_dict(dict(uow.repo.get_plan(run.plan_id).document))
    return run, plan


@dataclass(frozen=True, slots=True)
class History:
    cluster: str
    runs: list[RunRecord]
    snapshots: list[SnapshotRecord]
    events: list[EventRecord]


def history(app: AppContext, *, cluster: str, limit: int = 1000) -> History:
    validate_name(cluster)
    with app.unit_of_work() as uow:
        uow.repo.get_cluster(cluster)
        return History(cluster, uow.repo.list_runs(cluster),
                       uow.repo.list_snapshots(cluster, include_deleted=True),
                       uow.repo.list_events(cluster, limit=limit))


def preview(app: AppContext, plan_id: int, options: ApplyOptions) -> tuple[Plan, list[dict[str, Any]]]:
    """Every step of the plan with the commands and API calls it would make, in order; nothing changes."""
    record, plan = load_plan(app, plan_id)
    with app.unit_of_work() as uow:
        cluster = uow.repo.get_cluster(record.cluster)
    api = app.cluster_api(cluster)
    try:
        inventory: dict[str, Any] | None = api.observe_inventory()
    except UpgraderError:
        inventory = None  # the preview still shows the plan's steps; node probes go by name
    transports: dict[str, NodeTransport] = {}

    def transport(node: str) -> NodeTransport:
        if node not in transports:
            transports[node] = app.transport(cluster, node, inventory=inventory)
        return transports[node]

    def refuse(*args: Any) -> Any:
        raise AssertionError("a dry run must not act")

    # a preview asks each node once: it does not wait out an unreachable one (node_attempts)
    ctx = RunContext(run_id=0, token=0, cluster=cluster.name, plan=plan, options=replace(options, node_attempts=1),
                     unit_of_work=app.unit_of_work, api=api, transports=transport, clock=app.clock,
                     hooks=Hooks(preflight=refuse, snapshot=refuse, etcd_health=refuse), stop=threading.Event())
    steps = []
    for step in plan.steps:
        steps.append({**step.to_dict(), "would": HANDLERS[step.action].describe(ctx, step)})
    return plan, steps
