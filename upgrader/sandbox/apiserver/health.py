"""``/version`` and the ``/livez``, ``/readyz``, ``/healthz`` checks, in the real server's wording.

Health gates parse these (``[+]etcd ok`` ... ``readyz check passed``), and a failing check answers
500 with the whole list, as k8s.io/apiserver/pkg/server/healthz does. ``--unready`` (the
"apiserver-unready" fault) fails one post-start hook, the way a real apiserver that never finishes
starting looks; etcd being unreachable fails ``etcd`` as it would in production.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any

# Go release each Kubernetes minor was built with (close to the real release notes).
_GO_VERSIONS = {27: "go1.20.10", 28: "go1.21.13", 29: "go1.22.8", 30: "go1.22.8", 31: "go1.22.8",
                32: "go1.23.6", 33: "go1.24.2", 34: "go1.24.6", 35: "go1.25.3", 36: "go1.25.5"}
_POST_START_HOOKS = (
    "start-apiserver-admission-initializer", "generic-apiserver-start-informers",
    "priority-and-fairness-config-consumer", "storage-object-count-tracker-hook",
    "start-system-namespaces-controller", "bootstrap-controller", "rbac/bootstrap-roles",
    "scheduling/bootstrap-system-priority-classes", "start-cluster-authentication-info-controller",
    "aggregator-reload-proxy-client-cert", "apiservice-registration-controller")
UNREADY_HOOK = "poststarthook/rbac/bootstrap-roles"


def version_info(git_version: str, *, emulated_minor: int | None = None) -> dict[str, str]:
    """VersionInfo; 1.33+ also reports the emulated and minimum compatibility versions (KEP-4330)."""
    m = re.match(r"^v(\d+)\.(\d+)\.(\d+)", git_version)
    if not m:
        raise ValueError(f"not a Kubernetes version: {git_version!r}")
    major, minor = m.group(1), int(m.group(2))
    info = {"major": major, "minor": str(minor)}
    if minor >= 33:
        emulated = emulated_minor if emulated_minor is not None else minor
        info |= {"emulationMajor": major, "emulationMinor": str(emulated),
                 "minCompatibilityMajor": major, "minCompatibilityMinor": str(emulated - 1)}
    info |= {
        "gitVersion": git_version,
        # a stable fake commit per version, so two "builds" of one version agree
        "gitCommit": hashlib.sha1(git_version.encode()).hexdigest(),
        "gitTreeState": "clean",
        "buildDate": f"2024-{(minor % 12) + 1:02d}-15T10:{minor % 60:02d}:00Z",
        "goVersion": _GO_VERSIONS.get(minor, "go1.22.8"),
        "compiler": "gc",
        "platform": "linux/amd64",
    }
    return info


def checks(endpoint: str) -> list[str]:
    names = ["ping", "log", "etcd"]
    if endpoint == "readyz":
        names += ["etcd-readiness", "informer-sync"]
    names += [f"poststarthook/{h}" for h in _POST_START_HOOKS]
    if endpoint == "readyz":
        names.append("shutdown")
    return names


def run_checks(
    endpoint: str, probe: Callable[[str], str | None], *, query: dict[str, list[str]], only: str | None = None
) -> tuple[int, str]:
    """Status code and body; ``probe(name)`` returns None when the check passes, else why not."""
    names = checks(endpoint)
    if only is not None:
        if only not in names:
            return 404, "404 page not found\n"
        reason = probe(only)
        return (200, "ok") if reason is None else (500, f"internal server error: {reason}\n")
    excluded = set(query.get("exclude", []))
    lines, failed = [], False
    for name in names:
        if name in excluded:
            lines.append(f"[+]{name} excluded: ok")
            continue
        reason = probe(name)
        if reason is None:
            lines.append(f"[+]{name} ok")
        else:
            failed = True
            lines.append(f"[-]{name} failed: {reason}")
    if failed:
        return 500, "\n".join(lines) + f"\n{endpoint} check failed\n"
    if "verbose" in query:
        return 200, "\n".join(lines) + f"\n{endpoint} check passed\n"
    return 200, "ok"


def probe_for(*, etcd_ok: Callable[[], bool], unready: bool, endpoint: str) -> Callable[[str], Any]:
    def probe(name: str) -> str | None:
        if name in ("etcd", "etcd-readiness") and not etcd_ok():
            return "reason withheld"
        if unready and endpoint == "readyz" and name == UNREADY_HOOK:
            return "not finished"
        return None
    return probe
