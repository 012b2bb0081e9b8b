"""The control-plane runbooks' handlers where a review found them wrong: a flag fix that could not
resume, a crashloop runbook that could succeed while the node's apiserver still exited, a backup put
back without showing which or checking the HA skew, etcd confirmations showing placeholders."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_runbook_control_plane import (
    FLAGS,
    MANIFEST,
    RUN,
    api_node,
    crashing_node,
    ctx_for,
    etcd_world,
    kubelet_world,
    ok,
    step,
)
from upgrader.domain.manifest_backups import backup_stamp, image_version, manifest_image, skew_refusal
from upgrader.domain.plans import Action
from upgrader.domain.versions import Version
from upgrader.engine.gates import GateFailedError
from upgrader.engine.steps import HANDLERS, StepError
from upgrader.fakes.cluster import FakeClusterApi

NEWEST = "/etc/kubernetes/tmp/kubeadm-backup-manifests-2026-12-03-14-00-00/kube-apiserver.yaml"


# -- kubelet-flags-fix resumes after the kubelet stopped complaining ---------------------------------

def test_a_flag_fix_killed_after_the_restart_is_seen_done_and_acting_again_changes_nothing() -> None:
    node, _, ctx = kubelet_world()
    fix = step(Action.KUBELET_FLAGS_FIX, node="worker-1")
    HANDLERS[Action.KUBELET_FLAGS_FIX].act(ctx, fix)
    HANDLERS[Action.RESTART_KUBELET].act(ctx, step(Action.RESTART_KUBELET, node="worker-1"))
    node.handlers["journalctl"] = lambda argv: ok("Started kubelet.service\n")  # the kubelet runs: no complaint

    seen = HANDLERS[Action.KUBELET_FLAGS_FIX].observe(ctx, fix)
    assert seen is not None and seen["flags"] == ["--container-runtime"], "read from the kept copy, not the journal"
    fixed = node.text(FLAGS)
    again = HANDLERS[Action.KUBELET_FLAGS_FIX].act(ctx, fix)
    assert again["changed"] is False and node.text(FLAGS) == fixed


def test_a_flag_fix_killed_before_the_rename_is_not_done_and_acts() -> None:
    node, _, ctx = kubelet_world()
    fix = step(Action.KUBELET_FLAGS_FIX, node="worker-1")
    kept = f"/etc/kubernetes/tmp/upgrader-kubelet-{RUN}/kubeadm-flags.env"
    node.files[kept] = node.files[FLAGS]  # the old file kept, the new one not renamed in yet
    assert HANDLERS[Action.KUBELET_FLAGS_FIX].observe(ctx, fix) is None
    assert HANDLERS[Action.KUBELET_FLAGS_FIX].act(ctx, fix)["changed"] is True
    assert "--container-runtime=" not in node.text(FLAGS)


# -- the crashloop runbook checks the node's own apiserver -----------------------------------------

def mirror(node: str, component: str, *, ready: bool = True, tag: str = "v1.31.4") -> dict[str, Any]:
    return {"metadata": {"name": f"{component}-{node}", "namespace": "kube-system",
                         "labels": {"component": component, "tier": "control-plane"}},
            "spec": {"nodeName": node, "containers": [{"image": f"registry.k8s.io/{component}:{tag}"}]},
            "status": {"phase": "Running" if ready else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def control_plane_pods(nodes: list[str], *, down: tuple[str, str] | None = None,
                       tags: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [mirror(n, c, ready=(n, c) != down, tag=(tags or {}).get(n, "v1.31.4"))
            for n in nodes for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]


def test_wait_healthy_fails_while_a_nodes_apiserver_pod_is_not_ready_though_readyz_answers() -> None:
    names = ["cp-1", "cp-2"]
    api = FakeClusterApi(nodes=[api_node(n) for n in names],
                         pods=control_plane_pods(names, down=("cp-2", "kube-apiserver")))
    ctx = ctx_for({}, api)
    with pytest.raises(GateFailedError, match="kube-apiserver on cp-2 is Pending, not ready"):
        HANDLERS[Action.WAIT_HEALTHY].act(ctx, step(Action.WAIT_HEALTHY, timeout=5))
    api.pods = control_plane_pods(names)
    assert HANDLERS[Action.WAIT_HEALTHY].act(ctx, step(Action.WAIT_HEALTHY, timeout=5))


def test_static_pod_state_with_running_fails_while_the_newest_container_exits() -> None:
    node = crashing_node()
    ctx = ctx_for({"cp-1": node}, FakeClusterApi())
    with pytest.raises(StepError, match=r"kube-apiserver on cp-1 is CONTAINER_EXITED \(attempt 4\), not running: "
                                        r"Error: unknown flag: --insecure-port"):
        HANDLERS[Action.STATIC_POD_STATE].act(ctx, step(Action.STATIC_POD_STATE, node="cp-1", running=True))
    # read-only without it, as before
    assert HANDLERS[Action.STATIC_POD_STATE].act(ctx, step(Action.STATIC_POD_STATE, node="cp-1"))["state"] == \
        "CONTAINER_EXITED"
    node.handlers["crictl"] = lambda argv: ok(json.dumps({"containers": [
        {"id": "ccc333", "metadata": {"name": "kube-apiserver", "attempt": 0}, "createdAt": "300",
         "state": "CONTAINER_RUNNING"}]}))
    out = HANDLERS[Action.STATIC_POD_STATE].act(ctx, step(Action.STATIC_POD_STATE, node="cp-1", running=True))
    assert out["state"] == "CONTAINER_RUNNING"


# -- restore-backup-manifest: which backup, and the HA skew -----------------------------------------

def with_image(tag: str) -> bytes:
    return (f"spec:\n  containers:\n  - command:\n    - kube-apiserver\n"
            f"    image: registry.k8s.io/kube-apiserver:{tag}\n").encode()


def test_the_confirmation_shows_the_backups_path_time_and_image() -> None:
    node = crashing_node()
    node.files[NEWEST] = (with_image("v1.30.6"), 0o600)
    ctx = ctx_for({"cp-1": node}, FakeClusterApi())
    lines = HANDLERS[Action.RESTORE_BACKUP_MANIFEST].describe(ctx, step(Action.RESTORE_BACKUP_MANIFEST, node="cp-1"))
    assert lines[0] == (f"BACKUP: {NEWEST} (taken 2026-12-03 14:00:00 by the node's clock), image "
                        "registry.k8s.io/kube-apiserver:v1.30.6")
    assert any("write BACKUP to /etc/kubernetes/.upgrader-7-kube-apiserver.yaml" in line for line in lines)


def test_a_backup_two_minors_from_another_apiserver_is_refused_and_nothing_moves() -> None:
    node = crashing_node()
    node.files[NEWEST] = (with_image("v1.29.9"), 0o600)
    api = FakeClusterApi(nodes=[api_node("cp-1"), api_node("cp-2")],
                         pods=control_plane_pods(["cp-1", "cp-2"], tags={"cp-1": "v1.31.4", "cp-2": "v1.31.4"}))
    ctx = ctx_for({"cp-1": node}, api)
    s = step(Action.RESTORE_BACKUP_MANIFEST, node="cp-1")
    with pytest.raises(StepError, match=r"runs v1\.29\.9, more than 1 minor from the kube-apiserver of cp-2 v1\.31\.4 "
                                        r"\(HA skew rule\)"):
        HANDLERS[Action.RESTORE_BACKUP_MANIFEST].act(ctx, s)
    assert node.text(MANIFEST).startswith("spec:") and "--insecure-port=0" in node.text(MANIFEST)
    assert not [a for a in node.ran if a[0] == "mv"]
    api.pods = control_plane_pods(["cp-1", "cp-2"], tags={"cp-2": "v1.30.6"})  # one minor apart: allowed
    out = HANDLERS[Action.RESTORE_BACKUP_MANIFEST].act(ctx, s)
    assert out["restored"] and out["image"] == "registry.k8s.io/kube-apiserver:v1.29.9"
    assert out["taken"] == "2026-12-03 14:00:00"


@given(backup=st.integers(20, 40), others=st.lists(st.integers(20, 40), max_size=4))
def test_the_ha_skew_refuses_exactly_when_another_apiserver_is_more_than_one_minor_away(
        backup: int, others: list[int]) -> None:
    found = skew_refusal(Version(1, backup, 0), {f"cp-{i}": Version(1, m, 3) for i, m in enumerate(others)})
    assert (found is not None) == any(abs(m - backup) > 1 for m in others)


def test_backup_facts_are_read_from_kubeadms_names_and_the_manifest() -> None:
    assert backup_stamp(NEWEST) == "2026-12-03 14:00:00" and backup_stamp("/etc/kubernetes/x.yaml") is None
    assert manifest_image(with_image("v1.32.1").decode()) == "registry.k8s.io/kube-apiserver:v1.32.1"
    assert image_version("registry.k8s.io/kube-apiserver:v1.32.1") == Version(1, 32, 1)
    assert image_version("registry.k8s.io/kube-apiserver:latest") is None and image_version(None) is None


# -- etcd confirmations show the real member id, peer URL and data dir -------------------------------

def test_etcd_confirmations_name_the_real_member_peer_url_and_data_dir() -> None:
    _, nodes, ctx = etcd_world()
    remove = HANDLERS[Action.ETCD_MEMBER_REMOVE].describe(ctx, step(Action.ETCD_MEMBER_REMOVE, node="cp-3"))
    assert remove == ["on cp-1: etcdctl member remove a2   (the member with cp-3's peer URL https://10.0.0.3:2380)"]
    reset = HANDLERS[Action.ETCD_MEMBER_RESET].describe(ctx, step(Action.ETCD_MEMBER_RESET, node="cp-3"))
    assert reset[1] == f"on cp-3: mv /var/lib/etcd /var/lib/etcd.lost-{RUN}   (kept, never deleted); " \
                       "mkdir -m 0700 /var/lib/etcd"
    nodes["cp-3"].files["/etc/kubernetes/manifests/etcd.yaml"] = (
        nodes["cp-3"].text("/etc/kubernetes/manifests/etcd.yaml").replace("/var/lib/etcd", "/data/etcd").encode(),
        0o600)
    reset = HANDLERS[Action.ETCD_MEMBER_RESET].describe(ctx, step(Action.ETCD_MEMBER_RESET, node="cp-3"))
    assert "mv /data/etcd /data/etcd.lost-7" in reset[1]
    add = HANDLERS[Action.ETCD_MEMBER_ADD].describe(ctx, step(Action.ETCD_MEMBER_ADD, node="cp-3"))
    assert add == ["on cp-1: etcdctl member add cp-3 --peer-urls=https://10.0.0.3:2380 --learner"]


def test_etcd_confirmations_keep_the_placeholders_when_nothing_can_be_read() -> None:
    _, nodes, ctx = etcd_world()
    del nodes["cp-3"].files["/etc/kubernetes/manifests/etcd.yaml"]
    remove = HANDLERS[Action.ETCD_MEMBER_REMOVE].describe(ctx, step(Action.ETCD_MEMBER_REMOVE, node="cp-3"))
    assert remove == ["on another control-plane node: etcdctl member remove ID   (the member with cp-3's peer URL "
                      "PEER_URL)"]
