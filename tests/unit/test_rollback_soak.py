"""A soak rollback (domain/rollback_soak.py, engine/rollback_soak.py): its plan swaps binaries and manifests
back on the control plane only, never touches etcd or the workers; its own steps act once and observe
their effect on resume; the preview's loss is empty and says why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from tests.unit.fake_node import MANIFESTS, FakeNode, ok
from tests.unit.node_world import CLUSTER, NodeWorld
from upgrader.domain.inventory import parse_inventory
from upgrader.domain.plans import Action, Step
from upgrader.domain.rollback import EtcdMemberSpec, RollbackKind, RollbackTarget, is_rollback
from upgrader.domain.rollback_soak import WHY_NOTHING_LOST, plan_soak_rollback, touched
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RollbackHooks, RunContext
from upgrader.engine.emulation_config import config_flags, config_with_flag
from upgrader.engine.rollback_soak import config_back, config_is_back
from upgrader.engine.steps import HANDLERS
from upgrader.errors import IntegrityError
from upgrader.ports import CommandResult

TO = Version.parse("v1.33.4")
RUN = 11
ETCD_YAML = f"{MANIFESTS}/etcd.yaml"
OLD = {f"{MANIFESTS}/{c}.yaml": f"kind: Pod\n# {c} v1.33.4\n".encode()
       for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}


def target(cps: list[str], *, cluster: str = "prod", manifests: bool = True) -> RollbackTarget:
    paths = (*OLD, ETCD_YAML) if manifests else (ETCD_YAML,)
    return RollbackTarget(
        snapshot_id=4, cluster=cluster, version=TO, kubelets={},
        packages={n: {p: "1.33.4-1.1" for p in ("kubeadm", "kubelet", "kubectl")} for n in cps},
        members=tuple(EtcdMemberSpec(n, n, f"https://10.0.0.{i}:2380", "/var/lib/etcd") for i, n in enumerate(cps, 1)),
        etcd_image="registry.k8s.io/etcd:3.5.24-0", etcd_version="3.5.24", manifests={n: paths for n in cps})


@given(n_cps=st.integers(1, 3), n_workers=st.integers(0, 4))
def test_the_soak_plan_swaps_each_control_plane_back_and_touches_neither_etcd_nor_workers(
        n_cps: int, n_workers: int) -> None:
    cps = [f"cp-{i}" for i in range(1, n_cps + 1)]
    inv = inventory(*(cp(n, "v1.34.1", kubelet="v1.33.4") for n in cps),
                    *(worker(f"w-{i}", "v1.33.4") for i in range(n_workers)))
    made = plan_soak_rollback(inv, target(cps), token="t", rollback_of=8)
    actions = [(s.action, s.node) for s in made.plan.steps]
    assert actions[0] == (Action.RESTORE_KUBEADM_CONFIG, None)
    assert actions[1:-2] == [(a, n) for n in cps for a in (Action.SWAP_MANIFESTS, Action.DOWNGRADE_PACKAGES,
                                                            Action.START_CONTROL_PLANE)]
    assert actions[-2:] == [(Action.START_CONTROL_PLANE, None), (Action.VERIFY_ROLLBACK, None)]
    assert not {Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA, Action.RESTORE_ETCD, Action.DRAIN,
                Action.DOWNGRADE_KUBELET} & {a for a, _ in actions}
    assert touched(made) == cps and made.workers == {}
    assert all(s.version == TO for s in made.plan.steps)
    doc = made.to_dict()
    assert is_rollback(doc) and doc["rollback"]["kind"] == str(RollbackKind.SOAK) == "soak"
    assert doc["rollback"]["rollback_of"] == 8 and doc["target"] == "v1.33.4"


@pytest.mark.parametrize(("inv", "tgt", "said"), [
    (inventory(cp("cp-1", "v1.34.1", kubelet="v1.33.4"), cluster="staging"), target(["cp-1"]),
     "a snapshot of cluster prod, not of staging"),
    (inventory(cp("cp-1", "v1.34.1", kubelet="v1.33.4")), target(["cp-1"], manifests=False),
     "cp-1: no control-plane manifest captured"),
    (inventory(cp("cp-1", "v1.34.1", kubelet="v1.33.4"), worker("w-1", "v1.34.1")), target(["cp-1"]),
     "w-1 kubelet v1.34.1"),
])
def test_a_soak_rollback_the_snapshot_cannot_serve_is_refused_with_exit_8(inv: object, tgt: RollbackTarget,
                                                                         said: str) -> None:
    with pytest.raises(IntegrityError) as e:
        plan_soak_rollback(inv, tgt, token="t", rollback_of=None)  # type: ignore[arg-type]
    assert said in e.value.message and e.value.exit_code == 8


@pytest.mark.parametrize("api_version", ["kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3"])
def test_the_config_goes_back_to_the_old_version_without_the_flag_in_both_formats(api_version: str) -> None:
    text = config_with_flag(yaml.safe_dump({"apiVersion": api_version, "kind": "ClusterConfiguration",
                                            "kubernetesVersion": "v1.34.1"}), "1.33")
    assert set(config_flags(text).values()) == {"1.33"} and not config_is_back(text, "v1.33.4")
    back = config_back(text, "v1.33.4")
    assert config_is_back(back, "v1.33.4")
    assert yaml.safe_load(back)["apiVersion"] == api_version and "emulated-version" not in back


def _context(world: NodeWorld) -> RunContext:
    inv = parse_inventory(world.api.observe_inventory())
    made = plan_soak_rollback(inv, target(["cp-1"], cluster=CLUSTER), token="t", rollback_of=None)
    hooks = Hooks(preflight=dict, snapshot=lambda s: {}, etcd_health=lambda: (True, "ok"), rollback=RollbackHooks(
        snapshot_file=lambda: b"", member_up=lambda name: True, verify_objects=lambda: (True, "same"),
        artefacts=lambda node: [("manifest", p, d) for p, d in OLD.items()]
        + [("manifest", ETCD_YAML, b"kind: Pod\n# etcd 3.5.15 from the snapshot\n")]))
    return RunContext(run_id=RUN, token=1, cluster=CLUSTER, plan=made.plan, options=ApplyOptions(node_attempts=1),
                      unit_of_work=world.ledger.unit_of_work, api=world.api, transports=lambda n: world.nodes[n],
                      clock=world.clock, hooks=hooks, document=made.to_dict())


def _step(ctx: RunContext, action: Action) -> Step:
    return next(s for s in ctx.plan.steps if s.action is action)


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=1, workers=0, version="v1.33.4")


def _disk(node: FakeNode) -> None:
    def test(argv: list[str]) -> CommandResult:
        return CommandResult(0 if argv[-1] in node.files else 1, "", "")

    def cp_(argv: list[str]) -> CommandResult:
        node.files[argv[-1]] = node.files[argv[-2]]
        return ok()
    node.handlers |= {"test": test, "cp": cp_, "mkdir": lambda a: ok()}


def test_swap_manifests_writes_the_old_ones_keeps_the_new_ones_and_leaves_etcd_alone(world: NodeWorld) -> None:
    node = world.nodes["cp-1"]
    _disk(node)
    new = {p: (f"kind: Pod\n# v1.34.1 --emulated-version=1.33 {p}\n".encode(), 0o600) for p in OLD}
    node.files |= new | {ETCD_YAML: (b"kind: Pod\n# etcd 3.5.24-0 held\n", 0o600)}
    ctx = _context(world)
    handler, s = HANDLERS[Action.SWAP_MANIFESTS], _step(ctx, Action.SWAP_MANIFESTS)
    assert handler.observe(ctx, s) is None
    out = handler.act(ctx, s)
    assert sorted(out["written"]) == sorted(OLD)
    assert {p: node.files[p][0] for p in OLD} == OLD
    assert node.files[ETCD_YAML][0] == b"kind: Pod\n# etcd 3.5.24-0 held\n"  # not the snapshot's etcd.yaml
    kept = f"/etc/kubernetes/upgrader-rollback-{RUN}/soak-manifests"
    assert {node.files[f"{kept}/{p.rsplit('/', 1)[1]}"][0] for p in OLD} == {d for d, _ in new.values()}
    assert handler.observe(ctx, s) == {"written": list(OLD)}


def test_restore_kubeadm_config_acts_once_and_observes_itself(world: NodeWorld) -> None:
    key = ("kube-system", "kubeadm-config")
    world.api.configmaps[key] = {"ClusterConfiguration": config_with_flag(yaml.safe_dump(
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.34.1"}),
        "1.33")}
    ctx = _context(world)
    handler, s = HANDLERS[Action.RESTORE_KUBEADM_CONFIG], _step(ctx, Action.RESTORE_KUBEADM_CONFIG)
    assert handler.observe(ctx, s) is None
    out = handler.act(ctx, s)
    assert out["kubernetesVersion"] == {"from": "v1.34.1", "to": "v1.33.4"}
    text = world.api.configmaps[key]["ClusterConfiguration"]
    assert config_is_back(text, "v1.33.4") and set(config_flags(text).values()) == {None}
    assert handler.observe(ctx, s) == {"kubernetesVersion": "v1.33.4", "emulated-version": "removed"}
    assert "remove extraArgs emulated-version" in handler.describe(ctx, s)[0]
    swap = HANDLERS[Action.SWAP_MANIFESTS]
    assert "etcd.yaml untouched" in swap.describe(ctx, _step(ctx, Action.SWAP_MANIFESTS))[0]


def test_the_soak_loss_is_empty_and_says_why() -> None:
    from datetime import UTC, datetime

    from upgrader.services.rollback_soak import needs_snapshot, no_loss

    snap = type("S", (), {"id": 4, "created_at": datetime(2026, 1, 1, tzinfo=UTC)})()
    loss = no_loss(snap, {"started": "2026-01-01T00:00:00+00:00", "emulated": "v1.33"})  # type: ignore[arg-type]
    assert loss["objects"] == [] and loss["revisions_since"] == 0 and WHY_NOTHING_LOST in loss["why_empty"]
    assert needs_snapshot("soak", snap, []) is None  # type: ignore[arg-type]
    passed = [{"kind": "emulated-version-raised", "run_id": 3, "step": 9, "at": "2026-01-02T00:00:00+00:00"}]
    said = needs_snapshot("etcd-restore", snap, passed)  # type: ignore[arg-type]
    assert said is not None and "point of no return passed: emulated-version-raised (run 3 step 9" in said
    assert "needs snapshot 4" in said
