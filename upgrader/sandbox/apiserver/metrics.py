"""``/metrics``: the ``apiserver_requested_deprecated_apis`` gauge, as a real kube-apiserver keeps it.

A real apiserver sets the gauge to 1 for each deprecated group/version/resource a client has requested
since it started, labelled with the release that removes it (k8s.io/apiserver/pkg/endpoints/deprecation).
The sandbox serves none of those APIs, but it notes a request to one its version would still serve
(answering 404 all the same), so a rehearsal can show a client that the next minors would break.
This table is the sandbox's own (an independent oracle for upgrader's table of removals).
"""

from __future__ import annotations

import re
import threading

# (group, version, resource) -> (deprecated in minor, removed in minor), all of Kubernetes v1
DEPRECATED: dict[tuple[str, str, str], tuple[int, int]] = {
    ("policy", "v1beta1", "podsecuritypolicies"): (21, 25),
    ("policy", "v1beta1", "poddisruptionbudgets"): (21, 25),
    ("batch", "v1beta1", "cronjobs"): (21, 25),
    ("autoscaling", "v2beta1", "horizontalpodautoscalers"): (22, 25),
    ("autoscaling", "v2beta2", "horizontalpodautoscalers"): (23, 26),
    ("flowcontrol.apiserver.k8s.io", "v1beta1", "flowschemas"): (23, 26),
    ("flowcontrol.apiserver.k8s.io", "v1beta1", "prioritylevelconfigurations"): (23, 26),
    ("storage.k8s.io", "v1beta1", "csistoragecapacities"): (24, 27),
    ("flowcontrol.apiserver.k8s.io", "v1beta2", "flowschemas"): (26, 29),
    ("flowcontrol.apiserver.k8s.io", "v1beta2", "prioritylevelconfigurations"): (26, 29),
    ("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas"): (29, 32),
    ("flowcontrol.apiserver.k8s.io", "v1beta3", "prioritylevelconfigurations"): (29, 32),
}
HELP = ("# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested, "
        "broken out by API group, version, resource, subresource, and removed_release.\n"
        "# TYPE apiserver_requested_deprecated_apis gauge\n")


class DeprecatedRequests:
    """The deprecated APIs requested from this server since it started."""

    def __init__(self, git_version: str) -> None:
        m = re.match(r"^v1\.([0-9]+)\.", git_version)
        self.minor = int(m.group(1)) if m else 0
        self._seen: set[tuple[str, str, str, str]] = set()
        self._lock = threading.Lock()

    def note(self, group: str, version: str, rest: list[str]) -> None:
        """Record a request to ``/apis/GROUP/VERSION/...`` when it names a deprecated API still served here."""
        if len(rest) >= 3 and rest[0] == "namespaces":
            rest = rest[2:]
        if not rest:
            return
        resource, sub = rest[0], (rest[2] if len(rest) >= 3 else "")
        life = DEPRECATED.get((group, version, resource))
        if life is not None and life[0] <= self.minor < life[1]:
            with self._lock:
                self._seen.add((group, version, resource, sub))

    def text(self) -> str:
        with self._lock:
            seen = sorted(self._seen)
        lines = [f'apiserver_requested_deprecated_apis{{group="{g}",removed_release="1.{DEPRECATED[(g, v, r)][1]}",'
                 f'resource="{r}",subresource="{s}",version="{v}"}} 1' for g, v, r, s in seen]
        return HELP + "".join(line + "\n" for line in lines)
