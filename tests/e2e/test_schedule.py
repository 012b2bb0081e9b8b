"""Scheduled upgrades end to end: `upgrader schedule tick` (as cron runs it) against one 1+1 sandbox
whose ledger is PostgreSQL, the fleet case. Times come from `--now`; leases and certificates use the clock.

The module's tests share the sandbox; the read-only ones come first. Then, in order: two ticks at once
upgrade one patch (a skipped version passed over) and start one run between them; expiring
certificates are renewed in a window; a pinned two-minor target pauses at the hop that would not finish
before its window closes, the next window's tick is SIGKILLed mid-hop, and the tick after it finishes.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.apply_helpers import steps_of
from tests.e2e.conftest import Cli
from tests.e2e.run_checks import Background, wait_for, without_workers_budget
from upgrader.data import builtin_catalog
from upgrader.domain.plans import plan_from_dict
from upgrader.domain.versions import Minor

NAME = "sched"
CLOSED = "http://127.0.0.1:9"  # the release listing is unreachable: ticks carry on with the built-in catalog
SAT = "2026-12-05"  # a Saturday; the window is sat 02:00-06:00 UTC
NEXT_SAT = "2026-12-12"


@dataclass
class Fleet:
    cli: Cli
    db: str
    kubeconfig: str
    start: str  # the sandbox's version

    def run(self, *args: str, check: bool = True, timeout: float = 240) -> Any:
        return self.cli.run("--db", self.db, *args, check=check, timeout=timeout)

    def tick(self, now: str, *, check: bool = True, timeout: float = 600) -> tuple[int, dict[str, Any]]:
        done = self.run("schedule", "tick", "--now", now, "--catalog-url", CLOSED, "-o", "json", check=False,
                        timeout=timeout)
        if check and done.returncode not in (0, 5, 6, 7):
            raise AssertionError(f"tick -> {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done.returncode, json.loads(done.stdout)

    def runs(self) -> list[dict[str, Any]]:
        return json.loads(self.run("runs", "list", NAME, "-o", "json").stdout)

    def kubelets(self) -> set[str]:
        nodes = json.loads(self.cli.kubectl(self.kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
        return {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}


def _patches(minor: str) -> list[str]:
    return [str(v) for v in builtin_catalog().patches(Minor.parse(minor))]


@pytest.fixture(scope="module")
def fleet(mcli: Cli, postgres_server: Any) -> Iterator[Fleet]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    with postgres_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = postgres_server.url(name)
    try:
        start = _patches("v1.31")[-4]  # three patches below the newest
        mcli.run("--db", url, "db", "upgrade")
        mcli.started.append(NAME)
        info = json.loads(mcli.run("--db", url, "sandbox", "up", NAME, "--version", start, "--control-planes", "1",
                                   "--workers", "1", "-o", "json").stdout)
        without_workers_budget(mcli, info["kubeconfig"])  # one worker cannot keep the demo budget while drained
        fleet = Fleet(mcli, url, info["kubeconfig"], start)
        fleet.run("schedule", "set", NAME, "--window", "sat 02:00-06:00", "--tz", "UTC", "--channel", "patch")
        yield fleet
    finally:
        mcli.run("--db", url, "sandbox", "down", NAME, check=False)
        with postgres_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_schedule_set_refuses_bad_input_naming_the_part_and_show_list_tell_where_it_stands(fleet: Fleet) -> None:
    for args, part in ((("--window", "sat 25:00-06:00"), "25"), (("--window", "someday 02:00-03:00"), "someday"),
                       (("--tz", "Mars/Olympus"), "Mars/Olympus"), (("--freeze", "2026-12-20..2026-12-01"), "--freeze"),
                       (("--channel", "pinned"), "--target"), (("--notify", "ftp://x/y"), "--notify")):
        done = fleet.run("schedule", "set", NAME, *args, check=False)
        assert done.returncode == 2 and part in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    shown = json.loads(fleet.run("schedule", "show", NAME, "-o", "json").stdout)
    assert shown["policy"]["windows"] == ["sat 02:00-06:00"] and shown["policy"]["channel"] == "patch"
    assert shown["next_window"] is not None
    listed = json.loads(fleet.run("schedule", "list", "-o", "json").stdout)["schedules"]
    assert [s["cluster"] for s in listed] == [NAME]


def test_a_tick_outside_the_window_or_inside_a_freeze_does_nothing(fleet: Fleet) -> None:
    code, doc = fleet.tick(f"{SAT}T07:00:00Z")
    (one,) = doc["clusters"]
    assert code == 0 and one["action"] == "outside-window", doc
    assert one["next_window"] == f"{NEXT_SAT}T02:00:00Z"
    fleet.run("schedule", "set", NAME, "--freeze", f"{SAT}..{SAT}")
    code, doc = fleet.tick(f"{SAT}T03:00:00Z")
    assert code == 0 and doc["clusters"][0]["action"] == "frozen", doc
    fleet.run("schedule", "set", NAME, "--freeze", "none")
    assert fleet.runs() == []
    assert fleet.kubelets() == {fleet.start}


@pytest.mark.timeout(1200)
def test_ticks_upgrade_in_windows_once_renew_certificates_and_finish_a_paused_then_killed_run(fleet: Fleet) -> None:
    # Two ticks at once on one PostgreSQL ledger: one upgrades to the newest patch that is not
    # skipped, the other finds the cluster busy. One run in all.
    patches = _patches("v1.31")
    fleet.run("cluster", "skip", NAME, patches[-1], "--reason", "a known regression")
    ticks = [Background(fleet.cli, "--db", fleet.db, "schedule", "tick", "--now", f"{SAT}T03:00:00Z",
                        "--catalog-url", CLOSED, "-o", "json", name=f"tick{i}") for i in range(2)]
    try:
        ends = [t.wait(timeout=600) for t in ticks]
    finally:
        for t in ticks:
            t.__exit__()
    assert sorted(e.code for e in ends) == [0, 7], [(e.code, e.err[-2000:]) for e in ends]
    did = {json.loads(e.out)["clusters"][0]["action"]: json.loads(e.out)["clusters"][0] for e in ends}
    assert set(did) == {"upgraded", "busy"}, did
    assert did["upgraded"]["target"] == patches[-2]
    (run,) = fleet.runs()
    assert run["status"] == "succeeded" and run["id"] == did["upgraded"]["run_id"]
    assert fleet.kubelets() == {patches[-2]}

    # Certificates expiring in 10 days are renewed in the window, with no upgrade due (at the newest
    # patch that is not skipped); then the next tick has nothing to do.
    _age_certificates(fleet, days=10)
    code, doc = fleet.tick(f"{SAT}T03:20:00Z")
    assert code == 0 and doc["clusters"][0]["action"] == "certificates-renewed", doc
    checked = json.loads(fleet.run("certs", "check", NAME, "-o", "json").stdout)
    assert checked["due"] is False, checked
    code, doc = fleet.tick(f"{SAT}T03:30:00Z")
    assert code == 0 and doc["clusters"][0]["action"] == "up-to-date", doc
    assert len(fleet.runs()) == 2  # the upgrade and the renewal

    # Pinned two minors ahead, with just enough window left for the first hop: the run pauses at the
    # second hop's start (nothing cordoned), and the next window continues it.
    fleet.run("schedule", "set", NAME, "--channel", "pinned", "--target", "v1.33")
    first, second = _hop_estimates(fleet, "v1.33")
    assert second > first + 150, (first, second)  # the second hop carries the worker: the test's premise
    left = first + 120  # covers the tick's own start, plan, preflight and snapshot before the first hop
    now = _minus(f"{SAT}T06:00:00Z", left)
    code, doc = fleet.tick(now)
    (one,) = doc["clusters"]
    assert code == 0 and one["action"] == "paused", doc
    paused = json.loads(fleet.run("runs", "show", str(one["run_id"]), "-o", "json").stdout)
    assert paused["status"] == "interrupted" and "window" in paused["outcome"]["paused"]["reason"], paused["outcome"]
    hops = steps_of(paused, "kubeadm-upgrade-apply")
    assert [s["status"] for s in hops] == ["succeeded", "pending"], hops
    assert _unschedulable(fleet) == set()

    # The next window's tick resumes it and is killed mid-hop; the tick after it finishes the run.
    with Background(fleet.cli, "--db", fleet.db, "schedule", "tick", "--now", f"{NEXT_SAT}T02:00:00Z",
                    "--catalog-url", CLOSED, "-o", "json", name="killed") as killed:
        wait_for(fleet.db, NAME, action="kubeadm-upgrade-apply", status="running", proc=killed, timeout=300)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
    code, doc = fleet.tick(f"{NEXT_SAT}T02:10:00Z")
    (one,) = doc["clusters"]
    assert code == 0 and one["action"] == "upgraded" and one["run_id"] == paused["id"], doc
    done = json.loads(fleet.run("runs", "show", str(paused["id"]), "-o", "json").stdout)
    assert done["status"] == "succeeded"
    newest_133 = _patches("v1.33")[-1]
    assert fleet.kubelets() == {newest_133}
    assert _unschedulable(fleet) == set()
    events = json.loads(fleet.run("history", NAME, "-o", "json").stdout)["events"]
    assert [e["kind"] for e in events if e["run_id"] == paused["id"]].count("run-resumed") == 2


def _age_certificates(fleet: Fleet, *, days: int) -> None:
    fleet.run("sandbox", "certs", NAME, "--expire-in", f"{days}d")
    checked = json.loads(fleet.run("certs", "check", NAME, "-o", "json").stdout)
    assert checked["due"] is True, checked


def _hop_estimates(fleet: Fleet, target: str) -> tuple[float, float]:
    """The estimates the tick will make of the plan's two hops, from the same ledger history."""
    from upgrader.domain.schedule import estimate, step_estimates
    from upgrader.services.wiring import AppContext

    plan = plan_from_dict(json.loads(fleet.run("plan", NAME, "--to", target, "-o", "json").stdout))
    app = AppContext(db=fleet.db)
    try:
        with app.unit_of_work() as uow:
            per_action = step_estimates(uow.repo.recent_step_seconds())
    finally:
        app.close()  # its PostgreSQL connections, now
    by_hop = [[s for s in plan.steps if s.hop == hop] for hop in range(len(plan.hops))]
    assert len(by_hop) == 2, plan.hops
    return estimate(by_hop[0], per_action), estimate(by_hop[1], per_action)


def _minus(when: str, seconds: float) -> str:
    from datetime import datetime, timedelta

    moved = datetime.fromisoformat(when) - timedelta(seconds=seconds)
    return moved.strftime("%Y-%m-%dT%H:%M:%SZ")


def _unschedulable(fleet: Fleet) -> set[str]:
    nodes = json.loads(fleet.cli.kubectl(fleet.kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"] for n in nodes if n["spec"].get("unschedulable")}
