"""A two-step hop on the fake cluster (tests/unit/node_world.py): plan --two-step reads the range through
the node's ctr, apply pauses soaking, resume soaks on, finalize is refused while etcd is below its
prerequisite and then raises the emulation, moves etcd and finishes the run; a range that cannot be
read leaves the hop plain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.unit.node_world import CLUSTER, MANIFESTS, NodeWorld
from upgrader import errors
from upgrader.domain.plans import Action
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions
from upgrader.engine.emulation_config import config_flags
from upgrader.ports import CommandResult
from upgrader.services import apply, finalize
from upgrader.services.plans import PlanRequest, make_plan

OPTIONS = ApplyOptions(gate_interval=0.1, gate_passes=1)
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _help(version: str) -> str:
    minor = int(version.split(".")[1])
    low = max(31, minor - 3)
    return ("      --emulated-version strings   The versions different components emulate their capabilities "
            "(APIs, features, ...) of.\n                                   Version format could only be major.minor, "
            f"for example: '--emulated-version=wardle=1.2,kube=1.31'. Options are: kube=1.{low}..1.{minor}"
            f"(default:1.{minor})\n                                   If the component is not specified, defaults "
            'to "kube"\n      --feature-gates colonSeparatedMultimapStringString   Comma-separated list\n')


def _ctr(argv: list[str]) -> CommandResult:
    if argv[3:5] == ["images", "ls"] or argv[3:5] == ["images", "pull"]:
        return CommandResult(0, "", "")
    ref = argv[5]
    return CommandResult(0, _help(ref.rsplit(":", 1)[1]), "")


def _manifest(component: str, image: str, flag: str | None) -> bytes:
    command = [component, "--v=2", *([f"--emulated-version={flag}"] if flag else [])]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": component, "namespace": "kube-system"},
           "spec": {"containers": [{"name": component, "image": f"registry.k8s.io/{component}:{image}",
                                    "command": command}]}}
    return yaml.safe_dump(pod).encode()


class TwoStepWorld(NodeWorld):
    """kubeadm here renders kubeadm-config's extraArgs into the manifests, moves etcd unless told not to,
    and the API's /version reports the emulation of the manifests (as the sandbox's does)."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp, control_planes=1, workers=1, version="v1.33.6")
        self.etcd_desired = "3.6.5-0"
        for name, node in self.nodes.items():
            node.handlers["ctr"] = _ctr
            node.answer("kubeadm", "config", "images", "list",
                        result=CommandResult(0, f"registry.k8s.io/etcd:{self.etcd_desired}\n", ""))
            node.hook("kubeadm", "upgrade", after=lambda argv, n=name: self._rendered(n, argv))
        self.set_etcd("3.5.24-0")
        self._rendered("cp-1", ["kubeadm", "upgrade", "node", "--etcd-upgrade=false"])
        self.api.server_version = self._version  # type: ignore[method-assign]

    def set_cluster_version(self, version: Version) -> None:
        """kubeadm's upload-config moves kubernetesVersion and keeps the rest (extraArgs too)."""
        key = ("kube-system", "kubeadm-config")
        text = self.api.configmaps[key]["ClusterConfiguration"]
        self.api.configmaps[key] = {"ClusterConfiguration": re.sub(r"(?m)^kubernetesVersion: .*$",
                                                                   f"kubernetesVersion: {version}", text)}

    def _version(self) -> dict[str, str]:
        """/version of cp-1's apiserver: its manifest's image and --emulated-version (the sandbox's rule)."""
        pod = yaml.safe_load(self.nodes["cp-1"].files[f"{MANIFESTS}/kube-apiserver.yaml"][0])
        container = pod["spec"]["containers"][0]
        version = container["image"].rsplit(":", 1)[1]
        flags = [a.split("=", 1)[1] for a in container["command"] if a.startswith("--emulated-version=")]
        minor = flags[-1].split(".")[1] if flags else version.split(".")[1]
        return {"major": "1", "minor": version.split(".")[1], "gitVersion": version, "emulationMajor": "1",
                "emulationMinor": minor}

    def set_etcd(self, tag: str) -> None:
        self.nodes["cp-1"].files[f"{MANIFESTS}/etcd.yaml"] = (_manifest("etcd", tag, None), 0o600)

    def _rendered(self, name: str, argv: list[str]) -> None:
        node = self.nodes[name]
        if not node.control_plane:
            return
        flag = config_flags(self.api.configmaps[("kube-system", "kubeadm-config")]["ClusterConfiguration"])[
            "kube-apiserver"]
        version = str(self.cluster_version())
        for component in COMPONENTS:
            node.files[f"{MANIFESTS}/{component}.yaml"] = (_manifest(component, version, flag), 0o600)
        if "--etcd-upgrade=false" not in argv:
            self.set_etcd(self.etcd_desired)

    def etcd_tag(self) -> str:
        return yaml.safe_load(self.nodes["cp-1"].files[f"{MANIFESTS}/etcd.yaml"][0])["spec"]["containers"][0][
            "image"].rsplit(":", 1)[1]

    def two_step_plan(self) -> int:
        made = make_plan(self.app, PlanRequest(cluster=CLUSTER, target="v1.34", state=None, catalog=None,
                                               two_step=True, soak_seconds=3600))
        assert made.plan_id is not None
        return made.plan_id


def test_apply_soaks_then_finalize_passes_the_point_of_no_return(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    plan_id = world.two_step_plan()

    run = apply.apply(world.app, plan_id, OPTIONS).run
    assert run.status is RunStatus.INTERRUPTED
    soak = run.outcome["soaking"]
    assert (soak["emulated"], soak["etcd_held"]) == ("v1.33", True)
    assert world.etcd_tag() == "3.5.24-0"  # held
    assert world.api.server_version()["emulationMinor"] == "33"
    assert world.kubelets() == {"cp-1": "v1.33.6", "w-1": "v1.33.6"}
    steps = {s.action: s for s in world.run(run.id).steps}
    assert steps[Action.SOAK].status is StepStatus.RUNNING

    # resume while soaking soaks on; finalize below etcd 3.5.32 is refused and changes nothing
    assert apply.resume(world.app, run.id).run.outcome["soaking"]["until"] == soak["until"]
    with pytest.raises(errors.PreflightError, match=r"3\.5\.32"):
        finalize.finalize(world.app, run.id)
    assert world.api.server_version()["emulationMinor"] == "33" and world.etcd_tag() == "3.5.24-0"
    assert world.run(run.id).status is RunStatus.INTERRUPTED

    world.set_etcd("3.5.32-0")
    done = finalize.finalize(world.app, run.id).run
    assert done.status is RunStatus.SUCCEEDED, done.outcome
    assert world.api.server_version()["emulationMinor"] == "34" and world.etcd_tag() == "3.6.5-0"
    config = world.api.configmaps[("kube-system", "kubeadm-config")]["ClusterConfiguration"]
    assert set(config_flags(config).values()) == {None}
    assert set(world.kubelets().values()) == {"v1.34.11"}
    with world.ledger.unit_of_work() as uow:
        kinds = [e.kind for e in uow.repo.list_events(CLUSTER)]
    assert "point-of-no-return" in kinds and "soak-ended" in kinds
    with pytest.raises(errors.RunRefusedError, match="not soaking"):
        finalize.finalize(world.app, run.id)


def test_a_node_without_ctr_leaves_the_hop_plain_and_says_why(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    del world.nodes["cp-1"].handlers["ctr"]
    made = make_plan(world.app, PlanRequest(cluster=CLUSTER, target="v1.34", state=None, catalog=None,
                                            two_step=True))
    assert made.plan.hops[0].emulate is None
    assert any("not two-step" in w and "ctr" in w for w in made.plan.warnings), made.plan.warnings


def test_soak_out_of_range_is_bad_input(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    with pytest.raises(errors.UsageError, match="--soak"):
        make_plan(world.app, PlanRequest(cluster=CLUSTER, target="v1.34", state=None, catalog=None,
                                         two_step=True, soak_seconds=8 * 86400))


def test_a_crash_after_kubeadm_in_step_one_is_observed_on_resume_not_run_again(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    plan_id = world.two_step_plan()

    def crash(argv: list[str]) -> None:
        raise KeyboardInterrupt  # the process dies right after kubeadm rendered the manifests

    world.nodes["cp-1"].hook("kubeadm", "upgrade", "apply", after=crash, times=1)
    with pytest.raises(KeyboardInterrupt):
        apply.apply(world.app, plan_id, OPTIONS)
    run_id = world.runs()[0].id
    step = next(s for s in world.run(run_id).steps if s.action == Action.EMULATED_UPGRADE_APPLY)
    assert step.status is StepStatus.RUNNING

    resumed = apply.resume(world.app, run_id).run
    assert resumed.outcome["soaking"]["emulated"] == "v1.33"
    step = next(s for s in world.run(run_id).steps if s.action == Action.EMULATED_UPGRADE_APPLY)
    assert step.status is StepStatus.SUCCEEDED and step.outputs["observed"] is True
    applies = [a for a in world.nodes["cp-1"].ran if a[:3] == ["kubeadm", "upgrade", "apply"]]
    assert len(applies) == 1 and "--etcd-upgrade=false" in applies[0]


def test_resuming_a_soaking_run_soaks_on_with_one_soak_started_event(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    run = apply.apply(world.app, world.two_step_plan(), OPTIONS).run
    world.clock.advance(600)
    again = apply.resume(world.app, run.id).run
    assert again.outcome["soaking"]["until"] == run.outcome["soaking"]["until"]  # the soak started once
    with world.ledger.unit_of_work() as uow:
        kinds = [e.kind for e in uow.repo.list_events(CLUSTER)]
    assert kinds.count("soak-started") == 1


def test_applying_the_plan_of_a_soaking_run_again_names_finalize_and_rollback(tmp_path: Path) -> None:
    world = TwoStepWorld(tmp_path)
    plan_id = world.two_step_plan()
    run = apply.apply(world.app, plan_id, OPTIONS).run
    with pytest.raises(errors.RunRefusedError, match=f"upgrader finalize {run.id}.*upgrader rollback {CLUSTER}"):
        apply.apply(world.app, plan_id, OPTIONS)
