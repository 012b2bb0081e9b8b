"""`upgrader apply`, `resume`, `runs` and `history` refusing bad input at the edge: one line on stderr, the
documented exit code, and nothing recorded. A SQLite ledger with a plan made from an inventory file stands in
for a cluster (its API is never reached); runs in other states are written through the ledger's own API."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.conftest import Cli, Result, inventory_doc, node, one_line
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.ledger import db

HOLDER = "apply@ops-9:4242"


def _rows(cli: Cli, table: str) -> int:
    with sqlite3.connect(cli.db) as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])


def _no_tty(cli: Cli, *args: str) -> Result:
    """The command with stdin not a terminal (a CI job, a pipe), whatever runs the tests."""
    proc = subprocess.run([sys.executable, "-m", "upgrader", *args], capture_output=True, text=True, env=cli.env,
                          stdin=subprocess.DEVNULL, timeout=120, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def planned(cli: Cli, kubeconfig: Any) -> int:
    """Cluster prod (its API unreachable) with a plan v1.30 -> v1.31 made from an inventory file."""
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    state = cli.write("inv.json", inventory_doc(node("cp-1", "v1.30.6", cp=True), node("w-1", "v1.30.6")))
    made = cli("plan", "prod", "--to", "v1.31", "--state", str(state), "-o", "json")
    assert made.code == 0, made.err
    return int(made.json()["id"])


@pytest.fixture
def ledger(cli: Cli, planned: int) -> Iterator[Any]:
    with db.open_ledger(f"sqlite:///{cli.db}") as opened:
        yield opened


def _run_of(ledger: Any, plan_id: int, *, ttl: float, finish: bool) -> int:
    """A run of the plan by another process (HOLDER), its lease valid for ``ttl`` seconds from now (negative:
    expired); with ``finish`` every step and the run succeeded and the lease given back."""
    now = datetime.now(UTC)
    with ledger.unit_of_work() as uow:
        token = uow.repo.acquire_lock(cluster="prod", holder=HOLDER, ttl_seconds=3600, now=now - timedelta(hours=1)
                                      + timedelta(seconds=ttl))
        run = uow.repo.create_run(plan_id=plan_id, started_by="alice", host="ops-9",
                                  command_line=f"upgrader apply {plan_id} --yes", token=token, options={})
        if finish:
            for step in run.steps:
                uow.repo.start_step(run.id, step.n, token=token)
                uow.repo.finish_step(run.id, step.n, StepStatus.SUCCEEDED, token=token, outputs={})
            uow.repo.set_run_status(run.id, RunStatus.SUCCEEDED, token=token, outcome={"target": "v1.31.14"})
            uow.repo.release_lock(cluster="prod", token=token)
        uow.commit()
    return int(run.id)


def test_apply_of_an_unknown_plan_is_refused(cli: Cli, planned: int) -> None:
    r = cli("apply", "999", "--yes")
    assert r.code == 2
    assert one_line(r) == "error: no plan with id 999 (see `upgrader plans list`)\n"
    assert _rows(cli, "runs") == 0


def test_apply_without_yes_and_without_a_terminal_is_refused_and_records_nothing(cli: Cli, planned: int) -> None:
    events = _rows(cli, "events")
    r = _no_tty(cli, "apply", str(planned))
    assert r.code == 2
    assert "apply changes cluster prod: confirm with --yes (there is no terminal to ask on)" in one_line(r)
    assert f"`upgrader plans show {planned}`" in r.err
    assert _rows(cli, "runs") == 0 and _rows(cli, "events") == events and _rows(cli, "cluster_locks") == 0


@pytest.mark.parametrize("flag", ["--drain-timeout", "--gate-timeout", "--gate-interval"])
def test_a_duration_that_is_not_one_is_refused_inone_line(cli: Cli, planned: int, flag: str) -> None:
    r = cli("apply", str(planned), "--yes", flag, "banana")
    assert r.code == 2
    assert one_line(r) == "error: invalid duration 'banana': expected e.g. 30s, 5m or 500ms\n"
    assert _rows(cli, "runs") == 0


def test_a_plan_already_applied_is_refused(cli: Cli, planned: int, ledger: Any) -> None:
    run_id = _run_of(ledger, planned, ttl=60, finish=True)
    for args in (("apply", str(planned), "--yes"), ("apply", str(planned), "--dry-run")):
        r = cli(*args)
        assert r.code == 2, (args, r.err)
        assert f"plan {planned} was already applied by run {run_id}; make a new plan" in one_line(r)
    assert _rows(cli, "runs") == 1


def test_a_plan_whose_run_another_process_holds_is_refused_naming_the_holder(cli: Cli, planned: int,
                                                                           ledger: Any) -> None:
    run_id = _run_of(ledger, planned, ttl=60, finish=False)
    r = cli("apply", str(planned), "--yes")
    assert r.code == 7, r.err
    line = one_line(r)
    assert f"cluster 'prod' is locked by {HOLDER}" in line and f"run {run_id}" in line
    assert f"upgrader runs show {run_id}" in line
    assert _rows(cli, "runs") == 1


def test_a_plan_whose_running_run_lost_its_holder_points_at_resume(cli: Cli, planned: int, ledger: Any) -> None:
    run_id = _run_of(ledger, planned, ttl=-5, finish=False)  # its holder stopped renewing: the lease expired
    r = cli("apply", str(planned), "--yes")
    assert r.code == 2, r.err
    assert f"plan {planned} already has run {run_id} (running): continue it with `upgrader resume {run_id}`" \
        in one_line(r)


def test_resume_of_an_unknown_run_is_refused(cli: Cli, planned: int) -> None:
    r = cli("resume", "999", "--yes")
    assert r.code == 2
    assert one_line(r) == "error: no run with id 999 (see `upgrader runs list`)\n"


def test_runs_show_of_an_unknown_run_is_refused(cli: Cli, planned: int) -> None:
    for args in (("runs", "show", "999"), ("runs", "show", "999", "-o", "json")):
        r = cli(*args)
        assert r.code == 2 and r.out == ""
        assert one_line(r) == "error: no run with id 999 (see `upgrader runs list`)\n"


def test_history_and_runs_of_an_unknown_cluster_are_refused(cli: Cli, planned: int) -> None:
    for args in (("history", "nope"), ("history", "nope", "-o", "json"), ("runs", "list", "nope")):
        r = cli(*args)
        assert r.code == 2 and r.out == "", args
        assert one_line(r) == "error: no cluster named 'nope' (see `upgrader cluster list`)\n"
