"""Where the sandbox puts pods, and how nodes register, on a real etcd through the python client."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from kubernetes import client

from tests.integration.sandbox_helpers import NODES, VERSION, etcd_cluster, needs_etcd, sandbox_api
from upgrader.sandbox.apiserver import errors, resources
from upgrader.sandbox.apiserver.node_status import NodeRole, NodeSpec, register_node, upsert_node_status
from upgrader.sandbox.apiserver.seed import seed_cluster
from upgrader.sandbox.apiserver.storage import Store
from upgrader.sandbox.etcd.kv import EtcdKV

pytestmark = [pytest.mark.etcd, needs_etcd]
WORKERS = {"worker-1", "worker-2", "worker-3"}


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    with etcd_cluster(tmp_path_factory.mktemp("etcd"), members=1) as started:
        yield started


@pytest.fixture
def store(members) -> Store:
    return Store(EtcdKV([m.client_url for m in members]), prefix=f"/t-{uuid.uuid4().hex[:8]}/registry")


def _placement(api, namespace: str, selector: str) -> list[str | None]:
    pods = client.CoreV1Api(api.client()).list_namespaced_pod(namespace, label_selector=selector).items
    return sorted((p.spec.node_name for p in pods), key=str)


def _deployment(name: str, replicas: int, **pod_spec) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas, selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(
                containers=[client.V1Container(name="c", image="busybox:1.36")], **pod_spec))))


def test_replicas_of_one_owner_are_spread_over_the_nodes(api):
    assert _placement(api, "demo", "app=web") == ["worker-1", "worker-2", "worker-3"]
    coredns = _placement(api, "kube-system", "k8s-app=kube-dns")
    assert coredns == ["cp-1", "worker-1"]  # it tolerates the control-plane taint, like kubeadm's CoreDNS
    client.AppsV1Api(api.client()).patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 7}})
    api.reconcile()
    # even first; the odd one out goes to the node with fewest pods (worker-1 also runs CoreDNS)
    assert Counter(_placement(api, "demo", "app=web")) == {"worker-1": 2, "worker-2": 3, "worker-3": 2}


def test_replicas_created_while_no_node_is_ready_spread_once_nodes_are(members, tmp_path):
    """The first start of a sandbox: the workloads exist before any kubelet has said Ready."""
    nodes = [NodeSpec(n.name, n.role, n.internal_ip, ready=False) for n in NODES]
    with sandbox_api(members, tmp_path, nodes=nodes) as api:
        api.reconcile()
        v1 = client.CoreV1Api(api.client())
        pending = v1.list_namespaced_pod("demo", label_selector="app=web").items
        assert [p.status.phase for p in pending] == ["Pending"] * 3
        scheduled = next(c for c in pending[0].status.conditions if c.type == "PodScheduled")
        assert scheduled.reason == "Unschedulable" and scheduled.message.startswith(
            "0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
            "3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }.")
        for n in nodes:
            upsert_node_status(api.store, node=n.name, kubelet_version=VERSION, ready=True)
        api.reconcile()
        assert _placement(api, "demo", "app=web") == ["worker-1", "worker-2", "worker-3"]
        assert len(set(_placement(api, "kube-system", "k8s-app=kube-dns"))) == 2
        web = v1.list_namespaced_pod("demo", label_selector="app=web").items
        assert all(p.status.phase == "Running" and p.status.host_ip.startswith("127.") for p in web)


def test_node_selector_and_node_name_of_a_pod_template(api):
    apps, v1 = client.AppsV1Api(api.client()), client.CoreV1Api(api.client())
    apps.create_namespaced_deployment("demo", _deployment("db", 2, node_selector={
        "kubernetes.io/hostname": "worker-2"}))
    apps.create_namespaced_deployment("demo", _deployment("fast", 1, node_selector={"disk": "ssd"}))
    apps.create_namespaced_deployment("demo", _deployment("pinned", 1, node_name="cp-1"))
    api.reconcile()
    assert _placement(api, "demo", "app=db") == ["worker-2", "worker-2"]
    assert _placement(api, "demo", "app=pinned") == ["cp-1"]  # nodeName: no scheduler, so no taint check
    fast = v1.list_namespaced_pod("demo", label_selector="app=fast").items[0]
    assert fast.status.phase == "Pending" and fast.spec.node_name is None
    assert next(c for c in fast.status.conditions if c.type == "PodScheduled").message.startswith(
        "0/4 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "3 node(s) didn't match Pod's node affinity/selector.")
    v1.patch_node("worker-3", {"metadata": {"labels": {"disk": "ssd"}}})
    api.reconcile()
    fast = v1.read_namespaced_pod(fast.metadata.name, "demo")
    assert fast.status.phase == "Running" and fast.spec.node_name == "worker-3"


def test_cordoned_and_not_ready_nodes_get_no_new_pods(api):
    v1 = client.CoreV1Api(api.client())
    v1.patch_node("worker-1", {"spec": {"unschedulable": True}})
    upsert_node_status(api.store, node="worker-2", kubelet_version=VERSION, ready=False)
    client.AppsV1Api(api.client()).patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 6}})
    api.reconcile()
    assert Counter(_placement(api, "demo", "app=web")) == {"worker-1": 1, "worker-2": 1, "worker-3": 4}
    solo = v1.create_namespaced_pod("demo", client.V1Pod(
        metadata=client.V1ObjectMeta(name="solo"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    assert solo.status.phase == "Pending"
    api.reconcile()
    assert v1.read_namespaced_pod("solo", "demo").spec.node_name == "worker-3"


def test_node_registration_is_idempotent_when_seeding_and_kubelets_race(store):
    spec = NodeSpec("worker-1", NodeRole.WORKER, "127.0.0.11", ready=False, index=1)
    barrier = threading.Barrier(6)
    failures: list[BaseException] = []

    def seed() -> None:
        barrier.wait()
        seed_cluster(store, nodes=[NodeSpec("cp-1", NodeRole.CONTROL_PLANE, "127.0.0.10", index=0), spec],
                     version=VERSION, cluster_name="kubernetes")

    def kubelet() -> None:
        barrier.wait()
        upsert_node_status(store, node=spec, kubelet_version=VERSION, ready=True)

    def run(target) -> None:
        try:
            target()
        except BaseException as e:  # reported by the assertion below
            failures.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in (seed, kubelet, kubelet, kubelet, kubelet, seed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    nodes, _ = store.list(resources.NODES)
    assert sorted(n["metadata"]["name"] for n in nodes) == ["cp-1", "worker-1"]
    seed_cluster(store, nodes=[spec], version=VERSION, cluster_name="kubernetes")  # and again, sequentially
    assert register_node(store, spec, version=VERSION)["spec"]["podCIDR"] == "10.244.1.0/24"
    assert len(store.list(resources.NODES)[0]) == 2


def test_a_registration_that_loses_the_create_adopts_the_node(store):
    spec = NodeSpec("worker-2", NodeRole.WORKER, "127.0.0.12", index=2)
    first = register_node(store, spec, version=VERSION)

    class LateStore(Store):
        """Sees no node on its first look, as a registration does that read just before another's create."""

        blind = 1

        def try_get(self, rt, namespace, name):
            if rt is resources.NODES and self.blind:
                self.blind -= 1
                return None
            return super().try_get(rt, namespace, name)

    def tamper(node: dict) -> dict:  # what an operator or an older sandbox may have left
        node["metadata"]["labels"] = {"team": "db"}
        node["spec"]["taints"] = []
        node["status"]["addresses"] = [{"type": "InternalIP", "address": "10.1.2.3"}]
        return node

    store.guaranteed_update(resources.NODES, None, "worker-2", tamper)
    late = LateStore(store.kv, prefix=store.prefix)
    adopted = register_node(late, spec, version=VERSION)
    assert late.blind == 0 and adopted["metadata"]["uid"] == first["metadata"]["uid"]
    assert adopted["metadata"]["labels"]["team"] == "db"  # kept
    assert adopted["metadata"]["labels"]["kubernetes.io/hostname"] == "worker-2"  # the kubelet's own, restored
    assert adopted["spec"]["taints"] == []  # not the kubelet's to put back
    assert adopted["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.12"}
    again = register_node(store, spec, version=VERSION)
    assert again["metadata"]["resourceVersion"] == adopted["metadata"]["resourceVersion"]  # nothing to write


def test_a_kubelet_registers_its_deleted_node_again(store):
    spec = NodeSpec("worker-3", NodeRole.WORKER, "127.0.0.13", ready=False)
    upsert_node_status(store, node=spec, kubelet_version=VERSION, ready=True)
    store.delete(resources.NODES, None, "worker-3")
    node = upsert_node_status(store, node=spec, kubelet_version="v1.31.4", ready=True)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and node["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4"
    assert node["spec"]["podCIDR"] == "10.244.0.0/24"  # the first free one
    with pytest.raises(errors.ApiError, match="not found"):  # by name only, a heartbeat cannot register
        upsert_node_status(store, node="worker-9", kubelet_version=VERSION, ready=True)
