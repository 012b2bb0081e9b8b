"""Per-kind rules for writes through the API (the real registry "strategies", much reduced).

Create: validate the name, apply the defaults the real API fills in, and reset status where the
real server does (a created pod is Pending whatever the client sent). Update: the main resource
keeps the old status and the ``status`` subresource keeps everything but status, which is why
``kubectl cordon`` cannot clobber a node's conditions. Writes by the controllers and the simulated
kubelet go to :class:`Store` directly and skip these rules, as a real kubelet's status writes do.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

from upgrader.sandbox.apiserver import errors, resources
from upgrader.sandbox.apiserver.resources import ResourceType
from upgrader.sandbox.apiserver.selectors import selector_matches

Obj = dict[str, Any]

_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  f"validation is '{_SUBDOMAIN}')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              f"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              f"validation is '{_LABEL}')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                f"regex used for validation is '{_DNS1035}')")
# Go zero values that the real server always serialises (fields without omitempty).
_EMPTY_STATUS: dict[str, Obj] = {
    "Pod": {"phase": "Pending", "qosClass": "BestEffort"},
    "Deployment": {},
    "ReplicaSet": {"replicas": 0},
    "DaemonSet": {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                  "numberReady": 0},
    "PodDisruptionBudget": {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0},
    "Service": {"loadBalancer": {}},
}


def name_problem(rt: ResourceType, name: str) -> str | None:
    if rt is resources.SERVICES:
        pattern, msg, limit = _DNS1035, _DNS1035_MSG, 63
    elif rt.name_is_label:
        pattern, msg, limit = _LABEL, _LABEL_MSG, 63
    else:
        pattern, msg, limit = _SUBDOMAIN, _SUBDOMAIN_MSG, 253
    if len(name) > limit:
        return f"Invalid value: {json.dumps(name)}: must be no more than {limit} characters"
    return None if re.fullmatch(pattern, name) else f"Invalid value: {json.dumps(name)}: {msg}"


def prepare_create(rt: ResourceType, obj: Obj) -> Obj:
    obj = copy.deepcopy(obj)
    m = obj.setdefault("metadata", {})
    if not m.get("name") and not m.get("generateName"):
        raise errors.invalid(rt, "", [("metadata.name", "Required value: name or generateName is required")])
    if m.get("name") and (problem := name_problem(rt, m["name"])):
        raise errors.invalid(rt, m["name"], [("metadata.name", problem)])
    if rt.kind in _EMPTY_STATUS:
        obj["status"] = copy.deepcopy(_EMPTY_STATUS[rt.kind])
    spec: dict[str, Any] = obj.setdefault("spec", {}) if rt.kind not in ("ConfigMap", "Event") else {}
    if rt is resources.NAMESPACES:
        m.setdefault("labels", {})["kubernetes.io/metadata.name"] = m["name"]
        spec.setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
    elif rt is resources.PODS:
        default_pod_spec(spec)
    elif rt in (resources.DEPLOYMENTS, resources.REPLICASETS, resources.DAEMONSETS):
        _default_workload(rt, spec)
    elif rt is resources.SERVICES:
        _default_service(spec)
    validate(rt, obj)
    return obj


def _default_service(spec: Obj) -> None:
    """ClusterIP allocation (random in the kubeadm default 10.96.0.0/12) and the defaulted fields."""
    if spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("clusterIP"):
        spec["clusterIP"] = f"10.{random.randint(96, 111)}.{random.randint(0, 255)}.{random.randint(2, 254)}"
    spec.setdefault("clusterIPs", [spec["clusterIP"]] if spec.get("clusterIP") else [])
    for key, value in (("type", "ClusterIP"), ("sessionAffinity", "None"), ("ipFamilies", ["IPv4"]),
                       ("ipFamilyPolicy", "SingleStack"), ("internalTrafficPolicy", "Cluster")):
        spec.setdefault(key, value)
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _default_workload(rt: ResourceType, spec: Obj) -> None:
    default_pod_spec(spec.setdefault("template", {}).setdefault("spec", {}))
    if rt is resources.DAEMONSETS:
        spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    else:
        spec.setdefault("replicas", 1)
    if rt is resources.DEPLOYMENTS:
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        spec.setdefault("progressDeadlineSeconds", 600)
    if rt is not resources.REPLICASETS:
        spec.setdefault("revisionHistoryLimit", 10)


def default_pod_spec(spec: Obj) -> Obj:
    """The defaults the real API fills into every pod spec (SetDefaults_PodSpec and friends)."""
    for key, value in (("restartPolicy", "Always"), ("terminationGracePeriodSeconds", 30),
                       ("dnsPolicy", "ClusterFirst"), ("securityContext", {}),
                       ("schedulerName", "default-scheduler"), ("enableServiceLinks", True),
                       ("preemptionPolicy", "PreemptLowerPriority"), ("priority", 0)):
        spec.setdefault(key, value)
    for c in spec.get("containers") or []:
        image = c.get("image", "")
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        c.setdefault("resources", {})
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
    return spec


def validate(rt: ResourceType, obj: Obj) -> None:
    causes: list[tuple[str, str]] = []
    spec = obj.get("spec") or {}
    if rt is resources.PODS:
        causes += _container_causes("spec", spec)
    elif rt in (resources.DEPLOYMENTS, resources.REPLICASETS, resources.DAEMONSETS):
        causes += _workload_causes(spec)
    elif rt is resources.PDBS and "minAvailable" in spec and "maxUnavailable" in spec:
        causes.append(("spec", "Invalid value: ...: minAvailable and maxUnavailable cannot be both set"))
    if causes:
        raise errors.invalid(rt, obj["metadata"].get("name") or obj["metadata"].get("generateName", ""), causes)


def _container_causes(path: str, spec: Obj) -> list[tuple[str, str]]:
    containers = spec.get("containers") or []
    if not containers:
        return [(f"{path}.containers", "Required value")]
    causes = []
    for i, c in enumerate(containers):
        for field in ("name", "image"):
            if not c.get(field):
                causes.append((f"{path}.containers[{i}].{field}", "Required value"))
    return causes


def _workload_causes(spec: Obj) -> list[tuple[str, str]]:
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return [("spec.selector", "Required value")]
    labels = spec.get("template", {}).get("metadata", {}).get("labels") or {}
    causes = _container_causes("spec.template.spec", spec.get("template", {}).get("spec") or {})
    if not selector_matches(selector, labels):
        shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in labels.items()) + "}"
        causes.append(("spec.template.metadata.labels",
                       f"Invalid value: {shown}: `selector` does not match template `labels`"))
    return causes


def prepare_update(rt: ResourceType, new: Obj, old: Obj, *, subresource: str | None) -> Obj:
    """Main resource: keep the old status. ``status`` subresource: take only the new status."""
    if subresource == "status":
        result = copy.deepcopy(old)
        result["status"] = copy.deepcopy(new.get("status", {}))
        result["metadata"]["resourceVersion"] = new.get("metadata", {}).get("resourceVersion", "")
        return result
    new = copy.deepcopy(new)
    if rt.has_status or rt is resources.NAMESPACES:
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        else:
            new.pop("status", None)
    if rt is resources.PODS:
        default_pod_spec(new.setdefault("spec", {}))
    elif rt in (resources.DEPLOYMENTS, resources.REPLICASETS, resources.DAEMONSETS):
        _default_workload(rt, new.setdefault("spec", {}))
    validate(rt, new)
    return new
