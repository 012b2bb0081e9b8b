"""The sandbox apiserver's deprecated-API gauge: what it counts, and that upgrader reads what it prints."""

from __future__ import annotations

from upgrader.domain.node_output import DeprecatedApiRequest, parse_deprecated_requests
from upgrader.sandbox.apiserver.metrics import DeprecatedRequests


def test_only_deprecated_apis_the_version_still_serves_are_counted() -> None:
    at_130 = DeprecatedRequests("v1.30.6")
    at_130.note("flowcontrol.apiserver.k8s.io", "v1beta3", ["flowschemas"])  # deprecated in 1.29, gone in 1.32
    at_130.note("flowcontrol.apiserver.k8s.io", "v1beta3", ["flowschemas", "global-default", "status"])
    at_130.note("policy", "v1beta1", ["namespaces", "demo", "poddisruptionbudgets"])  # gone in 1.25: not served
    at_130.note("policy", "v1", ["poddisruptionbudgets"])  # not deprecated
    assert parse_deprecated_requests(at_130.text()) == [
        DeprecatedApiRequest("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas", "", "1.32"),
        DeprecatedApiRequest("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas", "status", "1.32"),
    ]
    at_124 = DeprecatedRequests("v1.24.17")
    at_124.note("policy", "v1beta1", ["namespaces", "demo", "poddisruptionbudgets"])
    at_124.note("flowcontrol.apiserver.k8s.io", "v1beta3", ["flowschemas"])  # not deprecated yet at 1.24
    assert parse_deprecated_requests(at_124.text()) == [
        DeprecatedApiRequest("policy", "v1beta1", "poddisruptionbudgets", "", "1.25")]
    assert "# TYPE apiserver_requested_deprecated_apis gauge" in DeprecatedRequests("v1.30.6").text()
