"""The rollback use case's refusals before anything is touched: no snapshot to go back to (exit 3, naming
the command that makes one), a --to that is neither an id nor last-known-good (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.node_world import CLUSTER, NodeWorld
from upgrader.errors import SnapshotNotFoundError, UpgraderError, UsageError
from upgrader.services import rollback
from upgrader.services.rollback_target import NoSnapshotError


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=1, workers=1)


@pytest.mark.parametrize("to", [None, "last-known-good"])
def test_without_a_snapshot_to_go_back_to_it_says_how_to_take_one_with_exit_3(world: NodeWorld,
                                                                             to: str | None) -> None:
    with pytest.raises(NoSnapshotError) as refused:
        rollback.preview(world.app, cluster=CLUSTER, to=to)
    assert refused.value.exit_code == 3 and f"upgrader snapshot create {CLUSTER}" in refused.value.message
    assert world.runs() == [] and world.events() == []


@pytest.mark.parametrize(("to", "error"), [("latest", UsageError), ("12abc", UsageError),
                                           ("99", SnapshotNotFoundError)])
def test_a_to_that_names_no_snapshot_is_refused_with_exit_2(world: NodeWorld, to: str,
                                                            error: type[UpgraderError]) -> None:
    with pytest.raises(error) as refused:
        rollback.preview(world.app, cluster=CLUSTER, to=to)
    assert refused.value.exit_code == 2 and world.runs() == []
