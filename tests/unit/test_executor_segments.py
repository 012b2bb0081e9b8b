"""The executor's reading of a plan: serial steps in order, worker batches as concurrent nodes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from upgrader.data import builtin_catalog
from upgrader.domain.planning import plan_upgrade
from upgrader.domain.plans import Strategy
from upgrader.domain.versions import Minor
from upgrader.engine.executor import Batch, segments


@given(workers=st.integers(0, 9), max_unavailable=st.integers(1, 4), hops=st.integers(1, 3))
def test_segments_keep_every_step_once_in_order_and_batches_within_max_unavailable(
        workers: int, max_unavailable: int, hops: int) -> None:
    inv = inventory(cp("cp-1", "v1.30.6"), cp("cp-2", "v1.30.6"),
                    *(worker(f"w{i}", "v1.30.6") for i in range(workers)))
    plan = plan_upgrade(inv, Minor(1, 30 + hops), builtin_catalog(), strategy=Strategy(max_unavailable=max_unavailable))
    seen: list[int] = []
    for segment in segments(plan.steps):
        if isinstance(segment, Batch):
            assert 1 <= len(segment.by_node) <= max_unavailable
            for node, steps in segment.by_node.items():
                assert all(s.node == node and s.batch == segment.number for s in steps)
                assert [s.n for s in steps] == sorted(s.n for s in steps)
                seen += [s.n for s in steps]
            assert all(s.node is None for s in segment.after)
            seen += [s.n for s in segment.after]
        else:
            assert segment.batch is None
            seen.append(segment.n)
    assert sorted(seen) == [s.n for s in plan.steps]
    batches = [s for s in segments(plan.steps) if isinstance(s, Batch)]
    assert len({b.number for b in batches}) == len(batches)  # a batch is never split in two
