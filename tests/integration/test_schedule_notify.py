"""A tick's webhook summary, end to end through the tick on the in-package fakes, to a real HTTP server on
loopback: sent when something happened to the cluster, not for a quiet tick, and a receiver that is
down never fails the tick (it is listed, and the tick's exit code stays the clusters')."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.test_webhook import receiver
from tests.unit.test_schedule_service import make_run
from tests.unit.test_services import World
from upgrader.domain.runs import RunStatus
from upgrader.services import clusters, schedule, schedule_tick

IN_WINDOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)  # Saturday 03:00 UTC
OUTSIDE = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)


def _failed_run(world: World) -> int:
    """A scheduled upgrade run of prod that failed: the tick reports that the cluster needs a person."""
    return make_run(world, status=RunStatus.FAILED, outcome={"error": "health gate failed"}, scheduled=True)[0]


@pytest.fixture
def prod(tmp_path: Path) -> World:
    world = World(tmp_path)
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    return world


def test_the_summary_goes_to_the_webhook_when_a_cluster_needs_a_person_and_not_for_a_quiet_tick(prod: World) -> None:
    run_id = _failed_run(prod)
    with receiver(200) as hook:
        schedule.set_schedule(prod.app, "prod", schedule.parse_changes(
            {"window": ["sat 02:00-06:00"], "notify": f"{hook.url}?token=s3cret"}))
        quiet = schedule_tick.tick(prod.app, now=OUTSIDE)
        assert hook.requests == [] and quiet.notified == ()
        result = schedule_tick.tick(prod.app, now=IN_WINDOW)
    assert result.exit_code == 6 and result.notified == ({"clusters": ["prod"], "ok": True, "error": None},)
    (sent,) = hook.requests
    assert sent["path"] == "/hooks/upgrader?token=s3cret"
    doc = json.loads(sent["body"])
    assert doc["exit_code"] == 6 and doc["now"] == "2026-12-05T03:00:00Z"
    assert [(c["cluster"], c["action"], c["run_id"]) for c in doc["clusters"]] == [("prod", "needs-person", run_id)]


def test_a_webhook_that_is_down_is_listed_and_the_tick_still_reports_its_clusters(prod: World) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _failed_run(prod)
    schedule.set_schedule(prod.app, "prod", schedule.parse_changes(
        {"window": ["sat 02:00-06:00"], "notify": f"http://127.0.0.1:{port}/hook"}))
    result = schedule_tick.tick(prod.app, now=IN_WINDOW)
    assert result.exit_code == 6 and [c.action for c in result.clusters] == ["needs-person"]
    (notified,) = result.notified
    assert notified["ok"] is False and f"127.0.0.1:{port}" in notified["error"]
