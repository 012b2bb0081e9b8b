"""Real kubectl against the sandbox API server: get, drain (with and without a blocking PDB), uncordon."""

from __future__ import annotations

import shutil

import pytest
from kubernetes import client

from tests.integration.sandbox_helpers import VERSION, needs_etcd, wait_for

pytestmark = [pytest.mark.etcd, needs_etcd]
PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _rows(output: str) -> dict[str, list[str]]:
    lines = output.strip().splitlines()
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_get_nodes_wide(api):
    api.kubectl("cordon", "worker-3")
    out = api.kubectl("get", "nodes", "-o", "wide").stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE",
                      "KERNEL-VERSION", "CONTAINER-RUNTIME"]
    rows = _rows(out)
    assert rows["cp-1"][1:3] == ["Ready", "control-plane"] and rows["cp-1"][4:6] == [VERSION, "127.0.0.2"]
    assert rows["worker-3"][1:3] == ["Ready,SchedulingDisabled", "<none>"]


def test_get_pods_all_namespaces_and_short_names(api):
    out = api.kubectl("get", "pods", "-A").stdout
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    rows = [line.split() for line in out.splitlines()[1:]]
    assert {r[0] for r in rows} == {"demo", "kube-system"} and all(r[2:4] == ["1/1", "Running"] for r in rows)
    assert len(_rows(api.kubectl("get", "po", "-n", "demo", "-l", "app=web").stdout)) == 3
    assert "web" in api.kubectl("get", "deploy,pdb", "-n", "demo").stdout
    names = api.kubectl("get", "no", "-o", "name").stdout.split()
    assert names == ["node/cp-1", "node/worker-1", "node/worker-2", "node/worker-3"]


def test_drain_moves_pods_to_other_workers_then_uncordon(api):
    api.start_controllers()
    v1 = client.CoreV1Api(api.client())
    before = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-1").items
    assert any(p.metadata.labels.get("app") == "web" for p in before)
    proc = api.kubectl("drain", "worker-1", "--ignore-daemonsets", "--timeout", "60s")
    assert "node/worker-1 cordoned" in proc.stdout and "node/worker-1 drained" in proc.stdout
    assert "ignoring DaemonSet-managed Pods" in proc.stderr
    left = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-1").items
    assert left and all(p.metadata.owner_references[0].kind == "DaemonSet" for p in left)
    web = wait_for(lambda: [p for p in v1.list_namespaced_pod("demo", label_selector="app=web").items
                            if p.status.phase == "Running"] if len(v1.list_namespaced_pod(
                                "demo", label_selector="app=web").items) == 3 else None, what="3 web pods")
    assert {p.spec.node_name for p in web} <= {"worker-2", "worker-3"}
    assert api.kubectl("uncordon", "worker-1").stdout.strip() == "node/worker-1 uncordoned"
    assert v1.read_node("worker-1").spec.unschedulable is None


def test_drain_blocked_by_pdb_times_out_with_the_pdb_message(api):
    api.start_controllers()
    api.kubectl("patch", "pdb", "web", "-n", "demo", "--type", "json", "-p",
                '[{"op":"remove","path":"/spec/maxUnavailable"},{"op":"add","path":"/spec/minAvailable","value":3}]')
    proc = api.kubectl("drain", "worker-2", "--ignore-daemonsets", "--timeout", "3s", check=False)
    assert proc.returncode != 0
    assert PDB_MESSAGE in proc.stderr and "global timeout reached: 3s" in proc.stderr
    v1 = client.CoreV1Api(api.client())
    assert any(p.metadata.labels.get("app") == "web"
               for p in v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-2").items)
    assert v1.read_node("worker-2").spec.unschedulable is True  # drain leaves the node cordoned, like the real one
    api.kubectl("uncordon", "worker-2")


def test_the_drain_blocked_fault_is_a_pinned_deployment_whose_pdb_allows_nothing(api):
    from upgrader.sandbox.supervisor.fault_objects import block_drain

    block_drain(api.store, "worker-2")
    block_drain(api.store, "worker-2")  # applying it twice changes nothing
    api.start_controllers()
    v1 = client.CoreV1Api(api.client())
    pinned = wait_for(lambda: [p for p in v1.list_namespaced_pod("demo", label_selector="app=pinned-worker-2").items
                               if p.status.phase == "Running"], what="the pinned pod running")
    assert [p.spec.node_name for p in pinned] == ["worker-2"]
    assert pinned[0].metadata.owner_references[0].kind == "ReplicaSet"  # an ordinary Deployment's pod
    pdb = client.PolicyV1Api(api.client()).read_namespaced_pod_disruption_budget("pinned-worker-2", "demo")
    assert pdb.status.disruptions_allowed == 0 and pdb.status.current_healthy == 1
    proc = api.kubectl("drain", "worker-2", "--ignore-daemonsets", "--timeout", "3s", check=False)
    assert proc.returncode != 0
    assert PDB_MESSAGE in proc.stderr and "global timeout reached: 3s" in proc.stderr
    assert "pinned-worker-2-" in proc.stderr
    assert [p.spec.node_name for p in v1.list_namespaced_pod("demo", label_selector="app=pinned-worker-2").items] == [
        "worker-2"]  # cordoned, and nowhere else matches its nodeSelector: it stays
    api.kubectl("uncordon", "worker-2")


def test_the_kubectl_on_path_works_too(api):
    assert shutil.which("kubectl"), "kubectl is not installed: run scripts/test.sh"
    out = api.kubectl("get", "nodes", binary=shutil.which("kubectl")).stdout
    assert len(_rows(out)) == 4
