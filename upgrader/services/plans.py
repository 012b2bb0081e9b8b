"""Planning use cases: make a plan (from a file or the live cluster), read plans back, the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader.domain.catalog import Catalog, parse_catalog
from upgrader.domain.inventory import Inventory, inventory_to_dict, parse_inventory
from upgrader.domain.names import validate_name
from upgrader.domain.planning import DEFAULT_SOAK, TwoStep, plan_upgrade
from upgrader.domain.plans import HopKind, Plan, Strategy, WorkerStrategy
from upgrader.domain.records import ClusterRecord, NewObservation, ObservationSource
from upgrader.domain.replay import replay
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version, parse_target
from upgrader.errors import InvalidCatalogError, InvalidInventoryError, PlanNotFoundError, UsageError
from upgrader.inputs import read_text
from upgrader.services.audit import record_event
from upgrader.services.catalog import effective_catalog
from upgrader.services.playbooks import cluster_playbooks
from upgrader.services.wiring import AppContext

MAX_ID = 2**63 - 1  # ledger ids are 64-bit integers
MAX_UNAVAILABLE = 10_000  # workers drained at once; more than any batch a cluster could absorb
MAX_SOAK = 7 * 86400.0  # GKE soaks a two-step upgrade for 6 hours up to 7 days


@dataclass(frozen=True, slots=True)
class PlanRequest:
    cluster: str
    target: str
    state: Path | None
    catalog: Path | None
    skip: tuple[str, ...] = ()
    workers: WorkerStrategy = WorkerStrategy.SKIP_LEVEL
    max_unavailable: int = 1
    two_step: bool = False
    soak_seconds: float = DEFAULT_SOAK
    playbooks: str | None = None  # --playbooks DIR; None: the cluster's, else the shipped ones


@dataclass(frozen=True, slots=True)
class PlanResult:
    plan_id: int | None  # None when there was nothing to do, or not recorded (nothing is recorded then)
    plan: Plan
    document: dict[str, Any]  # plan.to_dict(), made once: it is large for big fleets
    inventory: Inventory | None = None  # what it was planned from (kept for record_plan)
    source: str = "live"


def record_plan(app: AppContext, result: PlanResult) -> int:
    """Record a plan made with ``make_plan(..., record=False)`` (the scheduler records it only once it
    knows the plan's first hop fits in the maintenance window)."""
    assert result.inventory is not None and result.plan.steps
    return _record_plan(app, result.inventory, result.plan, result.document, source=result.source)


def make_plan(app: AppContext, request: PlanRequest, *, record: bool = True) -> PlanResult:
    """Plan and record (unless ``record`` is False: see record_plan). Every refusal happens before
    the ledger is written, so it writes nothing."""
    validate_name(request.cluster)
    target = parse_target(request.target)
    extra_skips = frozenset(Version.parse(v) for v in request.skip)
    if not 1 <= request.max_unavailable <= MAX_UNAVAILABLE:
        raise UsageError(f"--max-unavailable must be between 1 and {MAX_UNAVAILABLE} (workers drained at once)")
    if not 0 <= request.soak_seconds <= MAX_SOAK:  # NaN fails too
        raise UsageError(f"--soak must be between 0s and {MAX_SOAK / 3600:g}h")
    catalog = load_catalog(request.catalog, app=app)
    with app.unit_of_work() as uow:
        cluster = uow.repo.get_cluster(request.cluster)
    playbooks = cluster_playbooks(cluster, request.playbooks)
    inventory = _load_inventory(request) if request.state else observe(app, cluster=cluster.name)
    if inventory.cluster != cluster.name:
        raise InvalidInventoryError(f"cluster: the inventory is for {excerpt(inventory.cluster)}, not {cluster.name!r}")
    skip = frozenset(Version.parse(s.version) for s in cluster.skips) | extra_skips
    strategy = Strategy(workers=request.workers, max_unavailable=request.max_unavailable)
    plan = plan_upgrade(inventory, target, catalog, skip=skip, strategy=strategy, playbooks=playbooks)
    if request.two_step and plan.steps:
        plan = plan_upgrade(inventory, target, catalog, skip=skip, strategy=strategy, playbooks=playbooks,
                            two_step=_two_step(app, cluster, inventory, plan, request))
    document = plan.to_dict()
    if not plan.steps:
        return PlanResult(plan_id=None, plan=plan, document=document)
    replay(inventory, plan, skip=skip)  # an independent check of every rule; a failure is a planner bug
    source = "file" if request.state else "live"
    if not record:
        return PlanResult(plan_id=None, plan=plan, document=document, inventory=inventory, source=source)
    plan_id = _record_plan(app, inventory, plan, document, source=source)
    return PlanResult(plan_id=plan_id, plan=plan, document=document, inventory=inventory, source=source)


def _two_step(app: AppContext, cluster: ClusterRecord, inventory: Inventory, plain: Plan,
              request: PlanRequest) -> TwoStep:
    """The emulation ranges of the plain plan's minor hops, read from the binaries when they can be."""
    line, versions = plain.source_version.line, []
    for hop in plain.hops:
        if hop.kind is HopKind.UPGRADE and hop.minor != line:
            versions.append(hop.version)
        line = hop.minor
    if request.state is not None:
        why = "planned from an inventory file: no node was asked for the binary's --help"
        return TwoStep(dict.fromkeys(versions, why), soak_seconds=request.soak_seconds)
    from upgrader.services.emulation_ranges import read_ranges

    return TwoStep(dict(read_ranges(app, cluster, inventory, versions)), soak_seconds=request.soak_seconds)


def _record_plan(app: AppContext, inventory: Inventory, plan: Plan, document: dict[str, Any], *, source: str) -> int:
    """One short write transaction, after all the work: other runs on the ledger wait for it alone."""
    observation = NewObservation(
        observed_at=inventory.observed_at,
        fingerprint=inventory.fingerprint,
        source=ObservationSource(source),
        inventory=inventory_to_dict(inventory),
    )
    with app.unit_of_work() as uow:
        plan_id = uow.repo.save_plan(
            cluster=plan.cluster,
            observation=observation,
            created_by=app.actor.user,
            target=str(plan.target),
            strategy=document["strategy"],
            skipped_versions=document["skipped_versions"],
            source_fingerprint=plan.source_fingerprint,
            document=document,
            steps=document["steps"],
        )
        record_event(app, uow, "plan-created", cluster=plan.cluster, data={"plan": plan_id, "target": str(plan.target)})
        uow.commit()
    return int(plan_id)


def list_plans(app: AppContext, *, cluster: str | None) -> list[Any]:
    if cluster is not None:
        validate_name(cluster)
    with app.unit_of_work() as uow:
        return list(uow.repo.list_plans(cluster))


def show_plan(app: AppContext, *, plan_id: int) -> tuple[Any, Plan]:
    """The stored plan record and the plan rebuilt from its document."""
    from upgrader.domain.plans import plan_from_dict

    if not 1 <= plan_id <= MAX_ID:  # no such row can exist; SQLite would not even take the number
        shown = str(plan_id) if len(str(plan_id)) <= 20 else f"{str(plan_id)[:20]}..."
        raise PlanNotFoundError(f"no plan with id {shown} (see `upgrader plans list`)")
    with app.unit_of_work() as uow:
        record = uow.repo.get_plan(plan_id)
    return record, plan_from_dict(dict(record.document))


def load_catalog(path: Path | None, *, app: AppContext) -> Catalog:
    """``--catalog FILE`` (an air-gapped mirror's list), else the built-in catalog with the release
    listing the ledger holds (`upgrader catalog refresh`) added to it."""
    if path is None:
        return effective_catalog(app)
    return parse_catalog(read_text(path, kind="catalog", error=InvalidCatalogError), source=str(path))


def observe(app: AppContext, *, cluster: str) -> Inventory:
    """The live inventory as the API tells it: a read-only `plan` never opens etcd nor copies its
    client certificate, nor logs into a node. The fingerprint leaves etcd out, so a plan's source
    fingerprint is comparable with any later `upgrader inventory` of the cluster."""
    from upgrader.services import inventory

    return inventory.observe(app, cluster=cluster, members=None, nodes=False)


def _load_inventory(request: PlanRequest) -> Inventory:
    assert request.state is not None
    text = read_text(request.state, kind="inventory", error=InvalidInventoryError)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidInventoryError(f"inventory {request.state}: not JSON (line {e.lineno}: {e.msg})") from e
    except RecursionError as e:
        raise InvalidInventoryError(f"inventory {request.state}: nested too deeply to be an inventory") from e
    except ValueError as e:  # an integer of thousands of digits
        raise InvalidInventoryError(f"inventory {request.state}: not an inventory ({excerpt(str(e))})") from e
    return parse_inventory(doc)
