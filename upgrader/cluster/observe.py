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
from upgrader.domain.inventory_facts import kubeadm_config_to_dict, parse_kubeadm_config
from upgrader.domain.text import excerpt
from upgrader.errors import ClusterUnreachableError, InvalidInventoryError

_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
_CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def observe_inventory(*, cluster: str, kubeconfig: str, context: str | None, timeout: float = 15.0) -> dict[str, Any]:
    """Return an inventory document (the same shape `--state` takes); parse it with parse_inventory."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as e:  # the client raises ConfigException, OSError, yaml errors...
        raise ClusterUnreachableError(f"kubeconfig {kubeconfig}: {e}") from e
    try:
        core = client.CoreV1Api(api_client)
        nodes: list[Any] = core.list_node(_request_timeout=timeout).items
        pods: list[Any] = core.list_namespaced_pod("kube-system", label_selector="tier=control-plane",
                                        _request_timeout=timeout).items
        kubeadm_config = _kubeadm_config(core, timeout)
    except ApiException as e:
        raise api_refused(f"cluster {cluster}", e.status, e.reason) from e
    except (HTTPError, OSError) as e:
        host = api_client.configuration.host
        raise ClusterUnreachableError(f"cluster {cluster}: cannot reach the API at {host}") from e
    finally:
        api_client.close()
    images = _component_images(pods)
    return {
        "cluster": cluster,
        "observed_at": datetime.now(UTC).isoformat(),
        "nodes": [_node(n, images.get(n.metadata.name, {})) for n in sorted(nodes, key=lambda n: n.metadata.name)],
        "kubeadm_config": kubeadm_config,
    }


def _kubeadm_config(core: Any, timeout: float) -> dict[str, Any]:
    """kube-system/kubeadm-config's ClusterConfiguration, in the inventory's terms, or why not."""
    from kubernetes.client.exceptions import ApiException

    try:
        cm = core.read_namespaced_config_map("kubeadm-config", "kube-system", _request_timeout=timeout)
    except ApiException as e:
        if e.status == 404:
            return {"error": "no ConfigMap kube-system/kubeadm-config (not a kubeadm cluster?)"}
        if e.status in (401, 403):
            return {"error": f"ConfigMap kube-system/kubeadm-config: the API answered {e.status} {e.reason}"}
        raise
    return cluster_configuration((cm.data or {}).get("ClusterConfiguration"))


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


def _component_images(pods: list[Any]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for pod in pods:
        component = (pod.metadata.labels or {}).get("component")
        if component not in _COMPONENTS or not pod.spec.node_name or not pod.spec.containers:
            continue
        image = (pod.spec.containers[0].image or "").split("@", 1)[0]  # drop a pinned @sha256:... digest
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        result.setdefault(pod.spec.node_name, {})[component] = tag
    return result


def _node(node: Any, components: dict[str, str]) -> dict[str, Any]:
    labels = node.metadata.labels or {}
    control_plane = any(label in labels for label in _CONTROL_PLANE_LABELS)
    ready = any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))
    doc: dict[str, Any] = {
        "name": node.metadata.name,
        "control_plane": control_plane,
        "kubelet": node.status.node_info.kubelet_version,
        "ready": ready,
        "unschedulable": bool(node.spec.unschedulable),
    }
    if control_plane:
        doc["components"] = {name: components.get(name, "") for name in _COMPONENTS}
    doc["taints"] = [{"key": t.key, "value": t.value or "", "effect": t.effect} for t in node.spec.taints or []]
    internal = [a.address for a in node.status.addresses or [] if a.type == "InternalIP"]
    if internal:
        doc["internal_ip"] = internal[0]
    info = node.status.node_info
    for key, value in (("os_image", info.os_image), ("container_runtime", info.container_runtime_version),
                       ("kernel", info.kernel_version)):
        if value:
            doc[key] = value
    return doc


class KubeClusterApi(HealthReads):
    """The ClusterApi port on the official kubernetes client, for one registered cluster."""

    def __init__(self, *, cluster: str, kubeconfig: str, context: str | None, timeout: float = 15.0) -> None:
        self._cluster, self._kubeconfig, self._context, self._timeout = cluster, kubeconfig, context, timeout

    def observe_inventory(self) -> dict[str, Any]:
        return observe_inventory(cluster=self._cluster, kubeconfig=self._kubeconfig, context=self._context,
                                 timeout=self._timeout)

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return get_configmap(kubeconfig=self._kubeconfig, context=self._context, namespace=namespace, name=name,
                             timeout=self._timeout)


def get_configmap(*, kubeconfig: str, context: str | None, namespace: str, name: str,
                  timeout: float = 15.0) -> dict[str, str] | None:
    """The ConfigMap's data; None when the API says it does not exist (404)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
    except Exception as e:  # the client raises ConfigException, OSError, yaml errors...
        raise ClusterUnreachableError(f"kubeconfig {kubeconfig}: {e}") from e
    try:
        found = client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace, _request_timeout=timeout)
    except ApiException as e:
        if e.status == 404:
            return None
        raise api_refused(f"kubeconfig {kubeconfig}", e.status, e.reason,
                          what=f"GET configmap {namespace}/{name}") from e
    except (HTTPError, OSError) as e:
        raise ClusterUnreachableError(f"cannot reach the API at {api_client.configuration.host}") from e
    finally:
        api_client.close()
    return {str(k): str(v) for k, v in (found.data or {}).items()}
