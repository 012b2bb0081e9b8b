"""Pod and Node objects: the small facts everyone reads off them, and what a kubelet reports about them.

The readers (readiness, controlling owner, taints and tolerations, ...) are shared by eviction, the
tables, seeding and the controllers. The builders (Node status, running pod status) follow what a
v1.30 kubelet writes, because the official python client's models reject objects missing required
fields (a Node needs every ``status.nodeInfo`` field, a container status needs ``image`` and
``imageID``), and because kubectl prints these fields.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import uuid
from typing import Any

from upgrader.sandbox.apiserver.storage import now

Obj = dict[str, Any]
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"


def condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def is_pod_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return c is not None and c.get("status") == "True"


def is_deleting(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def is_mirror_pod(pod: Obj) -> bool:
    return MIRROR_ANNOTATION in (pod.get("metadata", {}).get("annotations") or {})


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference with controller: true (what drain and the PDB logic follow)."""
    return next((r for r in obj.get("metadata", {}).get("ownerReferences") or [] if r.get("controller")), None)


def owner_reference(owner: Obj, *, block_owner_deletion: bool = True) -> Obj:
    m = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": m["name"], "uid": m["uid"],
            "controller": True, "blockOwnerDeletion": block_owner_deletion}


def is_node_ready(node: Obj) -> bool:
    c = condition(node, "Ready")
    return c is not None and c.get("status") == "True"


def node_taints(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or [])


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """corev1 Toleration.ToleratesTaint: empty key + Exists tolerates everything."""
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator", "Equal") == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def node_internal_ip(node: Obj) -> str:
    addrs = (node.get("status") or {}).get("addresses") or []
    return next((a["address"] for a in addrs if a.get("type") == "InternalIP"), "")


def int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        return int(value)
    scaled = int(value[:-1]) * total
    return -(-scaled // 100) if round_up else scaled // 100


# --- what a kubelet reports -------------------------------------------------------------------

_NODE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
OS_IMAGE = "Debian GNU/Linux 12 (bookworm)"
KERNEL = "6.1.0-28-amd64"
CONTAINER_RUNTIME = "containerd://1.7.24"


def _stable_hex(seed: str, n: int = 32) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def node_info(name: str, kubelet_version: str) -> Obj:
    minor = int(kubelet_version.lstrip("v").split(".")[1])
    return {"machineID": _stable_hex("machine" + name), "systemUUID": str(uuid.UUID(_stable_hex("uuid" + name))),
            "bootID": str(uuid.uuid4()), "kernelVersion": KERNEL, "osImage": OS_IMAGE,
            "containerRuntimeVersion": CONTAINER_RUNTIME, "kubeletVersion": kubelet_version,
            # kubelets stopped reporting kube-proxy's version in v1.31 (DisableNodeKubeProxyVersion)
            "kubeProxyVersion": kubelet_version if minor < 31 else "",
            "operatingSystem": "linux", "architecture": "amd64"}


def node_conditions(ready: bool, old: list[Obj] | None = None, *, reason: str | None = None,
                    message: str | None = None) -> list[Obj]:
    """The four kubelet conditions; lastTransitionTime moves only when a status flips."""
    stamp = now()
    previous = {c["type"]: c for c in old or []}
    wanted = [(t, "False", r, m) for t, r, m in _NODE_CONDITIONS]
    wanted.append(("Ready", "True", "KubeletReady", "kubelet is posting ready status") if ready else
                  ("Ready", "False", reason or "KubeletNotReady",
                   message or "container runtime status check may not have completed yet"))
    out = []
    for kind, status, why, text in wanted:
        prev = previous.get(kind)
        transition = prev["lastTransitionTime"] if prev and prev.get("status") == status else stamp
        out.append({"type": kind, "status": status, "lastHeartbeatTime": stamp, "lastTransitionTime": transition,
                    "reason": why, "message": text})
    return out


def node_status(name: str, *, internal_ip: str, kubelet_version: str, ready: bool) -> Obj:
    resources = {"cpu": "2", "ephemeral-storage": "61255492Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0",
                 "memory": "8039196Ki", "pods": "110"}
    return {"capacity": resources, "allocatable": dict(resources), "conditions": node_conditions(ready),
            "addresses": node_addresses(name, internal_ip),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": node_info(name, kubelet_version), "images": []}


def node_addresses(name: str, internal_ip: str) -> list[Obj]:
    return [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name}]


def pod_ip(node: Obj) -> str:
    """A fresh address in the node's podCIDR (what the CNI plugin would hand out)."""
    cidr = (node.get("spec") or {}).get("podCIDR")
    if not cidr:
        return f"10.244.{random.randint(0, 255)}.{random.randint(2, 254)}"
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + random.randint(2, min(net.num_addresses - 2, 254)))


def running_status(pod: Obj, node: Obj, *, ready: bool = True, host_network: bool = False,
                   started: str | None = None) -> Obj:
    """A pod's status once its containers run on ``node`` (Running; Ready unless ``ready`` is False);
    ``started``: when its containers started (RFC 3339), when that was not now."""
    stamp = started or now()
    flag = "True" if ready else "False"
    host_ip = node_internal_ip(node)
    ip = host_ip if host_network or pod.get("spec", {}).get("hostNetwork") else pod_ip(node)
    conditions = [("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", flag),
                  ("ContainersReady", flag), ("PodScheduled", "True")]
    statuses = []
    for c in pod.get("spec", {}).get("containers") or []:
        image = c.get("image", "")
        repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        statuses.append({
            "name": c.get("name", ""), "state": {"running": {"startedAt": stamp}}, "lastState": {},
            "ready": ready, "restartCount": 0, "image": image,
            "imageID": f"{repo}@sha256:{_stable_hex(image, 64)}",
            "containerID": f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}", "started": True})
    return {"phase": "Running",
            "conditions": [{"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": stamp}
                           for t, s in conditions],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": ip, "podIPs": [{"ip": ip}],
            "startTime": stamp, "containerStatuses": statuses, "qosClass": qos_class(pod)}


def qos_class(pod: Obj) -> str:
    containers = pod.get("spec", {}).get("containers") or []
    requests = [c.get("resources", {}).get("requests") for c in containers]
    limits = [c.get("resources", {}).get("limits") for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    if all(limits) and all(r == lim for r, lim in zip(requests, limits, strict=True)):
        return "Guaranteed"
    return "Burstable"


def set_pod_ready(pod: Obj, ready: bool) -> bool:
    """Flip Ready/ContainersReady (and container ready flags); True if anything changed."""
    flag = "True" if ready else "False"
    changed = False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Ready", "ContainersReady") and c.get("status") != flag:
            c["status"], c["lastTransitionTime"] = flag, now()
            changed = True
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        cs["ready"] = ready
    return changed


def set_started(pod: Obj, started: str) -> bool:
    """The containers' ``state.running.startedAt`` (a static pod the kubelet restarted); True if it moved."""
    changed = False
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (cs.get("state") or {}).get("running")
        if isinstance(running, dict) and running.get("startedAt") != started:
            running["startedAt"] = started
            changed = True
    return changed


def pending_status(pod: Obj, *, unschedulable: str | None) -> Obj:
    """A pod not running yet: with the scheduler's PodScheduled=False message, or (bound to a node
    whose kubelet has not started it) without conditions."""
    status: Obj = {"phase": "Pending", "qosClass": qos_class(pod)}
    if unschedulable is not None:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                                 "lastTransitionTime": now(), "reason": "Unschedulable", "message": unschedulable}]
    return status
