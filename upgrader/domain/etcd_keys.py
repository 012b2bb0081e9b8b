"""What an etcd key of a Kubernetes cluster names: (resource, namespace, name), without reading its value.

The kube-apiserver stores every object under ``--etcd-prefix`` (``/registry``) at
``PREFIX/<resource prefix>/[NAMESPACE/]NAME``. The resource prefix is the resource's plural for most
built-in kinds, but some keep a historical name (``minions`` are nodes, ``controllers`` are
replication controllers, ``services/specs`` and ``services/endpoints`` share one prefix), built-in
kinds of API groups other than core carry no group in the key (``/registry/deployments/NS/NAME`` is
a ``deployments.apps``), and aggregated or custom resources carry it first
(``/registry/apiextensions.k8s.io/customresourcedefinitions/NAME``, ``/registry/GROUP/PLURAL/NS/NAME``).
Layouts from kubernetes/kubernetes pkg/registry/*/storage and staging/src/k8s.io/apiextensions-apiserver.

A key of a layout this module does not know is kept, not dropped: its first segment as the resource
and the rest as the name, so a rollback's loss list never hides an object. Keys outside the prefix
are kept under the resource ``etcd``, named by the whole key.

Some keys churn all the time and a rollback's loss list would drown in them: leases (node
heartbeats, leader election), events, the apiservers' masterleases, and the apiserver's compaction
marker ``compact_rev_key``. :func:`excluded_kind` names them so a report can count them apart.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/registry"
EXCLUDED = ("leases", "events", "masterleases")  # resource prefixes that churn every few seconds
COMPACTION_KEY = "compact_rev_key"  # the apiserver's compaction marker (a key outside the prefix)
OUTSIDE = "etcd"  # the resource of a key outside the prefix

# resource prefix in the key -> (resource as users name it, namespaced)
_BUILTIN: dict[str, tuple[str, bool]] = {
    # core
    "configmaps": ("configmaps", True), "secrets": ("secrets", True), "pods": ("pods", True),
    "serviceaccounts": ("serviceaccounts", True), "persistentvolumeclaims": ("persistentvolumeclaims", True),
    "podtemplates": ("podtemplates", True), "limitranges": ("limitranges", True),
    "resourcequotas": ("resourcequotas", True), "controllers": ("replicationcontrollers", True),
    "minions": ("nodes", False), "namespaces": ("namespaces", False),
    "persistentvolumes": ("persistentvolumes", False),
    # apps, batch, autoscaling, policy
    "deployments": ("deployments.apps", True), "replicasets": ("replicasets.apps", True),
    "statefulsets": ("statefulsets.apps", True), "daemonsets": ("daemonsets.apps", True),
    "controllerrevisions": ("controllerrevisions.apps", True),
    "jobs": ("jobs.batch", True), "cronjobs": ("cronjobs.batch", True),
    "horizontalpodautoscalers": ("horizontalpodautoscalers.autoscaling", True),
    "poddisruptionbudgets": ("poddisruptionbudgets.policy", True),
    "podsecuritypolicy": ("podsecuritypolicies.policy", False),
    # networking, discovery
    "networkpolicies": ("networkpolicies.networking.k8s.io", True),
    "ingress": ("ingresses.networking.k8s.io", True),
    "ingressclasses": ("ingressclasses.networking.k8s.io", False),
    "ipaddresses": ("ipaddresses.networking.k8s.io", False),
    "servicecidrs": ("servicecidrs.networking.k8s.io", False),
    "endpointslices": ("endpointslices.discovery.k8s.io", True),
    # rbac
    "roles": ("roles.rbac.authorization.k8s.io", True),
    "rolebindings": ("rolebindings.rbac.authorization.k8s.io", True),
    "clusterroles": ("clusterroles.rbac.authorization.k8s.io", False),
    "clusterrolebindings": ("clusterrolebindings.rbac.authorization.k8s.io", False),
    # storage, scheduling, node, certificates, coordination
    "storageclasses": ("storageclasses.storage.k8s.io", False),
    "volumeattachments": ("volumeattachments.storage.k8s.io", False),
    "csidrivers": ("csidrivers.storage.k8s.io", False), "csinodes": ("csinodes.storage.k8s.io", False),
    "csistoragecapacities": ("csistoragecapacities.storage.k8s.io", True),
    "volumeattributesclasses": ("volumeattributesclasses.storage.k8s.io", False),
    "priorityclasses": ("priorityclasses.scheduling.k8s.io", False),
    "runtimeclasses": ("runtimeclasses.node.k8s.io", False),
    "certificatesigningrequests": ("certificatesigningrequests.certificates.k8s.io", False),
    "clustertrustbundles": ("clustertrustbundles.certificates.k8s.io", False),
    "leasecandidates": ("leasecandidates.coordination.k8s.io", True),
    # admission, flow control, resource, storage versions
    "mutatingwebhookconfigurations": ("mutatingwebhookconfigurations.admissionregistration.k8s.io", False),
    "validatingwebhookconfigurations": ("validatingwebhookconfigurations.admissionregistration.k8s.io", False),
    "validatingadmissionpolicies": ("validatingadmissionpolicies.admissionregistration.k8s.io", False),
    "validatingadmissionpolicybindings": ("validatingadmissionpolicybindings.admissionregistration.k8s.io",
                                          False),
    "mutatingadmissionpolicies": ("mutatingadmissionpolicies.admissionregistration.k8s.io", False),
    "mutatingadmissionpolicybindings": ("mutatingadmissionpolicybindings.admissionregistration.k8s.io", False),
    "flowschemas": ("flowschemas.flowcontrol.apiserver.k8s.io", False),
    "prioritylevelconfigurations": ("prioritylevelconfigurations.flowcontrol.apiserver.k8s.io", False),
    "resourceclaims": ("resourceclaims.resource.k8s.io", True),
    "resourceclaimtemplates": ("resourceclaimtemplates.resource.k8s.io", True),
    "deviceclasses": ("deviceclasses.resource.k8s.io", False),
    "resourceslices": ("resourceslices.resource.k8s.io", False),
    "storageversions": ("storageversions.internal.apiserver.k8s.io", False),
    "storageversionmigrations": ("storageversionmigrations.storagemigration.k8s.io", False),
}
# two-segment prefixes: /registry/services/specs/NS/NAME is a Service, .../endpoints/NS/NAME its Endpoints
_NESTED: dict[tuple[str, str], tuple[str, bool]] = {
    ("services", "specs"): ("services", True),
    ("services", "endpoints"): ("endpoints", True),
}
# singletons: /registry/ranges/serviceips, /registry/ranges/servicenodeports (the allocators' bitmaps)
_SINGLETONS = {"ranges": "ranges"}


@dataclass(frozen=True, slots=True, order=True)
class ObjectRef:
    """The object an etcd key holds, as ``kubectl get RESOURCE -n NAMESPACE NAME`` names it."""

    resource: str  # group-qualified when not core: "deployments.apps"
    namespace: str | None
    name: str


def excluded_kind(key: str, *, prefix: str = PREFIX) -> str | None:
    """The churning kind a key belongs to ("leases", "events", "masterleases", "compact_rev_key"), else None."""
    if key == COMPACTION_KEY:
        return COMPACTION_KEY
    head = _segments(key, prefix)
    if head and head[0] in EXCLUDED:
        return head[0]
    return None


def parse_key(key: str, *, prefix: str = PREFIX) -> ObjectRef:
    """The object a key names; a layout not known here keeps its raw resource segment (never None)."""
    parts = _segments(key, prefix)
    if parts is None or not parts or not all(parts):
        return ObjectRef(OUTSIDE, None, key)
    first, rest = parts[0], parts[1:]
    if first in _SINGLETONS and len(rest) == 1:
        return ObjectRef(_SINGLETONS[first], None, rest[0])
    if len(rest) >= 1 and (first, rest[0]) in _NESTED:
        resource, namespaced = _NESTED[(first, rest[0])]
        if len(rest) == (3 if namespaced else 2):
            return _scoped(resource, rest[1:], namespaced=namespaced, raw=first)
        return ObjectRef(first, None, "/".join(rest))
    if first in _BUILTIN:
        resource, namespaced = _BUILTIN[first]
        return _scoped(resource, rest, namespaced=namespaced, raw=first)
    if "." in first and len(rest) in (2, 3):  # GROUP/PLURAL/[NS/]NAME: custom and aggregated resources
        return _scoped(f"{rest[0]}.{first}", rest[1:], namespaced=len(rest) == 3, raw=first)
    return _scoped(first, rest, namespaced=len(rest) == 2, raw=first)


def _segments(key: str, prefix: str) -> list[str] | None:
    """The segments after ``prefix/``; None for a key outside the prefix."""
    head = prefix.rstrip("/") + "/"
    if not key.startswith(head):
        return None
    return key[len(head):].split("/")


def _scoped(resource: str, rest: list[str], *, namespaced: bool, raw: str) -> ObjectRef:
    if namespaced and len(rest) == 2:
        return ObjectRef(resource, rest[0], rest[1])
    if not namespaced and len(rest) == 1:
        return ObjectRef(resource, None, rest[0])
    return ObjectRef(raw, None, "/".join(rest))  # not the layout this resource has: keep it as it is
