"""What ``kubeadm init``/``join`` leave in a new cluster, written straight to etcd.

The supervisor calls :func:`seed_cluster` once on a fresh etcd: the namespaces, kubeadm's
``kubeadm-config`` ConfigMap, the Nodes (see :mod:`.node_status`), kubeadm's own addons (kube-proxy,
CoreDNS) and a small demo workload. All writes go through :class:`Store`, so resourceVersions, uids
and compare-and-swap behave as for API writes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.sandbox import releases
from upgrader.sandbox.apiserver import errors, objects, resources
from upgrader.sandbox.apiserver.node_status import NodeRole, NodeSpec, register_node
from upgrader.sandbox.apiserver.storage import Obj, Store, store_of
from upgrader.sandbox.apiserver.strategies import prepare_create
from upgrader.sandbox.etcd.kv import EtcdKV

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DEMO_NAMESPACE = "demo"


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


def _workload(kind: str, name: str, namespace: str, labels: dict[str, str], container: Obj, **spec: Any) -> Obj:
    template = {"metadata": {"labels": labels}, "spec": {"containers": [container], **spec.pop("pod", {})}}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": namespace,
                                                                "labels": dict(labels)},
            "spec": {**spec, "selector": {"matchLabels": labels}, "template": template}}


def sample_workloads(version: str, *, workers: int) -> list[tuple[resources.ResourceType, Obj]]:
    """``web`` + PDB in ``demo``, ``node-agent``, and kubeadm's own kube-proxy and CoreDNS addons."""
    v = Version.parse(version)
    cp_toleration = {"key": objects.CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
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
    store = store_of(kv, prefix)
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


