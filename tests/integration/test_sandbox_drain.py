"""The drain on the real adapter (KubeClusterApi) against the sandbox API server over a real etcd.

The sandbox's controllers (the real reconcile pass) recreate evicted Deployment pods on other nodes
and start them; the budget tests run that pass whenever the drain sleeps, so when a 429 turns into
an eviction is decided by the cluster, not by the test's timing. kubectl checks what the drain wrote.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from kubernetes import client

from tests.integration.sandbox_helpers import etcd_cluster, needs_etcd, write_kubeconfig
from upgrader import errors
from upgrader.cluster.observe import KubeClusterApi
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.engine.drain import CordonState, cordon, drain, drained, uncordon
from upgrader.fakes import FakeClusterApi
from upgrader.services.wiring import SystemClock

RUN = 41


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """One real etcd member is enough here (the conftest's three would only slow the module down)."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd"), members=1) as started:
        yield started


def _kube(api) -> KubeClusterApi:
    return KubeClusterApi(cluster="sandbox", kubeconfig=str(api.kubeconfig), context=None, timeout=10)


class _ControllersWhileSleeping(SystemClock):
    """The real clock, whose sleeps are short and run one pass of the sandbox's controllers."""

    def __init__(self, api) -> None:
        self.api, self.sleeps = api, 0

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        time.sleep(min(seconds, 0.05))
        self.api.reconcile()


class _Watched(KubeClusterApi):
    """The real adapter, noting after each accepted eviction how many ``app=web`` pods are Running and Ready."""

    healthy_after_eviction: list[int]

    def evict_pod(self, namespace: str, name: str) -> tuple[int, str]:
        status, message = super().evict_pod(namespace, name)
        if status in (200, 201) and name.startswith("web-"):
            self.healthy_after_eviction.append(sum(1 for p in self.list_pods() if _web_ready(p)))
        return status, message


def _web_ready(pod: dict[str, Any]) -> bool:
    meta, status = pod["metadata"], pod.get("status") or {}
    return ((meta.get("labels") or {}).get("app") == "web" and not meta.get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []))


def _on(api, node: str) -> list[tuple[str, str]]:
    """(namespace/name, uid) of the pods bound to ``node``."""
    pods = client.CoreV1Api(api.client()).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    return sorted((f"{p.metadata.namespace}/{p.metadata.name}", p.metadata.uid) for p in pods)


def _kubectl_cordon(api, node: str) -> str:
    """``unschedulable annotation`` of the node as kubectl reads it (empty fields when unset)."""
    annotation = CORDON_ANNOTATION.replace(".", "\\.")
    path = "{.spec.unschedulable} {.metadata.annotations." + annotation + "}"
    return api.kubectl("get", "node", node, "-o", f"jsonpath={path}").stdout


@pytest.mark.etcd
@needs_etcd
def test_a_drain_honours_min_available_retrying_429s_and_kubectl_sees_our_cordon(api):
    apps, policy = client.AppsV1Api(api.client()), client.PolicyV1Api(api.client())
    apps.patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 6}})
    policy.patch_namespaced_pod_disruption_budget("web", "demo", [
        {"op": "remove", "path": "/spec/maxUnavailable"}, {"op": "add", "path": "/spec/minAvailable", "value": 5}])
    api.reconcile()
    placed = Counter(n for n in (p.spec.node_name for p in client.CoreV1Api(api.client()).list_namespaced_pod(
        "demo", label_selector="app=web").items))
    node, count = placed.most_common(1)[0]
    assert count >= 2, placed  # a second web pod on the node is what the budget must refuse for a while
    kube = _Watched(cluster="sandbox", kubeconfig=str(api.kubeconfig), context=None, timeout=10)
    kube.healthy_after_eviction = []
    outcome = drain(kube, _ControllersWhileSleeping(api), node, run_id=RUN, timeout=60, retry_seconds=0.2)
    assert outcome.cordon == "cordoned" and outcome.refusals_429 >= 1 and outcome.force_deleted == ()
    assert sum(1 for p in outcome.evicted if p.startswith("demo/web-")) == count
    assert len(kube.healthy_after_eviction) == count and min(kube.healthy_after_eviction) >= 5
    assert outcome.skipped_daemonset == 2  # node-agent and kube-proxy
    left = _on(api, node)
    assert left and all(name.startswith(("kube-system/node-agent-", "kube-system/kube-proxy-")) for name, _ in left)
    api.reconcile()
    web = client.CoreV1Api(api.client()).list_namespaced_pod("demo", label_selector="app=web").items
    assert len(web) == 6 and node not in {p.spec.node_name for p in web}
    assert _kubectl_cordon(api, node) == f"true {RUN}"
    assert "SchedulingDisabled" in api.kubectl("get", "node", node).stdout
    assert drained(kube, node, run_id=RUN) is True
    assert uncordon(kube, node, run_id=RUN) is True
    assert _kubectl_cordon(api, node) == " "
    assert drained(kube, node, run_id=RUN) is False


@pytest.mark.etcd
@needs_etcd
def test_a_budget_that_allows_nothing_times_out_naming_the_pod_and_the_budget(api):
    from upgrader.sandbox.supervisor.fault_objects import block_drain

    block_drain(api.store, "worker-2")  # a pod pinned to worker-2, minAvailable 1
    api.reconcile()
    pinned = [name for name, _ in _on(api, "worker-2") if name.startswith("demo/pinned-worker-2-")]
    assert len(pinned) == 1
    started = time.monotonic()
    with pytest.raises(errors.DrainTimeoutError) as caught:
        drain(_kube(api), SystemClock(), "worker-2", run_id=RUN, timeout=1.5, retry_seconds=0.3)
    assert 1.5 <= time.monotonic() - started < 10
    error = caught.value
    assert error.exit_code == 6 and (error.pods, error.budgets) == (tuple(pinned), ("demo/pinned-worker-2",))
    assert error.message.startswith(f"node worker-2 was not drained within 1.5s: 1 pod(s) still on it: {pinned[0]} "
                                    "(PodDisruptionBudget demo/pinned-worker-2; the API said: Cannot evict pod as it "
                                    "would violate the pod's disruption budget. (The disruption budget "
                                    "pinned-worker-2 needs 1 healthy pods and has 1 currently))")
    left = [name for name, _ in _on(api, "worker-2")]
    assert pinned[0] in left and not [n for n in left if n.startswith("demo/web-")]  # the rest did go
    assert _kubectl_cordon(api, "worker-2") == f"true {RUN}"  # left cordoned, as ours


@pytest.mark.etcd
@needs_etcd
def test_force_deletes_the_pod_the_budget_keeps_once_the_timeout_is_reached(api):
    from upgrader.sandbox.supervisor.fault_objects import block_drain

    block_drain(api.store, "worker-2")
    api.reconcile()
    pinned = [name for name, _ in _on(api, "worker-2") if name.startswith("demo/pinned-worker-2-")]
    outcome = drain(_kube(api), SystemClock(), "worker-2", run_id=RUN, timeout=1.0, retry_seconds=0.3, force=True)
    assert outcome.force_deleted == tuple(pinned) and outcome.refusals_429 >= 2 and outcome.waited_seconds >= 1.0
    assert pinned[0] not in outcome.evicted
    assert not [n for n, _ in _on(api, "worker-2") if not n.startswith("kube-system/")]
    assert drained(_kube(api), "worker-2", run_id=RUN) is True


@pytest.mark.etcd
@needs_etcd
def test_a_node_someone_else_cordoned_stays_cordoned_after_uncordon(api):
    api.kubectl("cordon", "worker-3")
    kube = _kube(api)
    outcome = drain(kube, SystemClock(), "worker-3", run_id=RUN, timeout=30)
    assert outcome.cordon == CordonState.FOREIGN and outcome.evicted  # drained all the same
    assert uncordon(kube, "worker-3", run_id=RUN) is False
    assert _kubectl_cordon(api, "worker-3") == "true "  # cordoned, and never annotated as ours
    assert drained(kube, "worker-3", run_id=RUN) is False
    api.kubectl("uncordon", "worker-3")


@pytest.mark.etcd
@needs_etcd
def test_daemonset_and_mirror_pods_are_not_evicted(api):
    from upgrader.sandbox.apiserver.mirror_pods import upsert_mirror_pod

    upsert_mirror_pod(api.store, node_name="worker-1", manifest={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "static-web", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.27.3"}]}})
    before = _on(api, "worker-1")
    kept = [(n, uid) for n, uid in before if n.startswith(("kube-system/node-agent-", "kube-system/kube-proxy-",
                                                            "kube-system/static-web-"))]
    assert len(kept) == 3
    outcome = drain(_kube(api), SystemClock(), "worker-1", run_id=RUN, timeout=30)
    assert (outcome.skipped_daemonset, outcome.skipped_mirror) == (2, 1)
    assert _on(api, "worker-1") == kept  # the same pods (same uids): never evicted and recreated
    assert set(outcome.evicted) == {n for n, _ in before} - {n for n, _ in kept}


@pytest.mark.etcd
@needs_etcd
@pytest.mark.parametrize("impl", ["kube", "fake"])
def test_the_writes_answer_as_the_port_says_on_the_adapter_and_on_its_fake(api, impl):
    kube = _kube(api)
    port = kube if impl == "kube" else FakeClusterApi(nodes=kube.list_nodes(), pods=kube.list_pods(),
                                                      pdbs=kube.list_pdbs())
    assert port.get_node("nope") is None and port.get_node("worker-1")["metadata"]["name"] == "worker-1"
    with pytest.raises(errors.NodeNotFoundError) as caught:
        port.patch_node("nope", {"spec": {"unschedulable": True}})
    assert caught.value.exit_code == 2
    patched = port.patch_node("worker-1", {"metadata": {"labels": {"x": "1"}}})
    assert patched["metadata"]["labels"]["x"] == "1" and "kubernetes.io/hostname" in patched["metadata"]["labels"]
    assert "x" not in port.patch_node("worker-1", {"metadata": {"labels": {"x": None}}})["metadata"]["labels"]
    assert port.evict_pod("demo", "nope") == (404, 'pods "nope" not found')
    assert port.delete_pod("demo", "nope") is False
    assert {p["spec"]["nodeName"] for p in port.list_node_pods("worker-1")} == {"worker-1"}
    web = [_web_on(port, node) for node in ("worker-1", "worker-2", "worker-3")]
    assert port.evict_pod("demo", web[0])[0] in (200, 201)  # maxUnavailable 1 of 3: one may go
    status, message = port.evict_pod("demo", web[1])  # and no replacement has started yet
    assert status == 429 and message.startswith("Cannot evict pod as it would violate the pod's disruption budget. "
                                                 "(The disruption budget web needs 2 healthy pods and has 2 currently")
    assert port.delete_pod("demo", web[2]) is True  # no budget is asked
    assert port.delete_pod("demo", web[2]) is False
    assert [_web_on(port, node) for node in ("worker-1", "worker-2", "worker-3")] == [None, web[1], None]


def _web_on(port: Any, node: str) -> str | None:
    return next((p["metadata"]["name"] for p in port.list_node_pods(node) if p["metadata"]["name"].startswith("web-")),
                None)


@pytest.mark.parametrize("status", [401, 403])
def test_a_write_the_credentials_may_not_do_is_refused_in_one_line(tmp_path, status):
    server = _answering(status)
    try:
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{server.server_address[1]}")
        kube = KubeClusterApi(cluster="prod", kubeconfig=str(kubeconfig), context=None, timeout=5)
        for write in (lambda: kube.patch_node("w", {}), lambda: kube.evict_pod("d", "p"),
                      lambda: kube.delete_pod("d", "p"), lambda: cordon(kube, "w", run_id=RUN)):
            with pytest.raises(errors.ClusterUnreachableError, match=rf"cluster prod: .* \({status} ") as caught:
                write()
            assert "\n" not in caught.value.message
        kube.close()
    finally:
        server.shutdown()
        server.server_close()


def test_every_write_of_an_unreachable_cluster_is_cluster_unreachable_error(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    kube = KubeClusterApi(cluster="gone", kubeconfig=str(kubeconfig), context=None, timeout=3)
    for write in (lambda: kube.get_node("w"), lambda: kube.list_node_pods("w"), lambda: kube.patch_node("w", {}),
                  lambda: kube.evict_pod("d", "p"), lambda: kube.delete_pod("d", "p")):
        with pytest.raises(errors.ClusterUnreachableError, match="cannot reach the API"):
            write()


def _answering(status: int) -> ThreadingHTTPServer:
    """An HTTP server that answers every request with ``status`` and a Status body."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"kind": "Status", "status": "Failure", "code": status, "message": "no"}).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    return server
