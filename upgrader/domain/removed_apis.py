"""Which API group/versions each Kubernetes minor stopped serving (kubernetes.io "Deprecated API Migration Guide").

Preflight compares what clients still request (the apiserver's ``apiserver_requested_deprecated_apis``
gauge, whose ``removed_release`` label says when it goes) with the removals at or before the target:
a client still calling one of them breaks the moment the control plane moves past its release.
The metric's own label wins; this table names the removals when a label is missing or malformed.
"""

from __future__ import annotations

from upgrader.domain.versions import Minor

# removed in minor -> (group, version, resource) no longer served from that minor on ("" is the core group)
REMOVALS: dict[Minor, tuple[tuple[str, str, str], ...]] = {
    Minor(1, 22): (
        ("admissionregistration.k8s.io", "v1beta1", "mutatingwebhookconfigurations"),
        ("admissionregistration.k8s.io", "v1beta1", "validatingwebhookconfigurations"),
        ("apiextensions.k8s.io", "v1beta1", "customresourcedefinitions"),
        ("apiregistration.k8s.io", "v1beta1", "apiservices"),
        ("authentication.k8s.io", "v1beta1", "tokenreviews"),
        ("authorization.k8s.io", "v1beta1", "subjectaccessreviews"),
        ("certificates.k8s.io", "v1beta1", "certificatesigningrequests"),
        ("coordination.k8s.io", "v1beta1", "leases"),
        ("extensions", "v1beta1", "ingresses"),
        ("networking.k8s.io", "v1beta1", "ingresses"),
        ("networking.k8s.io", "v1beta1", "ingressclasses"),
        ("rbac.authorization.k8s.io", "v1beta1", "clusterroles"),
        ("rbac.authorization.k8s.io", "v1beta1", "roles"),
        ("scheduling.k8s.io", "v1beta1", "priorityclasses"),
        ("storage.k8s.io", "v1beta1", "csidrivers"),
        ("storage.k8s.io", "v1beta1", "csinodes"),
        ("storage.k8s.io", "v1beta1", "storageclasses"),
        ("storage.k8s.io", "v1beta1", "volumeattachments"),
    ),
    Minor(1, 25): (
        ("batch", "v1beta1", "cronjobs"),
        ("discovery.k8s.io", "v1beta1", "endpointslices"),
        ("events.k8s.io", "v1beta1", "events"),
        ("autoscaling", "v2beta1", "horizontalpodautoscalers"),
        ("policy", "v1beta1", "poddisruptionbudgets"),
        ("policy", "v1beta1", "podsecuritypolicies"),
        ("node.k8s.io", "v1beta1", "runtimeclasses"),
    ),
    Minor(1, 26): (
        ("flowcontrol.apiserver.k8s.io", "v1beta1", "flowschemas"),
        ("flowcontrol.apiserver.k8s.io", "v1beta1", "prioritylevelconfigurations"),
        ("autoscaling", "v2beta2", "horizontalpodautoscalers"),
    ),
    Minor(1, 27): (
        ("storage.k8s.io", "v1beta1", "csistoragecapacities"),
    ),
    Minor(1, 29): (
        ("flowcontrol.apiserver.k8s.io", "v1beta2", "flowschemas"),
        ("flowcontrol.apiserver.k8s.io", "v1beta2", "prioritylevelconfigurations"),
    ),
    Minor(1, 32): (
        ("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas"),
        ("flowcontrol.apiserver.k8s.io", "v1beta3", "prioritylevelconfigurations"),
    ),
}


def removed_in(group: str, version: str, resource: str) -> Minor | None:
    """The minor that stopped serving this group/version of the resource, per the table (None: not listed)."""
    for minor, apis in REMOVALS.items():
        if (group, version, resource) in apis:
            return minor
    return None
