"""Planning use cases: make a plan (from a file or the live cluster), read plans back, the catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader.data import builtin_catalog
from upgrader.domain.catalog import Catalog, parse_catalog
from upgrader.domain.inventory import Inventory, inventory_to_dict, parse_inventory
from upgrader.domain.planning import plan_upgrade
from upgrader.domain.plans import Plan, Strategy, WorkerStrategy
from upgrader.domain.replay import replay
from upgrader.domain.versions import Version, parse_target
from upgrader.errors import InvalidCatalogError, InvalidInventoryError, UsageError
from upgrader.services.audit import record_event
from upgrader.services.wiring import AppContext


@dataclass(frozen=True, slots=True)
class PlanRequest:
    cluster: str
    target: str
    state: Path | None
    catalog: Path | None
    skip: tuple[str, ...] = ()
    workers: WorkerStrategy = WorkerStrategy.SKIP_LEVEL
    max_unavailable: int = 1


@dataclass(frozen=True, slots=True)
class PlanResult:
    plan_id: int | None  # None when there was nothing to do (nothing is recorded then)
    plan: Plan
    document: dict[str, Any]  # plan.to_dict(), made once: it is large for big fleets


def make_plan(app: AppContext, request: PlanRequest) -> PlanResult:
    """Plan and record. Every refusal happens before the ledger is written, so it writes nothing."""
    target = parse_target(request.target)
    extra_skips = frozenset(Version.parse(v) for v in request.skip)
    if request.max_unavailable < 1:
        raise UsageError("--max-unavailable must be at least 1")
    catalog = load_catalog(request.catalog)
    with app.unit_of_work() as uow:
        cluster = uow.repo.get_cluster(request.cluster)
    inventory = _load_inventory(request) if request.state else observe(app, cluster=cluster.name)
    if inventory.cluster != cluster.name:
        raise InvalidInventoryError(f"cluster: the inventory is for {inventory.cluster!r}, not {cluster.name!r}")
    skip = frozenset(Version.parse(s.version) for s in cluster.skips) | extra_skips
    strategy = Strategy(workers=request.workers, max_unavailable=request.max_unavailable)
    plan = plan_upgrade(inventory, target, catalog, skip=skip, strategy=strategy)
    document = plan.to_dict()
    if not plan.steps:
        return PlanResult(plan_id=None, plan=plan, document=document)
    replay(inventory, plan, skip=skip)  # an independent check of every rule; a failure is a planner bug
    plan_id = _record_plan(app, inventory, plan, document, source="file" if request.state else "live")
    return PlanResult(plan_id=plan_id, plan=plan, document=document)


def _record_plan(app: AppContext, inventory: Inventory, plan: Plan, document: dict[str, Any], *, source: str) -> int:
    with app.unit_of_work() as uow:
        observation = uow.repo.record_observation(
            cluster=plan.cluster,
            observed_at=inventory.observed_at,
            fingerprint=inventory.fingerprint,
            source=source,
            inventory=inventory_to_dict(inventory),
        )
        plan_id = uow.repo.save_plan(
            cluster=plan.cluster,
            observation_id=observation,
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
    with app.unit_of_work() as uow:
        return list(uow.repo.list_plans(cluster))


def show_plan(app: AppContext, *, plan_id: int) -> tuple[Any, Plan]:
    """The stored plan record and the plan rebuilt from its document."""
    from upgrader.domain.plans import plan_from_dict

    with app.unit_of_work() as uow:
        record = uow.repo.get_plan(plan_id)
    return record, plan_from_dict(dict(record.document))


def load_catalog(path: Path | None) -> Catalog:
    """``--catalog FILE`` (an air-gapped mirror's list), else the built-in catalog."""
    if path is None:
        return builtin_catalog()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidCatalogError(f"catalog {path}: cannot read it ({e.__class__.__name__})") from e
    return parse_catalog(text, source=str(path))


def observe(app: AppContext, *, cluster: str) -> Inventory:
    """Read the live cluster's versions through its API; the document is validated like a file."""
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    doc = app.cluster_api(record).observe_inventory()
    try:
        return parse_inventory(doc)
    except InvalidInventoryError as e:
        raise InvalidInventoryError(f"observed inventory of {cluster}: {e.message}") from e


def _load_inventory(request: PlanRequest) -> Inventory:
    assert request.state is not None
    try:
        doc = json.loads(request.state.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InvalidInventoryError(f"inventory {request.state}: no such file") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInventoryError(f"inventory {request.state}: cannot read it ({e.__class__.__name__})") from e
    except json.JSONDecodeError as e:
        raise InvalidInventoryError(f"inventory {request.state}: not JSON (line {e.lineno}: {e.msg})") from e
    except RecursionError as e:
        raise InvalidInventoryError(f"inventory {request.state}: nested too deeply to be an inventory") from e
    return parse_inventory(doc)
