"""Observe a live cluster's inventory through its API (the official kubernetes client).

What a kubeadm cluster tells about its versions: each Node's kubelet version, readiness and
cordon, and the control-plane mirror pods in kube-system (label ``tier=control-plane``), whose
image tags are the versions the static pod manifests run. Also each Node's taints, InternalIP,
OS image, kernel and container runtime, and kubeadm's ClusterConfiguration (the ``kubeadm-config``
ConfigMap; a cluster without one gets ``kubeadm_config: {"error": ...}``, never a failed inventory).
The kubernetes client is imported here only, so commands that never talk to a cluster start fast.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from upgrader.cluster.health import HealthReads
from upgrader.cluster.refusals import api_refused
from upgrader.cluster.writes import NodeWrites
from upgrader.domain.inventory_facts import kubeadm_config_to_dict, parse_kubeadm_config
from upgrader.domain.text import excerpt
from upgrader.errors import InvalidInventoryError

_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
_CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def observe_inventory(api: HealthReads, cluster: str) -> dict[str, Any]:
    """Return an inventory document (the same shape `--state` takes); parse it with parse_inventory.

    Read as raw API JSON (camelCase, as ``kubectl get -o json`` shows it): the generated client's
    models cost ~0.7 s to import on every command and add nothing the document needs."""
    nodes = api.list_nodes()
    pods = api.list_control_plane_pods()
    kubeadm_config = _kubeadm_config(api, cluster)
    images = _component_images(pods)
    return {
        "cluster": cluster,
        "observed_at": datetime.now(UTC).isoformat(),
        "nodes": [_node(n, images.get(_name(n), {})) for n in sorted(nodes, key=_name)],
        "kubeadm_config": kubeadm_config,
    }


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _kubeadm_config(api: HealthReads, cluster: str) -> dict[str, Any]:
    """kube-system/kubeadm-config's ClusterConfiguration, in the inventory's terms, or why not."""
    path = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
    status, cm = api.get_object_answer(path)
    if status == 404:
        return {"error": "no ConfigMap kube-system/kubeadm-config (not a kubeadm cluster?)"}
    if status in (401, 403):
        return {"error": f"ConfigMap kube-system/kubeadm-config: the API answered {status}"}
    if status != 200 or cm is None:
        raise api_refused(f"cluster {cluster}", status, None, what=f"GET {path}")
    return cluster_configuration((cm.get("data") or {}).get("ClusterConfiguration"))


def cluster_configuration(text: object) -> dict[str, Any]:
    """The fields planning needs from a ClusterConfiguration YAML document, or ``{"error": ...}``."""
    import yaml

    where = "ConfigMap kube-system/kubeadm-config"
    if not isinstance(text, str) or not text.strip():
        return {"error": f"{where} has no ClusterConfiguration"}
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return {"error": f"{where}: ClusterConfiguration is not YAML ({excerpt(str(e).splitlines()[0])})"}
    if not isinstance(doc, dict):
        return {"error": f"{where}: ClusterConfiguration is not a mapping"}
    etcd = doc.get("etcd")
    external = etcd.get("external") if isinstance(etcd, dict) else None
    raw = {
        "kubernetes_version": doc.get("kubernetesVersion"),
        "etcd": {"mode": "external", "endpoints": external.get("endpoints") or []} if isinstance(external, dict)
        else {"mode": "local"},
        "image_repository": doc.get("imageRepository") or None,
        "control_plane_endpoint": doc.get("controlPlaneEndpoint") or None,
    }
    try:
        return kubeadm_config_to_dict(parse_kubeadm_config(raw))
    except InvalidInventoryError as e:
        return {"error": f"{where}: ClusterConfiguration {e.message}"}


def _component_images(pods: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for pod in pods:
        component = ((pod.get("metadata") or {}).get("labels") or {}).get("component")
        spec = pod.get("spec") or {}
        containers = spec.get("containers") or []
        if component not in _COMPONENTS or not spec.get("nodeName") or not containers:
            continue
        image = str(containers[0].get("image") or "").split("@", 1)[0]  # drop a pinned @sha256:... digest
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        result.setdefault(str(spec["nodeName"]), {})[component] = tag
    return result


def _node(node: dict[str, Any], components: dict[str, str]) -> dict[str, Any]:
    metadata, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    labels = metadata.get("labels") or {}
    control_plane = any(label in labels for label in _CONTROL_PLANE_LABELS)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    info = status.get("nodeInfo") or {}
    doc: dict[str, Any] = {
        "name": metadata.get("name"),
        "control_plane": control_plane,
        "kubelet": info.get("kubeletVersion"),
        "ready": ready,
        "unschedulable": bool(spec.get("unschedulable")),
    }
    if control_plane:
        doc["components"] = {name: components.get(name, "") for name in _COMPONENTS}
    doc["taints"] = [{"key": t.get("key"), "value": t.get("value") or "", "effect": t.get("effect")}
                     for t in spec.get("taints") or []]
    internal = [a.get("address") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
    if internal:
        doc["internal_ip"] = internal[0]
    for key, field in (("os_image", "osImage"), ("container_runtime", "containerRuntimeVersion"),
                       ("kernel", "kernelVersion")):
        if info.get(field):
            doc[key] = info[field]
    return doc


class KubeClusterApi(NodeWrites):
    """The ClusterApi port on the official kubernetes client, for one registered cluster."""

    def __init__(self, *, cluster: str, kubeconfig: str, context: str | None, timeout: float = 15.0) -> None:
        self._cluster, self._kubeconfig, self._context, self._timeout = cluster, kubeconfig, context, timeout

    def observe_inventory(self) -> dict[str, Any]:
        return observe_inventory(self, self._cluster)

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        """The ConfigMap's data; None when the API says it does not exist (404)."""
        found = self.get_object(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        if found is None:
            return None
        return {str(k): str(v) for k, v in (found.get("data") or {}).items()}
