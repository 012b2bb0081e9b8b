"""The points of no return a rollback preview lists (services/rollback_soak.py): none while a two-step hop
soaks, the finalize step's three (emulation raised, storage versions, etcd's minor) once it is finalized,
each with its run and when it passed; a run started before the snapshot counts for nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.unit.node_world import CLUSTER
from tests.unit.test_two_step_service import OPTIONS, TwoStepWorld
from upgrader.domain.runs import RunStatus
from upgrader.services import apply, finalize
from upgrader.services.rollback_soak import needs_snapshot, points_passed


@dataclass
class Snap:
    id: int
    created_at: datetime


def test_points_of_no_return_are_listed_once_finalize_passed_them(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    run = apply.apply(world.app, world.two_step_plan(), OPTIONS).run
    assert run.status is RunStatus.INTERRUPTED
    before = Snap(-1, datetime(2000, 1, 1, tzinfo=UTC))
    assert points_passed(world.app, CLUSTER, before) == []  # type: ignore[arg-type]

    world.set_etcd("3.5.32-0")
    assert finalize.finalize(world.app, run.id).run.status is RunStatus.SUCCEEDED
    passed = points_passed(world.app, CLUSTER, before)  # type: ignore[arg-type]
    assert {p["kind"] for p in passed} == {"emulated-version-raised", "storage-version-migration",
                                           "etcd-minor-upgrade"}
    assert all(p["run_id"] == run.id and p["at"] for p in passed)
    said = needs_snapshot("etcd-restore", before, passed)  # type: ignore[arg-type]
    assert said is not None and f"(run {run.id} step" in said and "point of no return passed" in said
    later = Snap(-1, datetime(2999, 1, 1, tzinfo=UTC))
    assert points_passed(world.app, CLUSTER, later) == []  # type: ignore[arg-type]
