"""A runbook run on the in-package fakes: recorded as a plan of kind runbook under the lease; each
confirming step asked and the answer recorded; a declined step leaves the run interrupted and
resumable, and the resume asks only for steps not yet confirmed; a dry run writes nothing; params are
checked against the cluster; only nodes upgrader cordoned are uncordoned; a service-backed step runs
its use case as a child run whose id the step records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.node_world import CLUSTER, NodeWorld
from upgrader.domain.plans import Action, Reversibility, Step
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.engine.runbook_steps import HANDLERS as RUNBOOK_HANDLERS
from upgrader.engine.runbook_steps import cordon_state
from upgrader.errors import ClusterUnreachableError, UsageError
from upgrader.services import apply, runbooks

OPTIONS = ApplyOptions(auto_rollback=False, gate_timeout=30, gate_interval=1, gate_passes=1, node_attempts=1)
TWO_ASKS = """\
name: two-asks
title: Uncordon twice, asking each time
purpose: A test runbook with two steps that confirm.
when_to_use: ["a test"]
params:
  - name: run
    help: the run whose marks go
    kind: run
steps:
  - name: look
    title: Look
    action: observe-cluster
  - name: first
    title: First uncordon
    action: uncordon-left-by-upgrader
    with: {run: "{run}"}
  - name: second
    title: Second uncordon
    action: uncordon-left-by-upgrader
    expect: nothing left
after: ["nodes schedulable"]
"""


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=1, workers=2, version="v1.33.6")


@pytest.fixture
def extra(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    (d / "two-asks.yaml").write_text(TWO_ASKS)
    return d


def cordon(world: NodeWorld, node: str, by: str | None) -> None:
    patch: dict[str, Any] = {"spec": {"unschedulable": True}}
    if by is not None:
        patch["metadata"] = {"annotations": {CORDON_ANNOTATION: by}}
    world.api.patch_node(node, patch)


def node(world: NodeWorld, name: str) -> dict[str, Any]:
    found = world.api.get_node(name)
    assert found is not None
    return found


def counts(world: NodeWorld) -> tuple[int, int, int]:
    with world.ledger.unit_of_work() as uow:
        return (len(uow.repo.list_runs(CLUSTER)), len(uow.repo.list_plans(CLUSTER)),
                len(uow.repo.list_events(CLUSTER, limit=10_000)))


def events(world: NodeWorld, kind: str) -> list[dict[str, Any]]:
    with world.ledger.unit_of_work() as uow:
        return [dict(e.data or {}) | {"actor": e.actor} for e in uow.repo.list_events(CLUSTER, limit=10_000)
                if e.kind == kind]


def test_a_run_with_yes_uncordons_only_what_upgrader_cordoned_and_records_everything(world: NodeWorld) -> None:
    cordon(world, "w-1", "7")
    cordon(world, "w-2", None)  # a person's cordon
    previewed = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {})
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert not node(world, "w-1")["spec"].get("unschedulable")
    assert CORDON_ANNOTATION not in (node(world, "w-1")["metadata"].get("annotations") or {})
    assert node(world, "w-2")["spec"]["unschedulable"] is True  # someone else's: left alone
    out = done.run.steps[1].outputs or {}
    assert out["uncordoned"] == [{"node": "w-1", "run": "7"}]
    assert out["left_alone"][0]["node"] == "w-2" and "someone else" in out["left_alone"][0]["why"]
    assert (done.run.steps[0].outputs or {})["nodes"][1]["cordoned_by"] == "7"  # observe-cluster saw it
    confirmed = events(world, "runbook-step-confirmed")
    assert [(e["step"], e["answered"], e["actor"]) for e in confirmed] == [(2, "--yes", "alice")]
    assert "PATCH node w-1" in confirmed[0]["shown"][0] and "leave node w-2 cordoned" in confirmed[0]["shown"][1]
    with world.ledger.unit_of_work() as uow:
        document = uow.repo.get_plan(done.run.plan_id).document
        assert uow.repo.get_lock(CLUSTER) is None or uow.repo.get_lock(CLUSTER).expires_at <= world.clock.now()
    rb = document["runbook"]
    assert document["kind"] == "runbook" and rb["name"] == "uncordon-nodes-left-by-upgrader"
    assert rb["sha256"] == previewed.loaded.sha256 and "uncordon-left-by-upgrader" in rb["text"]
    assert document["steps"][1]["params"]["title"] == "Uncordon the nodes upgrader cordoned"
    assert "runbook-started" in world.events() and "run-succeeded" in world.events()


def test_a_dry_run_says_what_each_step_would_do_and_writes_nothing(world: NodeWorld) -> None:
    cordon(world, "w-1", "7")
    before = counts(world)
    doc = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {}).to_dict()
    assert counts(world) == before and node(world, "w-1")["spec"]["unschedulable"] is True
    with world.ledger.unit_of_work() as uow:
        assert uow.repo.get_lock(CLUSTER) is None  # no lease taken either
    assert [s["confirm"] for s in doc["steps"]] == [False, True]
    assert doc["steps"][1]["would"][0].startswith("PATCH node w-1: spec.unschedulable=false")


def test_a_declined_step_interrupts_the_run_and_resume_asks_only_the_steps_not_confirmed(
        world: NodeWorld, extra: Path) -> None:
    cordon(world, "w-1", "7")
    asked: list[int] = []

    def first_yes_then_no(step: Step, lines: list[str]) -> bool:
        asked.append(step.n)
        return step.n == 2

    previewed = runbooks.preview(world.app, "two-asks", CLUSTER, {}, extra=extra)
    stopped = runbooks.run(world.app, previewed, confirm=first_yes_then_no, options=OPTIONS)
    assert asked == [2, 3]
    assert stopped.run.status is RunStatus.INTERRUPTED
    outcome = stopped.run.outcome or {}
    assert outcome["paused"]["before_step"] == 3 and "declined by alice" in outcome["reason"]
    assert [s.status for s in stopped.run.steps] == [StepStatus.SUCCEEDED, StepStatus.SUCCEEDED,
                                                     StepStatus.PENDING]
    assert [e["step"] for e in events(world, "runbook-step-declined")] == [3]

    asked.clear()
    done = apply.resume(world.app, stopped.run.id, confirm=lambda s, lines: asked.append(s.n) is None)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert asked == [3]  # step 2 was confirmed already
    assert [e["step"] for e in events(world, "runbook-step-confirmed")] == [2, 3]


def test_with_no_one_to_ask_the_run_stops_before_the_first_confirming_step(world: NodeWorld) -> None:
    cordon(world, "w-1", "7")
    previewed = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {})
    stopped = runbooks.run(world.app, previewed, options=OPTIONS)
    assert stopped.run.status is RunStatus.INTERRUPTED
    assert "no one can be asked" in (stopped.run.outcome or {})["reason"]
    assert node(world, "w-1")["spec"]["unschedulable"] is True
    done = apply.resume(world.app, stopped.run.id, yes=True)
    assert done.run.status is RunStatus.SUCCEEDED and not node(world, "w-1")["spec"].get("unschedulable")


def test_params_are_checked_against_the_cluster_before_anything_is_recorded(world: NodeWorld, extra: Path) -> None:
    (extra / "on-node.yaml").write_text(TWO_ASKS.replace("two-asks", "on-node").replace(
        "kind: run", "kind: control-plane-node").replace('with: {run: "{run}"}', ""))
    before = counts(world)
    for params, said in (({"run": "w-1"}, "w-1 is not a control-plane node"),
                         ({"run": "nope"}, "cluster prod has no node 'nope'")):
        with pytest.raises(UsageError, match=said):
            runbooks.preview(world.app, "on-node", CLUSTER, params, extra=extra)
    with pytest.raises(UsageError, match="no run 99 in the ledger"):
        runbooks.preview(world.app, "two-asks", CLUSTER, {"run": "99"}, extra=extra)
    with pytest.raises(UsageError, match="no runbook 'nope'"):
        runbooks.preview(world.app, "nope", CLUSTER, {})
    with pytest.raises(UsageError, match="invalid runbook name"):
        runbooks.load("../etc/passwd")
    assert counts(world) == before


def test_cordon_states_follow_the_annotation_and_the_given_run() -> None:
    def n(unschedulable: bool, mark: str | None) -> dict[str, Any]:
        return {"spec": {"unschedulable": unschedulable},
                "metadata": {"annotations": {CORDON_ANNOTATION: mark} if mark else {}}}
    assert cordon_state(n(True, "7"), None) == "ours" and cordon_state(n(True, "7"), "7") == "ours"
    assert cordon_state(n(True, "7"), "8") == "foreign" and cordon_state(n(True, None), None) == "foreign"
    assert cordon_state(n(False, "7"), None) == "stale" and cordon_state(n(False, None), None) == "free"


def test_a_node_changed_between_read_and_patch_is_judged_again_not_overwritten(world: NodeWorld) -> None:
    cordon(world, "w-1", "7")
    api = world.api
    next(n for n in api.nodes if n["metadata"]["name"] == "w-1")["metadata"]["resourceVersion"] = "41"
    original = api.patch_node
    calls: list[dict[str, Any]] = []

    def conflicting(name: str, patch: Any) -> dict[str, Any]:
        calls.append(dict(patch))
        if len(calls) == 1:  # a person took the node over meanwhile: their own cordon, no mark
            original(name, {"metadata": {"annotations": {CORDON_ANNOTATION: None}}})
            raise ClusterUnreachableError("cluster prod: PATCH answered 409 Conflict")
        return original(name, patch)

    api.patch_node = conflicting  # type: ignore[method-assign]
    plan_step = Step(n=1, action=Action.UNCORDON_LEFT_BY_UPGRADER, node=None, version=None, batch=None,
                     reversibility=Reversibility.NONE, params={"with": {}})
    ctx = RunContext(run_id=1, token=1, cluster=CLUSTER, plan=None, options=OPTIONS,  # type: ignore[arg-type]
                     unit_of_work=world.ledger.unit_of_work, api=api, transports=lambda n: world.nodes[n],
                     clock=world.clock, hooks=Hooks(preflight=dict, snapshot=lambda s: {},
                                                    etcd_health=lambda: (True, "ok")))
    out = RUNBOOK_HANDLERS[plan_step.action].act(ctx, plan_step)
    assert calls[0]["metadata"]["resourceVersion"] == "41" and len(calls) == 1  # read again: not ours any more
    assert out["uncordoned"] == [] and out["left_alone"][0]["node"] == "w-1"
    assert node(world, "w-1")["spec"]["unschedulable"] is True  # the person's cordon stands


def test_renew_certificates_runs_a_child_renewal_and_a_resume_continues_that_child(tmp_path: Path) -> None:
    from tests.unit.test_certificates import OPTIONS as CERT_OPTIONS
    from tests.unit.test_certificates import CertNode

    world = NodeWorld(tmp_path, control_planes=2, workers=0, version="v1.33.6")
    certs = {n: CertNode(world, world.nodes[n]) for n in ("cp-1", "cp-2")}
    certs["cp-2"].stuck = {"etcd"}  # the child renewal fails at cp-2's restart
    previewed = runbooks.preview(world.app, "renew-certificates", CLUSTER, {})
    assert any("kubeadm certs renew all" in line for line in previewed.would[1])
    failed = runbooks.run(world.app, previewed, yes=True, options=CERT_OPTIONS)
    assert failed.run.status is RunStatus.FAILED
    outcome = failed.run.outcome or {}
    assert outcome["runbook"] == "renew-certificates" and outcome["step"] == 2
    child_id = events(world, "runbook-child-run")[0]["run"]
    assert f"certificate-renewal run {child_id} failed" in outcome["error"]

    certs["cp-2"].stuck = set()
    done = apply.resume(world.app, failed.run.id, yes=True)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert (done.run.steps[1].outputs or {})["run"] == child_id  # the same child, resumed
    with world.ledger.unit_of_work() as uow:
        assert uow.repo.get_run(child_id).status is RunStatus.SUCCEEDED
        assert len(uow.repo.list_runs(CLUSTER)) == 2
    assert certs["cp-1"].renewals == 1 and certs["cp-2"].renewals == 1


def test_kubeadm_upgrade_interrupted_resumes_the_stopped_upgrade_run_as_its_child(world: NodeWorld) -> None:
    import threading

    from tests.unit.test_apply_service import OPTIONS as APPLY_OPTIONS

    plan_id = world.plan("v1.34")
    stop = threading.Event()
    world.nodes["cp-1"].hook("apt-get", "install", "-y", "kubeadm=*", before=lambda argv: stop.set())
    stopped = apply.apply(world.app, plan_id, APPLY_OPTIONS, stop=stop)
    assert stopped.run.status is RunStatus.INTERRUPTED

    previewed = runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {})
    assert previewed.would[1][0].startswith(f"resume upgrade run {stopped.run.id} (interrupted")
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert (done.run.steps[1].outputs or {})["run"] == stopped.run.id
    assert world.run(stopped.run.id).status is RunStatus.SUCCEEDED
    assert all(n["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.34.") for n in world.api.list_nodes())
    assert [e["step"] for e in events(world, "runbook-child-run")] == [2]

    again = runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {})
    assert again.would[1] == ("no upgrade run of this cluster stopped half way: the step will fail, changing nothing",)


def test_the_plan_of_a_runbook_run_cannot_be_applied_as_an_upgrade(world: NodeWorld) -> None:
    from upgrader.errors import RunRefusedError

    previewed = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {})
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    with pytest.raises(RunRefusedError, match="is the record of a runbook run"):
        apply.apply(world.app, done.run.plan_id, OPTIONS)


def test_with_no_stopped_run_and_a_version_the_hop_is_planned_and_applied_as_the_child(world: NodeWorld) -> None:
    previewed = runbooks.preview(world.app, "kubeadm-upgrade-interrupted", CLUSTER, {"version": "v1.34"})
    assert previewed.would[1][0].startswith("plan prod to v1.34")
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    out = done.run.steps[1].outputs or {}
    child = world.run(out["run"])
    assert child.status is RunStatus.SUCCEEDED and child.plan_id == out["plan"]
    assert all(n["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.34.") for n in world.api.list_nodes())


def test_a_dead_upgraders_lease_is_taken_over_and_a_live_one_is_not(world: NodeWorld) -> None:
    from upgrader.errors import RunLockedError

    cordon(world, "w-1", "7")
    previewed = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {})
    with world.ledger.unit_of_work() as uow:  # the lease of a process of this host that no longer exists
        uow.repo.acquire_lock(cluster=CLUSTER, holder="apply@ops-1:999999999", ttl_seconds=60, now=world.clock.now())
        uow.commit()
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert done.run.status is RunStatus.SUCCEEDED and "lease-taken-over" in world.events()
    with world.ledger.unit_of_work() as uow:  # a live holder (another host): refused, nothing recorded
        uow.repo.acquire_lock(cluster=CLUSTER, holder="apply@ops-2:1", ttl_seconds=60, now=world.clock.now())
        uow.commit()
    before = counts(world)
    with pytest.raises(RunLockedError):
        runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    assert counts(world)[:2] == before[:2]



def test_confirmations_and_child_runs_are_read_from_the_runs_own_events_however_many_came_since(
        world: NodeWorld) -> None:
    import threading
    from types import SimpleNamespace

    from upgrader.services.runbook_children import CHILD, Children

    previewed = runbooks.preview(world.app, "uncordon-nodes-left-by-upgrader", CLUSTER, {})
    done = runbooks.run(world.app, previewed, yes=True, options=OPTIONS)
    with world.ledger.unit_of_work() as uow:
        uow.repo.append_event(kind=CHILD, actor="alice", host="ops-1", command_line="upgrader runbook run",
                              cluster=CLUSTER, run_id=done.run.id, data={"step": 2, "run": done.run.id})
        for i in range(runbooks.EVENTS_READ + 1):  # a busy cluster: other runs' events pile up after them
            uow.repo.append_event(kind="step-succeeded", actor="bob", host="ops-2", command_line="upgrader apply 9",
                                  cluster=CLUSTER, run_id=9999, data={"i": i})
        uow.commit()
    assert runbooks.confirmed_steps(world.app, CLUSTER, done.run.id) == {2}
    with world.ledger.unit_of_work() as uow:
        record = uow.repo.get_cluster(CLUSTER)
    children = Children(world.app, record, report=lambda e: None, stop=threading.Event())
    found = children.child_of(SimpleNamespace(run_id=done.run.id), previewed.plan.steps[1])  # type: ignore[arg-type]
    assert found is not None and found.id == done.run.id
