"""Small facts about pods and nodes that eviction, tables, seeding and the controllers share."""

from __future__ import annotations

from typing import Any

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
