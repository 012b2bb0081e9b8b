"""The resource types the sandbox API serves, described once for routing, storage and discovery.

The verbs, short names, categories and subresources follow what a v1.30 kube-apiserver answers in
discovery, because kubectl decides from discovery what it may do (``kubectl drain`` only evicts when
``pods/eviction`` is listed with group ``policy`` and kind ``Eviction``).
"""

from __future__ import annotations

from dataclasses import dataclass

_RW = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
_STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _RW
    subresources: tuple[Subresource, ...] = ()
    # metadata.generation counts spec changes (apps and policy objects; not nodes or pods).
    has_generation: bool = False
    # Namespaces and services must be DNS labels; everything else here is a DNS subdomain.
    name_is_label: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """How error messages name the resource: ``pods``, ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)

    @property
    def has_status(self) -> bool:
        return self.subresource("status") is not None


def _status(kind: str) -> Subresource:
    return Subresource("status", kind, _STATUS_VERBS)


NAMESPACES = ResourceType(
    "", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    subresources=(Subresource("finalize", "Namespace", ("update",)), _status("Namespace")), name_is_label=True)
NODES = ResourceType(
    "", "v1", "nodes", "node", "Node", False, ("no",),
    subresources=(Subresource("proxy", "NodeProxyOptions", ("create", "delete", "get", "patch", "update")),
                  _status("Node")))
PODS = ResourceType(
    "", "v1", "pods", "pod", "Pod", True, ("po",), ("all",),
    subresources=(
        Subresource("attach", "PodAttachOptions", ("create", "get")),
        Subresource("binding", "Binding", ("create",)),
        Subresource("ephemeralcontainers", "Pod", _STATUS_VERBS),
        Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
        Subresource("exec", "PodExecOptions", ("create", "get")),
        Subresource("log", "Pod", ("get",)),
        Subresource("portforward", "PodPortForwardOptions", ("create", "get")),
        Subresource("proxy", "PodProxyOptions", ("create", "delete", "get", "patch", "update")),
        _status("Pod")))
CONFIGMAPS = ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",))
SERVICES = ResourceType(
    "", "v1", "services", "service", "Service", True, ("svc",), ("all",),
    subresources=(Subresource("proxy", "ServiceProxyOptions", ("create", "delete", "get", "patch", "update")),
                  _status("Service")), name_is_label=True)
EVENTS = ResourceType("", "v1", "events", "event", "Event", True, ("ev",))
DEPLOYMENTS = ResourceType(
    "apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",), ("all",),
    subresources=(Subresource("scale", "Scale", _STATUS_VERBS, "autoscaling", "v1"), _status("Deployment")),
    has_generation=True)
REPLICASETS = ResourceType(
    "apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ("rs",), ("all",),
    subresources=(Subresource("scale", "Scale", _STATUS_VERBS, "autoscaling", "v1"), _status("ReplicaSet")),
    has_generation=True)
DAEMONSETS = ResourceType(
    "apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ("ds",), ("all",),
    subresources=(_status("DaemonSet"),), has_generation=True)
PDBS = ResourceType(
    "policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", True, ("pdb",),
    subresources=(_status("PodDisruptionBudget"),), has_generation=True)

ALL: tuple[ResourceType, ...] = (
    NAMESPACES, NODES, PODS, CONFIGMAPS, SERVICES, EVENTS, DEPLOYMENTS, REPLICASETS, DAEMONSETS, PDBS)

# group -> versions served, preferred first
GROUPS: dict[str, tuple[str, ...]] = {"": ("v1",), "apps": ("v1",), "policy": ("v1",)}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return next((r for r in ALL if (r.group, r.version, r.plural) == (group, version, plural)), None)


def by_kind(kind: str) -> ResourceType:
    return next(r for r in ALL if r.kind == kind)


def in_group_version(group: str, version: str) -> list[ResourceType]:
    return [r for r in ALL if (r.group, r.version) == (group, version)]
