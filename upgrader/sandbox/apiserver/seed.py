"""What ``kubeadm init``/``join`` and the kubelets leave in a new cluster, written straight to etcd.

The supervisor calls :func:`seed_cluster` once on a fresh etcd; the simulated kubelets call
:func:`upsert_node_status` and :func:`upsert_mirror_pod` on every heartbeat. All writes go through
:class:`Store`, so resourceVersions, uids and compare-and-swap behave as for API writes.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import ipaddress
import json
from dataclasses import dataclass, replace
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.sandbox import releases
from upgrader.sandbox.apiserver import errors, objects, podutil, resources
from upgrader.sandbox.apiserver.storage import Obj, Store, now
from upgrader.sandbox.apiserver.strategies import default_pod_spec, prepare_create
from upgrader.sandbox.etcd import EtcdKV

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEMO_NAMESPACE = "demo"


class NodeRole(enum.StrEnum):
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node as the supervisor knows it.

    ``internal_ip`` is only reported, never bound, and must be a loopback address: tools read a
    node's InternalIP and may connect to it, and a sandbox must never send them to a real private
    network. ``index`` numbers the node's podCIDR (10.244.INDEX.0/24); None takes the first free one.
    """

    name: str
    role: NodeRole
    internal_ip: str
    kubelet_version: str | None = None  # default: the cluster version
    ready: bool = True
    index: int | None = None

    def __post_init__(self) -> None:
        try:
            loopback = ipaddress.ip_address(self.internal_ip).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"node {self.name}: InternalIP {self.internal_ip!r} is not a loopback address (127.x)")


def _store(kv: EtcdKV | Store, prefix: str) -> Store:
    return kv if isinstance(kv, Store) else Store(kv, prefix=prefix)


def cluster_configuration(version: str, *, cluster_name: str, control_plane_endpoint: str) -> str:
    """kubeadm's ClusterConfiguration as ``kubeadm init`` uploads it (v1beta4 from v1.31 on)."""
    v = Version.parse(version)
    beta4 = v.minor >= 31
    api_args = {"authorization-mode": "Node,RBAC"}
    doc: dict[str, Any] = {
        "apiServer": {"extraArgs": [{"name": k, "value": val} for k, val in api_args.items()] if beta4 else api_args},
        "apiVersion": f"kubeadm.k8s.io/{'v1beta4' if beta4 else 'v1beta3'}",
    }
    if beta4:
        doc |= {"caCertificateValidityPeriod": "87600h0m0s", "certificateValidityPeriod": "8760h0m0s"}
    else:
        doc["apiServer"]["timeoutForControlPlane"] = "4m0s"
    doc |= {"certificatesDir": "/etc/kubernetes/pki", "clusterName": cluster_name,
            "controlPlaneEndpoint": control_plane_endpoint, "controllerManager": {}, "dns": {}}
    if beta4:
        doc["encryptionAlgorithm"] = "RSA-2048"
    doc |= {"etcd": {"local": {"dataDir": "/var/lib/etcd"}}, "imageRepository": "registry.k8s.io",
            "kind": "ClusterConfiguration", "kubernetesVersion": str(v),
            "networking": {"dnsDomain": "cluster.local", "podSubnet": "10.244.0.0/16",
                           "serviceSubnet": "10.96.0.0/12"}}
    if beta4:
        doc["proxy"] = {}
    doc["scheduler"] = {}
    return yaml.safe_dump(doc, sort_keys=False)


def node_object(spec: NodeSpec, *, version: str, index: int) -> Obj:
    labels = {"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux"}
    node_spec: Obj = {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]}
    if spec.role is NodeRole.CONTROL_PLANE:
        labels |= {podutil.CONTROL_PLANE_LABEL: "", "node.kubernetes.io/exclude-from-external-load-balancers": ""}
        node_spec["taints"] = [{"key": podutil.CONTROL_PLANE_LABEL, "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels, "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
            "spec": node_spec,
            "status": objects.node_status(spec.name, internal_ip=spec.internal_ip,
                                          kubelet_version=spec.kubelet_version or version, ready=spec.ready)}


def _workload(kind: str, name: str, namespace: str, labels: dict[str, str], container: Obj, **spec: Any) -> Obj:
    template = {"metadata": {"labels": labels}, "spec": {"containers": [container], **spec.pop("pod", {})}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace,
                                                                "labels": dict(labels)},
            "spec": {**spec, "selector": {"matchLabels": labels}, "template": template}}


def sample_workloads(version: str, *, workers: int) -> list[tuple[resources.ResourceType, Obj]]:
    """``web`` + PDB in ``demo``, ``node-agent``, and kubeadm's own kube-proxy and CoreDNS addons."""
    v = Version.parse(version)
    cp_toleration = {"key": podutil.CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
    web = _workload("Deployment", "web", DEMO_NAMESPACE, {"app": "web"},
                    {"name": "web", "image": "nginx:1.27.3", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    replicas=max(2, workers))
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
           "metadata": {"name": "web", "namespace": DEMO_NAMESPACE},
           "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    agent = _workload("DaemonSet", "node-agent", "kube-system", {"app": "node-agent"},
                      {"name": "agent", "image": "busybox:1.36", "command": ["sleep", "infinity"]},
                      pod={"tolerations": [cp_toleration]})
    proxy = _workload("DaemonSet", "kube-proxy", "kube-system", {"k8s-app": "kube-proxy"},
                      {"name": "kube-proxy", "image": releases.image("kube-proxy", str(v)),
                       "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                                   "--hostname-override=$(NODE_NAME)"]},
                      pod={"hostNetwork": True, "priorityClassName": "system-node-critical",
                           "tolerations": [{"operator": "Exists"}]})
    coredns = _workload("Deployment", "coredns", "kube-system", {"k8s-app": "kube-dns"},
                        {"name": "coredns", "image": releases.image("coredns/coredns", releases.coredns_tag(v)),
                         "args": ["-conf", "/etc/coredns/Corefile"]},
                        replicas=2, pod={"priorityClassName": "system-cluster-critical",
                                         "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                                         cp_toleration]})
    return [(resources.DEPLOYMENTS, web), (resources.PDBS, pdb), (resources.DAEMONSETS, agent),
            (resources.DAEMONSETS, proxy), (resources.DEPLOYMENTS, coredns), *_services()]


def _services() -> list[tuple[resources.ResourceType, Obj]]:
    """The two services every kubeadm cluster has: the API's own and CoreDNS's."""
    kubernetes = {"metadata": {"name": "kubernetes", "namespace": "default",
                               "labels": {"component": "apiserver", "provider": "kubernetes"}},
                  "spec": {"clusterIP": "10.96.0.1",
                           "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}}
    dns = {"metadata": {"name": "kube-dns", "namespace": "kube-system",
                        "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                   "kubernetes.io/name": "CoreDNS"}},
           "spec": {"clusterIP": "10.96.0.10", "selector": {"k8s-app": "kube-dns"},
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                              {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                              {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}
    return [(resources.SERVICES, kubernetes), (resources.SERVICES, dns)]


def seed_cluster(
    kv: EtcdKV | Store, *, nodes: list[NodeSpec], version: str, cluster_name: str,
    control_plane_endpoint: str = "127.0.0.1:6443", prefix: str = "/registry",
) -> None:
    """Namespaces, kubeadm-config, the nodes and the sample workloads; objects that exist are kept."""
    store = _store(kv, prefix)
    for ns in (*SYSTEM_NAMESPACES, DEMO_NAMESPACE):
        _ensure(store, resources.NAMESPACES, {"metadata": {"name": ns}})
    config = cluster_configuration(version, cluster_name=cluster_name, control_plane_endpoint=control_plane_endpoint)
    _ensure(store, resources.CONFIGMAPS, {"metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                                          "data": {"ClusterConfiguration": config}})
    for index, spec in enumerate(nodes):
        register_node(store, spec if spec.index is not None else replace(spec, index=index), version=version)
    workers = sum(1 for n in nodes if n.role is NodeRole.WORKER)
    for rt, obj in sample_workloads(version, workers=workers):
        _ensure(store, rt, obj)


def _ensure(store: Store, rt: resources.ResourceType, obj: Obj) -> None:
    m = obj["metadata"]
    if store.try_get(rt, m.get("namespace"), m["name"]) is None:
        try:
            store.create(rt, prepare_create(rt, obj))
        except errors.ApiError as e:
            if e.reason != "AlreadyExists":  # created since we looked: kept, like every existing object
                raise


_REGISTER_ATTEMPTS = 10
# What a kubelet keeps right on an existing Node at registration (kubelet_node_status.go
# updateDefaultLabels and reconcileCMADAnnotationWithExistingNode); roles and taints are kubeadm's
# and stay as they are.
_KUBELET_LABELS = ("beta.kubernetes.io/arch", "beta.kubernetes.io/os", "kubernetes.io/arch", "kubernetes.io/hostname",
                   "kubernetes.io/os")
_KUBELET_ANNOTATIONS = ("volumes.kubernetes.io/controller-managed-attach-detach",)


def register_node(kv: EtcdKV | Store, spec: NodeSpec, *, version: str, prefix: str = "/registry") -> Obj:
    """Create the Node, or adopt the one already there (seeded, or registered before a restart).

    Idempotent and safe to race: the supervisor's seeding and every kubelet may register the same
    node at once. Whoever loses the create takes the winner's object and only puts the kubelet's
    labels and addresses right on it (a kubelet does the same on a node it finds registered).
    """
    store = _store(kv, prefix)
    wanted = node_object(spec, version=version, index=spec.index or 0)  # what the kubelet keeps right

    def adopt(node: Obj) -> Obj | None:
        return _adopt(node, wanted)

    for _ in range(_REGISTER_ATTEMPTS):
        if store.try_get(resources.NODES, None, spec.name) is None:
            index = spec.index if spec.index is not None else _free_cidr_index(store)
            try:
                return store.create(resources.NODES, node_object(spec, version=version, index=index))
            except errors.ApiError as e:
                if e.reason != "AlreadyExists":
                    raise
                continue  # registered by someone else just now: adopt theirs
        try:
            return store.guaranteed_update(resources.NODES, None, spec.name, adopt)
        except errors.ApiError as e:
            if e.code != 404:  # NotFound: deleted just now, so create it again
                raise
    raise errors.conflict(resources.NODES, spec.name)


def _adopt(node: Obj, wanted: Obj) -> Obj | None:
    meta, want = node["metadata"], wanted["metadata"]
    labels = {**(meta.get("labels") or {}), **{k: want["labels"][k] for k in _KUBELET_LABELS}}
    annotations = {**(meta.get("annotations") or {}), **{k: want["annotations"][k] for k in _KUBELET_ANNOTATIONS}}
    status = node.setdefault("status", {})
    addresses = wanted["status"]["addresses"]
    if (labels, annotations, status.get("addresses")) == (meta.get("labels"), meta.get("annotations"), addresses):
        return None
    meta["labels"], meta["annotations"], status["addresses"] = labels, annotations, addresses
    return node


def _free_cidr_index(store: Store) -> int:
    nodes, _ = store.list(resources.NODES)
    used = {n.get("spec", {}).get("podCIDR") for n in nodes}
    return next(i for i in range(len(nodes) + 1) if f"10.244.{i}.0/24" not in used)


def upsert_node_status(
    kv: EtcdKV | Store, *, node: str | NodeSpec, kubelet_version: str, ready: bool,
    reason: str | None = None, message: str | None = None, prefix: str = "/registry",
) -> Obj:
    """The kubelet's heartbeat: version, conditions (and, given a NodeSpec, its addresses).

    Given a NodeSpec, a missing Node is registered first (:func:`register_node`), so a kubelet that
    starts before the cluster is seeded, or whose Node was deleted, comes back on its own.
    """
    store = _store(kv, prefix)
    name = node if isinstance(node, str) else node.name
    addresses = None if isinstance(node, str) else objects.node_addresses(node.name, node.internal_ip)

    def heartbeat(obj: Obj) -> Obj:
        status = obj.setdefault("status", {})
        info = objects.node_info(name, kubelet_version)
        info["bootID"] = (status.get("nodeInfo") or {}).get("bootID", info["bootID"])
        status["nodeInfo"] = info
        status["conditions"] = objects.node_conditions(ready, status.get("conditions"), reason=reason,
                                                       message=message)
        if addresses is not None:
            status["addresses"] = addresses
        return obj

    for _ in range(_REGISTER_ATTEMPTS):
        try:
            return store.guaranteed_update(resources.NODES, None, name, heartbeat)
        except errors.ApiError as e:
            if e.code != 404 or isinstance(node, str):
                raise
        register_node(store, node, version=kubelet_version)
    raise errors.conflict(resources.NODES, name)


def upsert_mirror_pod(
    kv: EtcdKV | Store, *, node_name: str, manifest: Obj, config_hash: str | None = None, ready: bool = True,
    prefix: str = "/registry",
) -> Obj:
    """Mirror a static pod manifest as the kubelet does: ``<name>-<node>`` in the manifest's namespace.

    A changed manifest (another ``config_hash``) replaces the mirror pod with a new one (new uid),
    which is what kubeadm waits for; the same hash only refreshes readiness.
    """
    store = _store(kv, prefix)
    config_hash = config_hash or hashlib.md5(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    namespace = manifest.get("metadata", {}).get("namespace") or "kube-system"
    name = f"{manifest['metadata']['name']}-{node_name}"
    node = store.get(resources.NODES, None, node_name)  # NotFound: the kubelet must register its node first
    for _ in range(_REGISTER_ATTEMPTS):  # the garbage collector may delete the pod under our feet
        existing = store.try_get(resources.PODS, namespace, name)
        try:
            if existing is not None:
                if (existing["metadata"].get("annotations") or {}).get(podutil.MIRROR_ANNOTATION) == config_hash:
                    return _refresh_ready(store, existing, ready)
                store.delete(resources.PODS, namespace, name, uid=existing["metadata"]["uid"])
            pod = _mirror_pod(manifest, node, name=name, namespace=namespace, config_hash=config_hash)
            pod["status"] = objects.running_status(pod, node, ready=ready, host_network=True)
            return store.create(resources.PODS, pod)
        except errors.ApiError as e:
            if e.code not in (404, 409):
                raise
    raise errors.conflict(resources.PODS, name)


def _mirror_pod(manifest: Obj, node: Obj, *, name: str, namespace: str, config_hash: str) -> Obj:
    pod = copy.deepcopy(manifest)
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if v is not None and k != "creationTimestamp"}
    meta |= {"name": name, "namespace": namespace, "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": node["metadata"]["name"], "uid": node["metadata"]["uid"],
         "controller": True}]}
    meta["annotations"] = {**(meta.get("annotations") or {}), "kubernetes.io/config.hash": config_hash,
                           podutil.MIRROR_ANNOTATION: config_hash, "kubernetes.io/config.seen": now(),
                           "kubernetes.io/config.source": "file"}
    pod["metadata"] = meta
    spec = default_pod_spec(pod.setdefault("spec", {}))
    spec["nodeName"] = node["metadata"]["name"]
    spec.setdefault("tolerations", [{"operator": "Exists", "effect": "NoExecute"}])
    return pod


def _refresh_ready(store: Store, pod: Obj, ready: bool) -> Obj:
    def flip(obj: Obj) -> Obj | None:
        return obj if objects.set_pod_ready(obj, ready) else None

    return store.guaranteed_update(resources.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], flip)


def remove_mirror_pod(kv: EtcdKV | Store, *, node_name: str, component: str, namespace: str = "kube-system",
                      prefix: str = "/registry") -> None:
    """The manifest is gone: the kubelet deletes its mirror pod (already gone is fine)."""
    store = _store(kv, prefix)
    try:
        store.delete(resources.PODS, namespace, f"{component}-{node_name}")
    except errors.ApiError as e:
        if e.code != 404:
            raise
