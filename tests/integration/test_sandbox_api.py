"""The sandbox API server through the official python client (strict models), on a real etcd."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import yaml
from kubernetes import client, watch

from tests.integration.sandbox_helpers import VERSION, needs_etcd
from upgrader.sandbox.apiserver import resources
from upgrader.sandbox.apiserver.mirror_pods import upsert_mirror_pod
from upgrader.sandbox.apiserver.node_status import upsert_node_status
from upgrader.sandbox.apiserver.seed import cluster_configuration

pytestmark = [pytest.mark.etcd, needs_etcd]


def _get(url: str, accept: str = "application/json") -> tuple[int, dict, str]:
    req = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def _status(excinfo) -> dict:
    return json.loads(excinfo.value.body)


def test_version_has_every_version_info_field(api):
    info = client.VersionApi(api.client()).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "30", VERSION)
    assert info.git_tree_state == "clean" and info.compiler == "gc" and info.platform == "linux/amd64"
    assert len(info.git_commit) == 40 and info.go_version.startswith("go1.")
    assert _get(api.url + "/version/")[0] == 200


def test_health_endpoints_speak_like_the_real_server(api):
    assert _get(api.url + "/livez")[2] == "ok"
    code, headers, body = _get(api.url + "/readyz?verbose")
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    assert body.startswith("[+]ping ok\n") and "[+]etcd ok" in body and body.endswith("readyz check passed\n")
    assert _get(api.url + "/readyz/etcd")[2] == "ok"
    api.server.set_unready(True)
    code, _, body = _get(api.url + "/readyz")
    assert code == 500 and "[-]poststarthook/rbac/bootstrap-roles failed" in body
    assert body.endswith("readyz check failed\n")
    assert _get(api.url + "/livez")[0] == 200  # unready is not dead


def test_readyz_fails_when_etcd_is_unreachable(members, tmp_path):
    from upgrader.sandbox.apiserver import ServerConfig, serve_in_thread

    server = serve_in_thread(ServerConfig(etcd_endpoints=("http://127.0.0.1:9",)))
    try:
        code, _, body = _get(server.url + "/readyz")
        assert code == 500 and "[-]etcd failed: reason withheld" in body
    finally:
        server.stop()


def test_discovery_lists_subresources_kinds_and_short_names(api):
    core = {r.name: r for r in client.CoreV1Api(api.client()).get_api_resources().resources}
    assert core["pods/eviction"].group == "policy" and core["pods/eviction"].kind == "Eviction"
    assert core["pods"].short_names == ["po"] and core["nodes"].short_names == ["no"]
    assert core["nodes/status"].verbs == ["get", "patch", "update"] and not core["nodes"].namespaced
    assert {"cm", "ns"} <= {s for r in core.values() for s in r.short_names or []}
    apps = {r.name: r for r in client.AppsV1Api(api.client()).get_api_resources().resources}
    assert apps["deployments"].short_names == ["deploy"] and apps["daemonsets"].short_names == ["ds"]
    policy = {r.name: r for r in client.PolicyV1Api(api.client()).get_api_resources().resources}
    assert policy["poddisruptionbudgets"].short_names == ["pdb"]
    groups = client.ApisApi(api.client()).get_api_versions()
    assert {g.name for g in groups.groups} == {"apps", "policy"}
    _, headers, body = _get(api.url + "/apis", "application/json;g=apidiscovery.k8s.io;v=v2;"
                               "as=APIGroupDiscoveryList,application/json")
    assert headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    assert json.loads(body)["kind"] == "APIGroupDiscoveryList"


def test_seeded_nodes_and_system_pods_deserialize_in_strict_models(api):
    v1 = client.CoreV1Api(api.client())
    nodes = {n.metadata.name: n for n in v1.list_node().items}
    assert set(nodes) == {"cp-1", "worker-1", "worker-2", "worker-3"}
    cp = nodes["cp-1"]
    assert "node-role.kubernetes.io/control-plane" in cp.metadata.labels
    assert cp.spec.taints[0].key == "node-role.kubernetes.io/control-plane" and cp.spec.taints[0].effect == "NoSchedule"
    assert cp.status.node_info.kubelet_version == VERSION
    assert [c.type for c in cp.status.conditions][-1] == "Ready"
    pods = v1.list_namespaced_pod("kube-system").items
    assert {p.metadata.labels.get("app") or p.metadata.labels.get("k8s-app") for p in pods} == {
        "node-agent", "kube-proxy", "kube-dns"}
    assert all(p.status.phase == "Running" and p.status.container_statuses[0].ready for p in pods)
    cm = v1.read_namespaced_config_map("kubeadm-config", "kube-system")
    conf = yaml.safe_load(cm.data["ClusterConfiguration"])
    assert conf["apiVersion"] == "kubeadm.k8s.io/v1beta3" and conf["kubernetesVersion"] == VERSION
    assert conf["etcd"]["local"]["dataDir"] == "/var/lib/etcd"


def test_kubeadm_config_uses_v1beta4_from_1_31():
    conf = yaml.safe_load(cluster_configuration("v1.31.4", cluster_name="k", control_plane_endpoint="x:6443"))
    assert conf["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert conf["apiServer"]["extraArgs"] == [{"name": "authorization-mode", "value": "Node,RBAC"}]


def test_mirror_pods_and_node_status_helpers(api):
    manifest = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "kube-apiserver", "namespace": "kube-system",
                             "labels": {"component": "kube-apiserver", "tier": "control-plane"}},
                "spec": {"containers": [{"name": "kube-apiserver",
                                         "image": "registry.k8s.io/kube-apiserver:v1.30.6"}]}}
    first = upsert_mirror_pod(api.store, node_name="cp-1", manifest=manifest, config_hash="aaa")
    v1 = client.CoreV1Api(api.client())
    pod = v1.read_namespaced_pod("kube-apiserver-cp-1", "kube-system")
    assert pod.metadata.annotations["kubernetes.io/config.mirror"] == "aaa"
    assert pod.metadata.owner_references[0].kind == "Node" and pod.spec.node_name == "cp-1"
    manifest["spec"]["containers"][0]["image"] = "registry.k8s.io/kube-apiserver:v1.31.4"
    second = upsert_mirror_pod(api.store, node_name="cp-1", manifest=manifest, config_hash="bbb")
    assert second["metadata"]["uid"] != first["metadata"]["uid"]  # a new manifest is a new mirror pod
    pods = v1.list_namespaced_pod("kube-system", label_selector="component=kube-apiserver").items
    assert [p.spec.containers[0].image.rsplit(":", 1)[1] for p in pods] == ["v1.31.4"]
    upsert_node_status(api.store, node="worker-1", kubelet_version="v1.31.4", ready=False)
    node = v1.read_node("worker-1")
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "False" and node.status.node_info.kubelet_version == "v1.31.4"
    api.reconcile()  # the node lifecycle controller marks its pods not ready
    on_node = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-1").items
    assert on_node and not any(c.ready for p in on_node for c in p.status.container_statuses)


def test_create_patch_update_delete(api):
    v1 = client.CoreV1Api(api.client())
    cm = v1.create_namespaced_config_map("demo", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"}))
    assert cm.metadata.uid and cm.metadata.creation_timestamp and int(cm.metadata.resource_version) > 0
    patched = v1.patch_namespaced_config_map("settings", "demo", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    patched.data["c"] = "3"
    replaced = v1.replace_namespaced_config_map("settings", "demo", patched)
    assert int(replaced.metadata.resource_version) > int(patched.metadata.resource_version)
    cordoned = v1.patch_node("worker-2", {"spec": {"unschedulable": True}})
    assert cordoned.spec.unschedulable is True
    assert v1.patch_node("worker-2", {"spec": {"unschedulable": None}}).spec.unschedulable is None
    labelled = v1.patch_node("worker-2", [{"op": "add", "path": "/metadata/labels/tier", "value": "gold"}])
    assert labelled.metadata.labels["tier"] == "gold"
    node = v1.read_node("worker-2")
    node.status.conditions = []  # an update of the main resource cannot touch status
    assert v1.replace_node("worker-2", node).status.conditions
    v1.delete_namespaced_config_map("settings", "demo")
    with pytest.raises(client.ApiException) as e:
        v1.read_namespaced_config_map("settings", "demo")
    assert e.value.status == 404 and _status(e)["message"] == 'configmaps "settings" not found'


def test_apps_objects_get_generation_and_controllers_converge(api):
    apps = client.AppsV1Api(api.client())
    dep = apps.read_namespaced_deployment("web", "demo")
    assert dep.metadata.generation == 1 and dep.spec.replicas == 3
    assert dep.status.ready_replicas == 3 and dep.status.observed_generation == 1
    scaled = apps.patch_namespaced_deployment("web", "demo", {"spec": {"replicas": 4}})
    assert scaled.metadata.generation == 2
    api.reconcile()
    pods = client.CoreV1Api(api.client()).list_namespaced_pod("demo", label_selector="app=web").items
    assert len(pods) == 4
    owner = pods[0].metadata.owner_references[0]
    assert owner.kind == "ReplicaSet" and owner.controller and owner.name.startswith("web-")
    assert all(p.spec.node_name.startswith("worker-") for p in pods)  # never on the tainted control plane


def test_errors_are_real_status_objects(api):
    v1 = client.CoreV1Api(api.client())
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dup"))
    v1.create_namespaced_config_map("demo", body)
    with pytest.raises(client.ApiException) as e:
        v1.create_namespaced_config_map("demo", body)
    assert e.value.status == 409 and _status(e)["reason"] == "AlreadyExists"
    with pytest.raises(client.ApiException) as e:
        v1.create_namespaced_config_map("demo", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name")))
    assert e.value.status == 422 and _status(e)["details"]["causes"][0]["field"] == "metadata.name"
    with pytest.raises(client.ApiException) as e:
        v1.create_namespaced_config_map("nowhere", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert e.value.status == 404 and _status(e)["message"] == 'namespaces "nowhere" not found'
    req = urllib.request.Request(api.url + "/api/v1/nodes/cp-1", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(req, timeout=5)
    assert http.value.code == 405 and json.loads(http.value.read())["reason"] == "MethodNotAllowed"
    assert _get(api.url + "/apis/batch/v1/jobs")[0] == 404


def test_stale_resource_version_is_a_conflict(api):
    v1 = client.CoreV1Api(api.client())
    node = v1.read_node("worker-3")
    v1.patch_node("worker-3", {"metadata": {"labels": {"touched": "yes"}}})
    node.metadata.labels["mine"] = "no"
    with pytest.raises(client.ApiException) as e:
        v1.replace_node("worker-3", node)
    assert e.value.status == 409 and _status(e)["reason"] == "Conflict"
    assert _status(e)["message"] == ('Operation cannot be fulfilled on nodes "worker-3": the object has been '
                                     "modified; please apply your changes to the latest version and try again")


def test_field_and_label_selectors(api):
    v1 = client.CoreV1Api(api.client())
    on_w1 = v1.list_pod_for_all_namespaces(field_selector="spec.nodeName=worker-1").items
    assert on_w1 and {p.spec.node_name for p in on_w1} == {"worker-1"}
    running = v1.list_pod_for_all_namespaces(field_selector="status.phase!=Succeeded,metadata.namespace=demo")
    assert {p.metadata.namespace for p in running.items} == {"demo"} and len(running.items) == 3
    assert len(v1.list_pod_for_all_namespaces(label_selector="app in (web, node-agent)").items) == 7
    assert len(v1.list_namespaced_pod("kube-system", label_selector="app!=node-agent").items) == 6
    assert len(v1.list_namespaced_pod("kube-system", label_selector="!app").items) == 6
    assert len(v1.list_pod_for_all_namespaces(label_selector="k8s-app").items) == 6
    assert [n.metadata.name for n in v1.list_node(field_selector="metadata.name=cp-1").items] == ["cp-1"]
    with pytest.raises(client.ApiException) as e:
        v1.list_pod_for_all_namespaces(field_selector="spec.color=blue")
    assert e.value.status == 400 and _status(e)["message"] == "field label not supported: spec.color"


def _web_pods(api) -> list:
    return client.CoreV1Api(api.client()).list_namespaced_pod("demo", label_selector="app=web").items


def test_eviction_blocked_by_pdb_answers_429_with_the_real_message(api):
    policy = client.PolicyV1Api(api.client())
    policy.create_namespaced_pod_disruption_budget("kube-system", client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name="agents"),
        spec=client.V1PodDisruptionBudgetSpec(min_available=4,
                                              selector=client.V1LabelSelector(match_labels={"app": "node-agent"}))))
    pdb = policy.read_namespaced_pod_disruption_budget("agents", "kube-system")
    assert (pdb.status.current_healthy, pdb.status.desired_healthy, pdb.status.disruptions_allowed) == (4, 4, 0)
    agent = client.CoreV1Api(api.client()).list_namespaced_pod("kube-system", label_selector="app=node-agent")
    name = agent.items[0].metadata.name
    with pytest.raises(client.ApiException) as e:
        client.CoreV1Api(api.client()).create_namespaced_pod_eviction(
            name, "kube-system", client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace="kube-system")))
    status = _status(e)
    assert e.value.status == 429 and status["reason"] == "TooManyRequests"
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"] == [{"reason": "DisruptionBudget", "message":
                                            "The disruption budget agents needs 4 healthy pods and has 4 currently"}]


def test_eviction_spends_the_budget_and_the_pod_is_replaced_elsewhere(api):
    v1, policy = client.CoreV1Api(api.client()), client.PolicyV1Api(api.client())
    assert policy.read_namespaced_pod_disruption_budget("web", "demo").status.disruptions_allowed == 1
    first, second = _web_pods(api)[:2]
    v1.create_namespaced_pod_eviction(first.metadata.name, "demo", client.V1Eviction(
        metadata=client.V1ObjectMeta(name=first.metadata.name, namespace="demo")))
    with pytest.raises(client.ApiException) as e:
        v1.read_namespaced_pod(first.metadata.name, "demo")
    assert e.value.status == 404
    with pytest.raises(client.ApiException) as e:  # the single allowed disruption is spent
        v1.create_namespaced_pod_eviction(second.metadata.name, "demo", client.V1Eviction(
            metadata=client.V1ObjectMeta(name=second.metadata.name, namespace="demo")))
    assert e.value.status == 429
    v1.patch_node(first.spec.node_name, {"spec": {"unschedulable": True}})
    api.reconcile()
    pods = _web_pods(api)
    assert len(pods) == 3 and first.spec.node_name not in {p.spec.node_name for p in pods}
    assert policy.read_namespaced_pod_disruption_budget("web", "demo").status.disruptions_allowed == 1


def test_table_output_for_nodes_and_pods(api):
    client.CoreV1Api(api.client()).patch_node("worker-1", {"spec": {"unschedulable": True}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    body = _get(api.url + "/api/v1/nodes", accept)[2]
    table = json.loads(body)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Status", "Roles", "Age", "Version"]
    rows = {r["cells"][0]: r for r in table["rows"]}
    assert rows["worker-1"]["cells"][1] == "Ready,SchedulingDisabled"
    assert rows["cp-1"]["cells"][2] == "control-plane" and rows["cp-1"]["cells"][4] == VERSION
    assert rows["cp-1"]["object"]["kind"] == "PartialObjectMetadata"
    none = json.loads(_get(api.url + "/api/v1/namespaces/demo/pods?includeObject=None", accept)[2])
    assert none["rows"] and "object" not in none["rows"][0] and none["rows"][0]["cells"][1:3] == ["1/1", "Running"]
    full = json.loads(_get(api.url + "/api/v1/namespaces/demo/pods?includeObject=Object", accept)[2])
    assert full["rows"][0]["object"]["spec"]["containers"][0]["name"] == "web"


def test_watch_streams_added_modified_deleted(api):
    v1 = client.CoreV1Api(api.client())
    start = v1.list_namespaced_config_map("demo").metadata.resource_version
    v1.create_namespaced_config_map("demo", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w"), data={}))
    v1.patch_namespaced_config_map("w", "demo", {"data": {"k": "v"}})
    v1.delete_namespaced_config_map("w", "demo")
    seen = []
    for event in watch.Watch().stream(v1.list_namespaced_config_map, "demo", resource_version=start,
                                      timeout_seconds=2):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_unknown_resource_kinds_are_listed_once_per_group():
    assert len({(r.group, r.plural) for r in resources.ALL}) == len(resources.ALL)


def test_every_seeded_kind_deserializes_in_the_python_client(api):
    c = api.client()
    v1, apps, policy = client.CoreV1Api(c), client.AppsV1Api(c), client.PolicyV1Api(c)
    counts = {
        "namespaces": len(v1.list_namespace().items), "nodes": len(v1.list_node().items),
        "pods": len(v1.list_pod_for_all_namespaces().items),
        "configmaps": len(v1.list_config_map_for_all_namespaces().items),
        "services": len(v1.list_service_for_all_namespaces().items),
        "events": len(v1.list_event_for_all_namespaces().items),
        "deployments": len(apps.list_deployment_for_all_namespaces().items),
        "replicasets": len(apps.list_replica_set_for_all_namespaces().items),
        "daemonsets": len(apps.list_daemon_set_for_all_namespaces().items),
        "pdbs": len(policy.list_pod_disruption_budget_for_all_namespaces().items),
    }
    assert counts == {"namespaces": 5, "nodes": 4, "pods": 13, "configmaps": 1, "services": 2, "events": 0,
                      "deployments": 2, "replicasets": 2, "daemonsets": 2, "pdbs": 1}
    assert v1.read_namespace("demo").status.phase == "Active"
    assert v1.read_namespaced_service("kubernetes", "default").spec.cluster_ip == "10.96.0.1"


def test_two_api_servers_share_one_etcd(api):
    from upgrader.sandbox.apiserver import ServerConfig, serve_in_thread

    other = serve_in_thread(ServerConfig(etcd_endpoints=tuple(m.client_url for m in api.members),
                                         etcd_prefix=api.prefix, git_version="v1.31.4"))
    try:
        second = client.CoreV1Api(client.ApiClient(client.Configuration(host=other.url)))
        client.CoreV1Api(api.client()).patch_node("worker-1", {"metadata": {"labels": {"seen": "here"}}})
        assert second.read_node("worker-1").metadata.labels["seen"] == "here"
        assert client.VersionApi(second.api_client).get_code().git_version == "v1.31.4"
    finally:
        other.stop()


def test_status_subresources_and_a_created_pod_gets_scheduled(api):
    v1 = client.CoreV1Api(api.client())
    node = v1.patch_node_status("worker-2", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "PLEG is not healthy"}]}})
    conditions = {c.type: c for c in node.status.conditions}
    assert conditions["Ready"].status == "False" and conditions["MemoryPressure"].status == "False"  # merged by type
    assert node.spec.pod_cidr == "10.244.2.0/24"  # status writes leave the spec alone
    pod = v1.create_namespaced_pod("demo", client.V1Pod(
        metadata=client.V1ObjectMeta(name="solo", labels={"run": "solo"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")])))
    assert pod.status.phase == "Pending" and pod.spec.restart_policy == "Always"
    api.reconcile()
    pod = v1.read_namespaced_pod("solo", "demo")
    assert pod.status.phase == "Running" and pod.spec.node_name in ("worker-1", "worker-3")
    pod.status.phase = "Succeeded"
    done = v1.replace_namespaced_pod_status("solo", "demo", pod)
    assert done.status.phase == "Succeeded"
    assert v1.delete_namespaced_pod("solo", "demo").metadata.name == "solo"


def test_a_stopped_server_drops_keep_alive_connections(members, tmp_path):
    from upgrader.sandbox.apiserver import ServerConfig, serve_in_thread

    server = serve_in_thread(ServerConfig(etcd_endpoints=tuple(m.client_url for m in members)))
    pooled = client.VersionApi(client.ApiClient(client.Configuration(host=server.url)))
    assert pooled.get_code().git_version == VERSION  # leaves a keep-alive connection in the pool
    server.stop()
    with pytest.raises(Exception):  # noqa: B017 - urllib3 raises one of several connection errors
        pooled.get_code(_request_timeout=2)
