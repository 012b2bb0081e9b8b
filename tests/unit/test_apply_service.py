"""`apply` and `resume` on a fake cluster (tests/unit/node_world.py): a plan made into an upgraded
cluster, what a failed, interrupted or stopped run leaves for the next person, what resume observes,
and everything apply refuses before it changes anything."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.unit.node_world import APT_LIST, CLUSTER, MANIFESTS, READ_ONLY, YUM_REPO, NodeWorld, build
from upgrader import errors
from upgrader.domain.plans import Action
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, StepEvent
from upgrader.ports import CommandResult, EtcdMember
from upgrader.services import apply, runs

TARGET = Version.parse("v1.31.14")  # the built-in catalog's newest v1.31
OPTIONS = ApplyOptions(gate_interval=1.0)


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=1, workers=2)


def _n(world: NodeWorld, run_id: int, action: Action, node: str | None = None) -> int:
    return next(s.n for s in world.run(run_id).steps if s.action == action and (node is None or s.node == node))


def _lock(world: NodeWorld) -> object:
    with world.ledger.unit_of_work() as uow:
        return uow.repo.get_lock(CLUSTER)


def _outputs(world: NodeWorld, run_id: int, n: int) -> dict[str, Any]:
    return dict(world.steps(run_id)[n].outputs or {})


def _installs(world: NodeWorld, node: str, package: str) -> int:
    return sum(1 for argv in world.nodes[node].ran
               if argv[:2] in (["apt-get", "install"], ["dnf", "install"]) and any(a.startswith(package) for a in argv))


@pytest.mark.parametrize("manager", ["apt", "dnf"])
def test_apply_takes_every_node_to_the_target_and_records_the_run(tmp_path: Path, manager: str) -> None:
    world = NodeWorld(tmp_path, control_planes=1, workers=2, manager=manager)
    plan_id = world.plan("v1.31", max_unavailable=2)
    events: list[StepEvent] = []

    result = apply.apply(world.app, plan_id, OPTIONS, report=events.append)

    run = result.run
    assert result.lease_lost is None and run.status is RunStatus.SUCCEEDED
    assert run.outcome == {"target": str(TARGET)} and run.options == OPTIONS.to_dict()
    assert all(s.status is StepStatus.SUCCEEDED and s.attempts == 1 for s in run.steps)
    assert sorted((e.n, e.status) for e in events) == [(s.n, x) for s in run.steps for x in ("running", "succeeded")]
    assert world.kubelets() == {"cp-1": str(TARGET), "w-1": str(TARGET), "w-2": str(TARGET)}
    assert world.cluster_version() == TARGET
    assert f"kube-apiserver:{TARGET}".encode() in world.nodes["cp-1"].files[f"{MANIFESTS}/kube-apiserver.yaml"][0]
    repo = APT_LIST if manager == "apt" else YUM_REPO
    for name, node in world.nodes.items():
        assert node.installed == {p: build(manager, TARGET) for p in ("kubeadm", "kubelet", "kubectl")}, name
        assert b"/core:/stable:/v1.31/" in node.files[repo][0] and b"v1.30" not in node.files[repo][0]
        assert node.held == ({"kubeadm", "kubelet", "kubectl"} if manager == "apt" else set())
    if manager == "dnf":  # the repository's exclude line is dnf's hold: only an explicit install passes it
        assert all("--disableexcludes=kubernetes" in argv for argv in world.nodes["w-1"].ran if argv[1] == "install")
    assert not any(n["spec"].get("unschedulable") or CORDON_ANNOTATION in (n["metadata"].get("annotations") or {})
                   for n in world.api.nodes)
    snapshot = _outputs(world, run.id, _n(world, run.id, Action.SNAPSHOT))
    with world.ledger.unit_of_work() as uow:
        record = uow.repo.get_snapshot(snapshot["snapshot_id"])
    assert record.run_id == run.id and record.known_good and snapshot["known_good"] is True
    assert Path(record.path).is_file() and Path(record.path).is_relative_to(world.store)
    assert world.events()[-1] == "run-succeeded" and "run-started" in world.events()
    assert _lock(world) is None  # the lease is given back


def test_a_failed_step_ends_the_run_failed_with_its_output_the_snapshot_and_the_resume_command(
        world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    world.nodes["w-1"].answer("apt-get", "install", "-y", "kubectl=*", result=CommandResult(
        100, "Reading package lists...\nBuilding dependency tree...\n",
        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n"),
        times=1)

    result = apply.apply(world.app, plan_id, OPTIONS)

    run = result.run
    failed = _n(world, run.id, Action.UPGRADE_KUBELET, "w-1")
    snapshot_id = _outputs(world, run.id, _n(world, run.id, Action.SNAPSHOT))["snapshot_id"]
    assert run.status is RunStatus.FAILED and world.events()[-1] == "run-failed"
    outcome = dict(run.outcome or {})
    assert (outcome["reason"], outcome["step"], outcome["action"], outcome["node"]) == (
        "step failed", failed, "upgrade-kubelet", "w-1")
    assert outcome["error"].endswith("(exit 100): E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by "
                                     "process 4242 (unattended-upgr)")
    assert outcome["output"].splitlines() == ["Reading package lists...", "Building dependency tree...",
                                              "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by "
                                              "process 4242 (unattended-upgr)"]
    assert outcome["snapshot_id"] == snapshot_id and outcome["changed"] is True
    assert outcome["cordoned_by_run"] == ["w-1"]  # drained before it failed: it stays out until the run ends
    assert outcome["next"][0] == f"find and fix the cause, then continue: upgrader resume {run.id}"
    assert any(f"known-good snapshot {snapshot_id}" in line for line in outcome["next"])
    assert _outputs(world, run.id, failed)["output"] == outcome["output"]
    assert all(s.status is StepStatus.PENDING for s in run.steps if s.n > failed)
    assert _lock(world) is None

    resumed = apply.resume(world.app, run.id)  # the lock was let go: resume continues where it failed

    assert resumed.run.status is RunStatus.SUCCEEDED
    steps = world.steps(run.id)
    assert steps[failed].attempts == 2 and all(s.attempts == 1 for n, s in steps.items() if n != failed)
    assert world.kubelets()["w-1"] == str(TARGET) and world.nodes["w-1"].held >= {"kubelet", "kubectl"}
    assert world.events()[-1] == "run-succeeded" and "run-resumed" in world.events()


def _interrupt(argv: list[str]) -> None:
    raise KeyboardInterrupt  # the process is killed in the middle of the step (a second Ctrl-C, SIGTERM)


def test_resume_observes_a_step_left_running_whose_package_is_already_at_the_version(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    world.nodes["cp-1"].hook("apt-mark", "hold", "kubeadm", after=_interrupt, times=1)  # installed and held

    with pytest.raises(KeyboardInterrupt):
        apply.apply(world.app, plan_id, OPTIONS)

    run = world.runs()[0]
    kubeadm = _n(world, run.id, Action.UPGRADE_KUBEADM, "cp-1")
    assert run.status is RunStatus.INTERRUPTED and (run.outcome or {})["next"] == f"upgrader resume {run.id}"
    assert world.steps(run.id)[kubeadm].status is StepStatus.RUNNING and _lock(world) is None
    assert _installs(world, "cp-1", "kubeadm") == 1

    result = apply.resume(world.app, run.id)

    assert result.run.status is RunStatus.SUCCEEDED
    step, outputs = world.steps(run.id)[kubeadm], _outputs(world, run.id, kubeadm)
    assert step.status is StepStatus.SUCCEEDED and step.attempts == 1 and outputs["observed"] is True
    assert outputs["packages"] == {"kubeadm": build("apt", TARGET)}
    assert _installs(world, "cp-1", "kubeadm") == 1  # not installed a second time


@pytest.mark.parametrize("where", [("apt-get", "install", "-y", "kubeadm=*"), ("apt-mark", "hold", "kubeadm")],
                         ids=["before the install", "before the hold"])
def test_resume_acts_again_on_a_step_left_running_whose_effect_is_not_all_there(
        world: NodeWorld, where: tuple[str, ...]) -> None:
    plan_id = world.plan("v1.31")
    world.nodes["cp-1"].hook(*where, before=_interrupt, times=1)

    with pytest.raises(KeyboardInterrupt):
        apply.apply(world.app, plan_id, OPTIONS)

    run = world.runs()[0]
    kubeadm = _n(world, run.id, Action.UPGRADE_KUBEADM, "cp-1")
    assert "kubeadm" not in world.nodes["cp-1"].held  # unheld, and installed or not: the step is not done
    installs = _installs(world, "cp-1", "kubeadm")

    result = apply.resume(world.app, run.id)

    assert result.run.status is RunStatus.SUCCEEDED
    step, outputs = world.steps(run.id)[kubeadm], _outputs(world, run.id, kubeadm)
    assert step.attempts == 2 and "observed" not in outputs and outputs["packages"] == {
        "kubeadm": build("apt", TARGET)}
    assert _installs(world, "cp-1", "kubeadm") == installs + 1
    assert "kubeadm" in world.nodes["cp-1"].held  # as an upgrade leaves it


def test_a_stop_request_interrupts_the_run_between_steps_and_resume_finishes_it(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    stop = threading.Event()
    world.nodes["cp-1"].hook("apt-get", "install", "-y", "kubeadm=*", before=lambda argv: stop.set())

    result = apply.apply(world.app, plan_id, OPTIONS, stop=stop)

    run = result.run
    kubeadm = _n(world, run.id, Action.UPGRADE_KUBEADM, "cp-1")
    assert run.status is RunStatus.INTERRUPTED and world.events()[-1] == "run-interrupted"
    assert run.outcome == {"next": f"upgrader resume {run.id}", "reason": "interrupted by the operator"}
    assert [s.status for s in run.steps if s.n <= kubeadm] == [StepStatus.SUCCEEDED] * kubeadm
    assert all(s.status is StepStatus.PENDING for s in run.steps if s.n > kubeadm)
    assert not world.nodes["cp-1"].ran_any("kubeadm", "upgrade") and _lock(world) is None

    resumed = apply.resume(world.app, run.id)

    assert resumed.run.status is RunStatus.SUCCEEDED and resumed.run.options == OPTIONS.to_dict()
    assert world.steps(run.id)[kubeadm].attempts == 1


def test_a_run_whose_lease_is_taken_over_stops_and_writes_nothing_more(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    seen: dict[str, object] = {}

    def take_over(argv: list[str]) -> None:
        with world.ledger.unit_of_work() as uow:
            lock = uow.repo.get_lock(CLUSTER)
            assert lock is not None
            uow.repo.acquire_lock(cluster=CLUSTER, holder="apply@ops-2:77", ttl_seconds=60, now=world.clock.now(),
                                  run_id=lock.run_id, take_over=lock.fencing_token)
            uow.commit()
        seen["run"], seen["events"], seen["lock"] = world.runs()[0], world.events(), _lock(world)
    world.nodes["cp-1"].hook("kubeadm", "upgrade", "apply", before=take_over, times=1)

    result = apply.apply(world.app, plan_id, OPTIONS)

    assert result.lease_lost is not None and "apply@ops-2:77" in result.lease_lost
    assert result.run == seen["run"] and result.run.status is RunStatus.RUNNING  # for the new holder to resume
    assert world.events() == seen["events"] and _lock(world) == seen["lock"]  # its lease is not released by us
    assert world.steps(result.run.id)[_n(world, result.run.id, Action.KUBEADM_UPGRADE_APPLY)].status is \
        StepStatus.RUNNING
    assert not world.nodes["cp-1"].ran_any("systemctl")


# -- refusals, before anything changes --------------------------------------------------------------------

def _changes(world: NodeWorld) -> list[list[str]]:
    """Node commands that change something (a refused apply may only have read)."""
    read_only = {"df", "stat", "ls", "head", "grep", "dpkg-query", "rpm"}
    return [argv for _, argv in world.all_commands() if argv[0] not in read_only
            and argv[:3] not in (["kubeadm", "certs", "check-expiration"], ["kubeadm", "config", "images"])]


def test_apply_refuses_a_plan_already_applied(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    done = apply.apply(world.app, plan_id, OPTIONS).run
    with pytest.raises(errors.RunRefusedError, match=rf"plan {plan_id} was already applied by run {done.id}") as e:
        apply.apply(world.app, plan_id, OPTIONS)
    assert e.value.exit_code == 2 and len(world.runs()) == 1


def test_apply_refuses_a_plan_that_has_a_run_to_resume(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    world.nodes["cp-1"].answer("kubeadm", "upgrade", result=CommandResult(1, "", "boom\n"))
    failed = apply.apply(world.app, plan_id, OPTIONS).run
    with pytest.raises(errors.RunRefusedError, match=rf"already has run {failed.id} \(failed\): continue it with "
                       rf"`upgrader resume {failed.id}`") as e:
        apply.apply(world.app, plan_id, OPTIONS)
    assert e.value.exit_code == 2 and len(world.runs()) == 1


def test_apply_refuses_a_cluster_that_changed_since_the_plan_naming_the_change(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    world.set_kubelet("w-2", Version.parse("v1.30.7"))  # someone upgraded a node by hand
    with pytest.raises(errors.ClusterChangedError) as e:
        apply.apply(world.app, plan_id, OPTIONS)
    assert e.value.exit_code == 3
    assert (f"cluster {CLUSTER} changed since plan {plan_id} was made (w-2 kubelet v1.30.6 -> v1.30.7)"
            in e.value.message)
    assert "upgrader plan prod --to v1.31.14" in e.value.message
    assert world.runs() == [] and world.all_commands() == [] and _lock(world) is None


def test_apply_refuses_when_the_preflight_fails_and_records_no_run(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    member = world.etcd.etcd_members[0]
    world.etcd.etcd_members[0] = EtcdMember(id=member.id, name=member.name, peer_urls=member.peer_urls,
                                            client_urls=member.client_urls, healthy=False, leader=False,
                                            error="context deadline exceeded")
    with pytest.raises(errors.PreflightError) as e:
        apply.apply(world.app, plan_id, OPTIONS)
    assert e.value.exit_code == 4
    assert e.value.message.startswith(f"preflight refused the apply of plan {plan_id} (nothing was changed): etcd: ")
    assert "cp-1" in e.value.message and f"upgrader preflight {CLUSTER} --to {TARGET}" in e.value.message
    assert world.runs() == [] and _changes(world) == [] and _lock(world) is None
    assert "run-started" not in world.events()


def test_apply_refuses_a_cluster_another_run_holds(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31")
    with world.ledger.unit_of_work() as uow:
        uow.repo.acquire_lock(cluster=CLUSTER, holder="apply@ops-2:77", ttl_seconds=60, now=world.clock.now())
        uow.commit()
    with pytest.raises(errors.RunLockedError, match="locked by apply@ops-2:77") as e:
        apply.apply(world.app, plan_id, OPTIONS)
    assert e.value.exit_code == 7 and world.runs() == [] and _changes(world) == []


def test_resume_refuses_a_run_that_ended(world: NodeWorld) -> None:
    run = apply.apply(world.app, world.plan("v1.31"), OPTIONS).run
    with pytest.raises(errors.RunRefusedError, match=rf"run {run.id} already ended \(succeeded\)") as e:
        apply.resume(world.app, run.id)
    assert e.value.exit_code == 2


def test_a_dry_run_previews_every_step_running_only_read_only_probes(world: NodeWorld) -> None:
    plan_id = world.plan("v1.31", max_unavailable=2)
    files = {name: dict(node.files) for name, node in world.nodes.items()}
    api_nodes = world.api.list_nodes()

    plan, steps = runs.preview(world.app, plan_id, OPTIONS)

    assert [s["n"] for s in steps] == [s.n for s in plan.steps] and all(s["would"] for s in steps)
    kubeadm = next(s for s in steps if s["action"] == "upgrade-kubeadm" and s["node"] == "cp-1")
    assert kubeadm["would"] == ["point the pkgs.k8s.io repository at v1.31", "apt-get update",
                                "apt-mark unhold kubeadm", "apt-get install -y kubeadm=1.31.14-*",
                                "apt-mark hold kubeadm"]
    ran = [argv for _, argv in world.all_commands()]
    assert ran and all((argv[0], argv[1]) in READ_ONLY for argv in ran), ran
    assert {name: dict(node.files) for name, node in world.nodes.items()} == files
    assert world.api.list_nodes() == api_nodes and world.runs() == [] and _lock(world) is None
