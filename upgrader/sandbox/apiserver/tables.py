"""Server-side printing: ``meta.k8s.io/v1`` Tables, as ``kubectl get`` asks for them.

kubectl sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`` and prints the cells it
gets back, hiding columns with priority > 0 unless ``-o wide``. The columns and cell texts follow
pkg/printers/internalversion/printers.go, so ``kubectl get nodes`` reads as it does on a real cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from upgrader.sandbox.apiserver import objects
from upgrader.sandbox.apiserver.objects import Obj

Column = tuple[str, str, int]  # name, type, priority
_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours = s // 60, s // 3600
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def age(obj: Obj) -> str:
    stamp = obj.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    created = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return human_duration((datetime.now(UTC) - created).total_seconds())


def _none(value: Any) -> Any:
    return value if value not in (None, "", []) else "<none>"


def _node_row(node: Obj) -> list[Any]:
    status = node.get("status") or {}
    ready = objects.condition(node, "Ready")
    state = "Unknown" if ready is None or ready.get("status") == "Unknown" else (
        "Ready" if ready.get("status") == "True" else "NotReady")
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    info = status.get("nodeInfo") or {}
    external = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "ExternalIP"), None)
    return [node["metadata"]["name"], state, ",".join(r for r in roles if r) or "<none>", age(node),
            info.get("kubeletVersion", ""), _none(objects.node_internal_ip(node)), _none(external),
            _none(info.get("osImage")), _none(info.get("kernelVersion")), _none(info.get("containerRuntimeVersion"))]


def _pod_row(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in statuses:
        state = c.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state and state["terminated"].get("reason"):
            reason = state["terminated"]["reason"]
    if objects.is_deleting(pod):
        reason = "Terminating"
    restarts = sum(int(c.get("restartCount", 0)) for c in statuses)
    gates = spec.get("readinessGates") or []
    gates_text = "<none>" if not gates else f"{sum(1 for g in gates if g)}/{len(gates)}"
    return [pod["metadata"]["name"], f"{ready}/{len(spec.get('containers') or [])}", reason, str(restarts),
            age(pod), _none(status.get("podIP")), _none(spec.get("nodeName")),
            _none(status.get("nominatedNodeName")), gates_text]


def _containers(obj: Obj) -> list[str]:
    cs = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return [",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs),
            ",".join(f"{k}={v}" for k, v in (obj["spec"].get("selector", {}).get("matchLabels") or {}).items())]


def _deployment_row(d: Obj) -> list[Any]:
    st = d.get("status") or {}
    return [d["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{d['spec'].get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), age(d), *_containers(d)]


def _replicaset_row(r: Obj) -> list[Any]:
    st = r.get("status") or {}
    return [r["metadata"]["name"], r["spec"].get("replicas", 1), st.get("replicas", 0), st.get("readyReplicas", 0),
            age(r), *_containers(r)]


def _daemonset_row(d: Obj) -> list[Any]:
    st = d.get("status") or {}
    selector = ",".join(f"{k}={v}" for k, v in (d["spec"]["template"]["spec"].get("nodeSelector") or {}).items())
    return [d["metadata"]["name"], st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            selector or "<none>", age(d), *_containers(d)]


def _pdb_row(p: Obj) -> list[Any]:
    spec = p.get("spec") or {}
    return [p["metadata"]["name"], str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            (p.get("status") or {}).get("disruptionsAllowed", 0), age(p)]


def _service_row(s: Obj) -> list[Any]:
    spec = s.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    return [s["metadata"]["name"], spec.get("type", "ClusterIP"), _none(spec.get("clusterIP")), "<none>",
            ports or "<none>", age(s), selector or "<none>"]


_WIDE3: list[Column] = [("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]
PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    "nodes": ([_NAME, ("Status", "string", 0), ("Roles", "string", 0), _AGE, ("Version", "string", 0),
               ("Internal-IP", "string", 1), ("External-IP", "string", 1), ("OS-Image", "string", 1),
               ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)], _node_row),
    "pods": ([_NAME, ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0), _AGE,
              ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
              ("Readiness Gates", "string", 1)], _pod_row),
    "deployments": ([_NAME, ("Ready", "string", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0),
                     _AGE, *_WIDE3], _deployment_row),
    "replicasets": ([_NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0), _AGE,
                     *_WIDE3], _replicaset_row),
    "daemonsets": ([_NAME, ("Desired", "integer", 0), ("Current", "integer", 0), ("Ready", "integer", 0),
                    ("Up-to-date", "integer", 0), ("Available", "integer", 0), ("Node Selector", "string", 0),
                    _AGE, *_WIDE3], _daemonset_row),
    "poddisruptionbudgets": ([_NAME, ("Min Available", "string", 0), ("Max Unavailable", "string", 0),
                              ("Allowed Disruptions", "integer", 0), _AGE], _pdb_row),
    "namespaces": ([_NAME, ("Status", "string", 0), _AGE],
                   lambda n: [n["metadata"]["name"], (n.get("status") or {}).get("phase", "Active"), age(n)]),
    "configmaps": ([_NAME, ("Data", "integer", 0), _AGE],
                   lambda c: [c["metadata"]["name"], len(c.get("data") or {}) + len(c.get("binaryData") or {}),
                              age(c)]),
    "services": ([_NAME, ("Type", "string", 0), ("Cluster-IP", "string", 0), ("External-IP", "string", 0),
                  ("Port(s)", "string", 0), _AGE, ("Selector", "string", 1)], _service_row),
}
_GENERIC: tuple[list[Column], Callable[[Obj], list[Any]]] = ([_NAME, _AGE], lambda o: [o["metadata"]["name"], age(o)])


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def table(plural: str, objects: list[Obj], *, resource_version: str, include_object: str = "Metadata") -> Obj:
    """A Table of ``objects``; ``include_object`` is the request's includeObject (None/Metadata/Object)."""
    columns, row_of = PRINTERS.get(plural, _GENERIC)
    definitions = [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": "",
                    "priority": p} for n, t, p in columns]
    rows = []
    for obj in objects:
        row: Obj = {"cells": row_of(obj)}
        if (embedded := _row_object(obj, include_object or "Metadata")) is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": definitions, "rows": rows}
