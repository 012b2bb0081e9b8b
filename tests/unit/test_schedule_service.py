"""The schedule use cases on the in-package fakes: set/show/clear/list, and the tick's decisions that
need no node (outside a window, a freeze, a busy cluster, a failed run, an unknown cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.test_services import World
from upgrader import errors
from upgrader.domain.runs import RunStatus
from upgrader.engine.context import ApplyOptions
from upgrader.services import clusters, plans, schedule, schedule_tick

SATURDAY_3AM = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)  # inside 'sat 02:00-06:00' UTC
SATURDAY_7AM = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)


@pytest.fixture
def prod(tmp_path: Path) -> World:
    world = World(tmp_path)
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    return world


def _set(world: World, **raw: object) -> schedule.Scheduled:
    return schedule.set_schedule(world.app, "prod", schedule.parse_changes(raw))


def test_a_new_schedule_needs_a_window_and_set_changes_only_what_it_is_given(prod: World) -> None:
    with pytest.raises(errors.InvalidScheduleError, match="--window"):
        _set(prod, tz="UTC")
    assert schedule.show_schedule(prod.app, "prod") is None
    _set(prod, window=["sat 02:00-06:00"], tz="Europe/Berlin", channel="minor", min_release_age="7d")
    shown = _set(prod, freeze=["2026-12-20..2027-01-05"], notify="https://hooks.example/t?token=s3cret")
    policy = shown.to_dict()["policy"]
    assert policy["windows"] == ["sat 02:00-06:00"] and policy["tz"] == "Europe/Berlin"
    assert policy["channel"] == "minor" and policy["min_release_age"] == 7 * 86400
    assert policy["freezes"] == ["2026-12-20..2027-01-05"]
    assert policy["notify"] == "https://hooks.example/t"  # the token is never shown
    assert shown.set_by == "alice"
    assert "s3cret" not in repr([e for e in prod.events()])
    assert _set(prod, freeze=["none"]).policy.freezes == ()


def test_leaving_the_pinned_channel_drops_its_target_and_pinned_needs_one(prod: World) -> None:
    _set(prod, window=["daily 01:00-02:00"], channel="pinned", target="v1.33")
    assert str(schedule.show_schedule(prod.app, "prod").policy.target) == "v1.33"
    assert schedule.show_schedule(prod.app, "prod").policy.target is not None
    assert _set(prod, channel="patch").policy.target is None
    with pytest.raises(errors.InvalidScheduleError, match="--target"):
        _set(prod, channel="pinned")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../etc/passwd", "", "Europe/Berlin\n"])
def test_a_bad_zone_is_refused_and_nothing_is_stored(prod: World, zone: str) -> None:
    with pytest.raises(errors.InvalidScheduleError, match="--tz"):
        _set(prod, window=["sat 02:00-06:00"], tz=zone)
    assert schedule.show_schedule(prod.app, "prod") is None
    assert [k for k, _ in prod.events()] == ["cluster-added"]


def test_clear_and_list(prod: World) -> None:
    assert schedule.list_schedules(prod.app) == []
    _set(prod, window=["sat 02:00-06:00"])
    assert [s.cluster for s in schedule.list_schedules(prod.app)] == ["prod"]
    assert schedule.clear_schedule(prod.app, "prod") is True
    assert schedule.clear_schedule(prod.app, "prod") is False
    assert schedule.list_schedules(prod.app) == []


def test_a_tick_outside_the_window_or_in_a_freeze_asks_the_cluster_nothing(prod: World) -> None:
    _set(prod, window=["sat 02:00-06:00"], freeze=["2026-12-05..2026-12-05"])
    outside = schedule_tick.tick(prod.app, now=SATURDAY_7AM)
    assert [(c.action, c.next_window) for c in outside.clusters] == [("outside-window", "2026-12-12T02:00:00Z")]
    frozen = schedule_tick.tick(prod.app, now=SATURDAY_3AM)
    assert [c.action for c in frozen.clusters] == ["frozen"] and frozen.exit_code == 0
    assert prod.api.calls == 0 and prod.plan_count() == 0
    assert [k for k, _ in prod.events()].count("schedule-tick") == 0  # quiet ticks leave no event


def make_run(world: World, *, status: RunStatus, outcome: dict | None = None, live: bool = False,
             scheduled: bool = False) -> tuple[int, int]:
    """An upgrade run of prod by another host, in ``status``, under a lease that is ``live`` or long
    expired: (run id, lease token)."""
    plan_id = plans.make_plan(world.app, plans.PlanRequest(cluster="prod", target="v1.31", state=None,
                                                           catalog=None)).plan_id
    now = world.app.clock.now()
    with world.ledger.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster="prod", holder="apply@elsewhere:1", ttl_seconds=600 if live else 1,
                                      now=now if live else now - timedelta(seconds=60), run_id=None)
        run = uow.repo.create_run(plan_id=plan_id, started_by="bob", host="elsewhere", command_line="upgrader apply",
                                  token=token, options=ApplyOptions(scheduled=scheduled).to_dict())
        if status is RunStatus.RUNNING:
            uow.repo.claim_run(run.id, token=token)
        else:
            uow.repo.set_run_status(run.id, status, token=token, outcome=outcome)
        uow.commit()
    return int(run.id), int(token)


def test_a_cluster_locked_by_a_live_run_is_reported_busy_not_waited_for(prod: World) -> None:
    _set(prod, window=["sat 02:00-06:00"])
    run_id, _ = make_run(prod, status=RunStatus.RUNNING, live=True)
    result = schedule_tick.tick(prod.app, now=SATURDAY_3AM)
    assert [(c.action, c.exit_code, c.run_id) for c in result.clusters] == [("busy", 7, run_id)]
    assert result.exit_code == 7


def test_a_failed_run_needs_a_person_and_an_operators_interrupted_run_is_not_taken_over(prod: World) -> None:
    _set(prod, window=["sat 02:00-06:00"])
    run_id, token = make_run(prod, status=RunStatus.INTERRUPTED, outcome={"reason": "Ctrl-C"})
    result = schedule_tick.tick(prod.app, now=SATURDAY_3AM)
    (one,) = result.clusters
    assert (one.action, one.exit_code) == ("needs-person", 6) and f"upgrader resume {run_id}" in one.detail
    with prod.ledger.unit_of_work() as uow:
        uow.repo.set_run_status(run_id, RunStatus.FAILED, token=token, outcome={"error": "kubeadm failed"})
        uow.commit()
    (one,) = schedule_tick.tick(prod.app, now=SATURDAY_3AM).clusters
    assert (one.action, one.exit_code) == ("needs-person", 6) and "kubeadm failed" in one.detail
    assert [k for k, _ in prod.events()].count("schedule-tick") == 2


def test_tick_refuses_an_unknown_or_unscheduled_cluster(prod: World) -> None:
    with pytest.raises(errors.ClusterNotFoundError):
        schedule_tick.tick(prod.app, clusters=["nope"], now=SATURDAY_3AM)
    with pytest.raises(errors.UsageError, match="no schedule"):
        schedule_tick.tick(prod.app, clusters=["prod"], now=SATURDAY_3AM)


def test_the_most_severe_exit_code_wins() -> None:
    assert schedule_tick.severest([0, 7, 5]) == 5
    assert schedule_tick.severest([7, 6, 5]) == 6
    assert schedule_tick.severest([0, 0]) == 0 and schedule_tick.severest([]) == 0
    assert schedule_tick.severest([7, 0]) == 7
