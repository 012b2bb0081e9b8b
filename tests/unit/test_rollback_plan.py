"""The plan of a rollback (domain/rollback.py): its order, the workers it takes back, its refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from upgrader.domain.plans import Action
from upgrader.domain.rollback import EtcdMemberSpec, RollbackTarget, is_rollback, plan_rollback
from upgrader.domain.versions import Version
from upgrader.errors import IntegrityError

TO = Version.parse("v1.31.4")
CP_ORDER = [Action.STOP_CONTROL_PLANE, Action.MOVE_ETCD_DATA, Action.RESTORE_ETCD, Action.REINSTATE_MANIFESTS,
            Action.DOWNGRADE_PACKAGES, Action.START_CONTROL_PLANE]


def target(cps: list[str], *, cluster: str = "prod", kubelets: dict[str, str] | None = None,
           packages: dict[str, dict[str, str]] | None = None) -> RollbackTarget:
    return RollbackTarget(
        snapshot_id=7, cluster=cluster, version=TO, kubelets=kubelets or {},
        packages=packages if packages is not None else {n: {p: "1.31.4-1.1" for p in ("kubeadm", "kubelet", "kubectl")}
                                                        for n in cps},
        members=tuple(EtcdMemberSpec(n, n, f"https://10.0.0.{i}:2380", "/var/lib/etcd") for i, n in enumerate(cps, 1)),
        etcd_image="registry.k8s.io/etcd:3.5.15-0", etcd_version="3.5.15")


@given(n_cps=st.integers(1, 3), workers=st.lists(st.sampled_from(["v1.29.9", "v1.31.4", "v1.31.9", "v1.32.2"]),
                                                 max_size=6), batch=st.integers(1, 3))
def test_the_control_plane_goes_down_restored_and_up_before_any_worker_and_only_newer_kubelets_move(
        n_cps: int, workers: list[str], batch: int) -> None:
    from upgrader.domain.plans import Strategy

    cps = [f"cp-{i}" for i in range(1, n_cps + 1)]
    names = [f"w-{i}" for i in range(len(workers))]
    inv = inventory(*(cp(n, "v1.32.2") for n in cps), *(worker(n, k) for n, k in zip(names, workers, strict=True)))
    plan = plan_rollback(inv, target(cps), token="t", strategy=Strategy(max_unavailable=batch)).plan

    actions = [s.action for s in plan.steps]
    # every control-plane phase on every control-plane node before the next phase starts
    phases = [a for a in actions if a in CP_ORDER]
    assert phases == [a for a in CP_ORDER for _ in cps] + [Action.START_CONTROL_PLANE]
    assert actions[-1] is Action.VERIFY_ROLLBACK
    first_worker = next((i for i, s in enumerate(plan.steps) if s.batch is not None), len(plan.steps) - 1)
    assert all(s.batch is None for s in plan.steps[:first_worker])
    # exactly the workers whose kubelet is newer than the restored API server: drain, downgrade, uncordon
    newer = {n for n, k in zip(names, workers, strict=True) if Version.parse(k) > TO}
    for node in newer:
        assert [s.action for s in plan.steps if s.node == node] == [Action.DRAIN, Action.DOWNGRADE_KUBELET,
                                                                   Action.UNCORDON]
        assert all(s.version == TO for s in plan.steps if s.node == node)
    assert {s.node for s in plan.steps if s.batch is not None} == newer
    for b in {s.batch for s in plan.steps if s.batch is not None}:
        assert len({s.node for s in plan.steps if s.batch == b}) <= batch
    assert [s.n for s in plan.steps] == list(range(1, len(plan.steps) + 1))


def test_a_worker_goes_back_to_its_own_kubelet_of_snapshot_time_when_that_is_not_newer() -> None:
    inv = inventory(cp("cp-1", "v1.32.2"), worker("w-1", "v1.32.2"), worker("w-2", "v1.32.2"))
    made = plan_rollback(inv, target(["cp-1"], kubelets={"w-1": "v1.30.6", "w-2": "v1.33.0"}), token="t")
    assert made.workers == {"w-1": "v1.30.6", "w-2": "v1.31.4"}


def test_the_document_says_rollback_with_the_token_members_and_versions() -> None:
    inv = inventory(cp("cp-1", "v1.32.2"), cp("cp-2", "v1.32.2"), worker("w-1", "v1.32.2"))
    made = plan_rollback(inv, target(["cp-1", "cp-2"]), token="tok-1", rollback_of=3)
    doc = made.to_dict()
    assert is_rollback(doc) and doc["rollback"]["rollback_of"] == 3 and doc["rollback"]["token"] == "tok-1"
    assert doc["rollback"]["initial_cluster"] == "cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380"
    assert doc["rollback"]["from"]["w-1"] == {"kubelet": "v1.32.2"} and doc["target"] == "v1.31.4"


@pytest.mark.parametrize(("inv", "tgt", "said"), [
    (inventory(cp("cp-1", "v1.32.2"), cluster="staging"), target(["cp-1"]),
     "a snapshot of cluster prod, not of staging"),
    (inventory(cp("cp-1", "v1.30.2")), target(["cp-1"]), "newer than the cluster"),
    (inventory(cp("cp-1", "v1.32.2"), cp("cp-2", "v1.32.2")), target(["cp-1"]), "no etcd member recorded for "
                                                                                  "control-plane node(s) cp-2"),
    (inventory(cp("cp-1", "v1.32.2")), target(["cp-1", "cp-9"]), "cp-9 are no longer control-plane nodes"),
    (inventory(cp("cp-1", "v1.32.2")), target(["cp-1"], packages={"cp-1": {"kubeadm": "1.31.4-1.1"}}),
     "cp-1: no kubelet, kubectl package version recorded"),
])
def test_a_snapshot_that_cannot_be_reinstated_is_refused_with_exit_8(inv: object, tgt: RollbackTarget,
                                                                    said: str) -> None:
    with pytest.raises(IntegrityError) as refused:
        plan_rollback(inv, tgt, token="t")  # type: ignore[arg-type]
    assert said in refused.value.message and refused.value.exit_code == 8
