"""A rollback's step handlers on a fake control-plane node: each acts once, and observes its own effect
(so a resumed run does not act twice); the restore tool is chosen by its output, never a newer one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fake_node import APT_LIST, MANIFESTS, FakeNode, ok
from tests.unit.node_world import CLUSTER, NodeWorld
from upgrader.domain.inventory import parse_inventory
from upgrader.domain.plans import Action, Step
from upgrader.domain.rollback import EtcdMemberSpec, RollbackTarget, plan_rollback
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RollbackHooks, RunContext
from upgrader.engine.steps import HANDLERS, StepError
from upgrader.ports import CommandResult

RUN = 5
SNAPSHOT = b"etcd snapshot bytes"
DATA = "/var/lib/etcd"
RESTORE_HELP = ("NAME:\n\tsnapshot restore - Restores an etcd member snapshot to an etcd directory\n\nUSAGE:\n"
                "\tetcdctl snapshot restore <filename> [options] [flags]\n\nOPTIONS:\n"
                "      --bump-revision uint\n      --data-dir string\n      --mark-compacted\n")
OLD_MANIFEST = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n# v1.30.6\n"


class Disk:
    """mv, test, mkdir, rm, rmdir, cp and a host etcdctl for a FakeNode's files."""

    def __init__(self, node: FakeNode, *, etcdctl: str | None = "3.5.15") -> None:
        self.node = node
        node.handlers |= {"mv": self.mv, "test": self.test, "mkdir": lambda a: ok(), "rm": self.rm,
                          "rmdir": lambda a: ok(), "cp": self.cp}
        if etcdctl is not None:
            node.handlers["etcdctl"] = lambda argv: self.etcdctl(argv, etcdctl)
        self.restored: list[list[str]] = []

    def _under(self, path: str) -> list[str]:
        return [p for p in self.node.files if p == path or p.startswith(path.rstrip("/") + "/")]

    def test(self, argv: list[str]) -> CommandResult:
        return CommandResult(0 if self._under(argv[-1]) else 1, "", "")

    def mv(self, argv: list[str]) -> CommandResult:
        src, dst = argv[-2], argv[-1]
        found = self._under(src)
        if not found:
            return CommandResult(1, "", f"mv: cannot stat '{src}': No such file or directory\n")
        for p in found:
            self.node.files[dst + p[len(src):]] = self.node.files.pop(p)
        return ok()

    def rm(self, argv: list[str]) -> CommandResult:
        self.node.files.pop(argv[-1], None)
        return ok()

    def cp(self, argv: list[str]) -> CommandResult:
        self.node.files[argv[-1]] = self.node.files[argv[-2]]
        return ok()

    def etcdctl(self, argv: list[str], version: str) -> CommandResult:
        if argv[1:] == ["version"]:
            return ok(f"etcdctl version: {version}\nAPI version: {version.rsplit('.', 1)[0]}\n")
        if argv[1:] == ["snapshot", "restore", "--help"]:
            return ok(RESTORE_HELP)
        if argv[1:3] == ["snapshot", "restore"]:
            assert self.node.files[argv[3]] == (SNAPSHOT, 0o600)  # the copy is private
            data_dir = next(a.split("=", 1)[1] for a in argv if a.startswith("--data-dir="))
            assert not self._under(data_dir), "etcdctl refuses an existing data dir"
            self.node.files[f"{data_dir}/member/snap/db"] = (b"restored", 0o600)
            self.restored.append(argv)
            return ok()
        return CommandResult(1, "", "unexpected etcdctl call\n")


def context(world: NodeWorld, *, packages: str = "1.30.6-1.1") -> RunContext:
    inv = parse_inventory(world.api.observe_inventory())
    tgt = RollbackTarget(snapshot_id=9, cluster=CLUSTER, version=Version.parse("v1.30.6"), kubelets={},
                         packages={"cp-1": {p: packages for p in ("kubeadm", "kubelet", "kubectl")}},
                         members=(EtcdMemberSpec("cp-1", "cp-1", "https://10.0.0.1:2380", DATA),),
                         etcd_image="registry.k8s.io/etcd:3.5.15-0", etcd_version="3.5.15")
    made = plan_rollback(inv, tgt, token="upgrader-rollback-abc")
    hooks = Hooks(preflight=dict, snapshot=lambda s: {}, etcd_health=lambda: (True, "ok"), rollback=RollbackHooks(
        snapshot_file=lambda: SNAPSHOT,
        artefacts=lambda node: [("manifest", f"{MANIFESTS}/kube-apiserver.yaml", OLD_MANIFEST),
                                ("kubelet-config", "/var/lib/kubelet/config.yaml", b"kind: KubeletConfiguration\n")],
        member_up=lambda name: False, verify_objects=lambda: (True, "same")))
    return RunContext(run_id=RUN, token=1, cluster=CLUSTER, plan=made.plan, options=ApplyOptions(node_attempts=1),
                      unit_of_work=world.ledger.unit_of_work, api=world.api, transports=lambda n: world.nodes[n],
                      clock=world.clock, hooks=hooks, document=made.to_dict())


def step(ctx: RunContext, action: Action) -> Step:
    return next(s for s in ctx.plan.steps if s.action is action and s.node == "cp-1")


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    w = NodeWorld(tmp_path, control_planes=1, workers=0)
    w.nodes["cp-1"].files[f"{DATA}/member/snap/db"] = (b"live data", 0o600)
    return w


def test_each_control_plane_step_observes_its_own_effect_and_nothing_is_deleted(world: NodeWorld) -> None:
    node = world.nodes["cp-1"]
    disk = Disk(node)
    ctx = context(world)
    aside = f"/etc/kubernetes/upgrader-rollback-{RUN}"
    for action in (Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA, Action.RESTORE_ETCD, Action.REINSTATE_MANIFESTS):
        handler, s = HANDLERS[action], step(ctx, action)
        assert handler.observe(ctx, s) is None, action  # not done yet: resume would act
        handler.act(ctx, s)
        assert handler.observe(ctx, s) is not None, action  # done: resume records it without acting again

    assert f"{aside}/manifests/etcd.yaml" in node.files and f"{aside}/manifests/kube-apiserver.yaml" in node.files
    assert node.files[f"{DATA}.upgrader-rollback-{RUN}/member/snap/db"][0] == b"live data"  # kept, never deleted
    assert node.files[f"{DATA}/member/snap/db"][0] == b"restored"
    assert not [p for p in node.files if p.startswith("/var/lib/upgrader/")]  # the snapshot copy is gone
    [restore] = disk.restored
    assert "--name=cp-1" in restore and "--initial-cluster=cp-1=https://10.0.0.1:2380" in restore
    assert "--initial-cluster-token=upgrader-rollback-abc" in restore
    assert "--bump-revision=1000000000" in restore and "--mark-compacted" in restore
    assert node.files[f"{MANIFESTS}/kube-apiserver.yaml"][0] == OLD_MANIFEST
    assert node.files[f"{aside}/kubelet/config.yaml"][0] == b"kind: KubeletConfiguration\ncgroupDriver: systemd\n"


def test_the_restore_records_the_tool_and_whether_it_bumped_the_revision(world: NodeWorld) -> None:
    Disk(world.nodes["cp-1"])
    ctx = context(world)
    for action in (Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA):
        HANDLERS[action].act(ctx, step(ctx, action))
    out = HANDLERS[Action.RESTORE_ETCD].act(ctx, step(ctx, Action.RESTORE_ETCD))
    assert (out["tool"], out["tool_version"], out["via"], out["bump_revision"]) == ("etcdctl", "3.5.15", "host", True)
    assert any("no ctr" in r for r in out["refused_tools"])


def test_a_restore_tool_newer_than_the_snapshots_etcd_is_refused(world: NodeWorld) -> None:
    Disk(world.nodes["cp-1"], etcdctl="3.6.4")
    ctx = context(world)
    for action in (Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA):
        HANDLERS[action].act(ctx, step(ctx, action))
    with pytest.raises(StepError, match=r"etcdctl 3\.6\.4 is newer than the snapshot's etcd 3\.5"):
        HANDLERS[Action.RESTORE_ETCD].act(ctx, step(ctx, Action.RESTORE_ETCD))
    assert not [p for p in world.nodes["cp-1"].files if p.startswith(DATA + "/")]  # nothing restored


def test_a_half_restored_dir_is_kept_aside_and_the_restore_runs_again(world: NodeWorld) -> None:
    node = world.nodes["cp-1"]
    disk = Disk(node)
    ctx = context(world)
    for action in (Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA):
        HANDLERS[action].act(ctx, step(ctx, action))
    node.files[f"{DATA}/member/wal/0.wal"] = (b"half", 0o600)  # a restore killed half-way, no marker
    assert HANDLERS[Action.RESTORE_ETCD].observe(ctx, step(ctx, Action.RESTORE_ETCD)) is None
    HANDLERS[Action.RESTORE_ETCD].act(ctx, step(ctx, Action.RESTORE_ETCD))
    assert len(disk.restored) == 1
    assert any(p.startswith(f"{DATA}.upgrader-partial-{RUN}-") for p in node.files)


def test_packages_go_down_to_the_snapshots_builds_with_allow_downgrades_and_are_held(world: NodeWorld) -> None:
    node = world.nodes["cp-1"]
    node.installed = {p: "1.31.2-1.1" for p in node.installed}
    node.files[APT_LIST] = (node.files[APT_LIST][0].replace(b"v1.30", b"v1.31"), 0o644)
    ctx = context(world)
    s = step(ctx, Action.DOWNGRADE_PACKAGES)
    assert HANDLERS[Action.DOWNGRADE_PACKAGES].observe(ctx, s) is None
    out = HANDLERS[Action.DOWNGRADE_PACKAGES].act(ctx, s)
    assert node.installed == {p: "1.30.6-1.1" for p in node.installed} and node.held >= set(node.installed)
    assert out["downgraded"] == ["kubeadm", "kubectl", "kubelet"]
    assert any(a[:4] == ["apt-get", "install", "-y", "--allow-downgrades"] for a in node.ran)
    assert b"v1.30" in node.files[APT_LIST][0]
    assert HANDLERS[Action.DOWNGRADE_PACKAGES].observe(ctx, s) == {"packages": {p: "1.30.6-1.1" for p in
                                                                               ("kubeadm", "kubelet", "kubectl")}}


def test_a_worker_newer_than_the_api_server_goes_down_to_its_version_and_is_ready_there(tmp_path: Path) -> None:
    world = NodeWorld(tmp_path, control_planes=1, workers=1)
    node = world.nodes["w-1"]
    node.installed = {"kubeadm": "1.31.2-1.1", "kubelet": "1.31.2-1.1", "kubectl": "1.30.6-1.1"}
    node.files[APT_LIST] = (node.files[APT_LIST][0].replace(b"v1.30", b"v1.31"), 0o644)
    world.set_kubelet("w-1", Version.parse("v1.31.2"))
    ctx = context(world)
    s = Step(n=99, action=Action.DOWNGRADE_KUBELET, node="w-1", version=Version.parse("v1.30.6"), batch=1,
             reversibility=step(ctx, Action.DOWNGRADE_PACKAGES).reversibility)
    assert HANDLERS[Action.DOWNGRADE_KUBELET].observe(ctx, s) is None
    out = HANDLERS[Action.DOWNGRADE_KUBELET].act(ctx, s)
    assert node.installed == {p: "1.30.6-1.1" for p in ("kubeadm", "kubelet", "kubectl")}
    assert out["downgraded"] == ["kubeadm", "kubelet"]  # kubectl was not newer: left alone
    assert world.kubelets()["w-1"] == "v1.30.6"
    assert HANDLERS[Action.DOWNGRADE_KUBELET].observe(ctx, s) is not None
