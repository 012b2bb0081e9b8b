"""kubeadm upgrade's preflight checks: cluster health (phases/upgrade/health.go) and the CoreDNS
migration checks (phases/upgrade/preflight.go), each skippable with ``--ignore-preflight-errors``.

The CoreDNS checks ask kubeadm's corefile-migration library whether it can migrate the Corefile of
the CoreDNS the cluster runs now. The library knows the CoreDNS releases up to the one its kubeadm
deploys, so a kubeadm of an older minor, as on a downgrade, meets a newer CoreDNS it does not know and
fails both checks with ``start version 'X' not supported`` (seen in the field when going back from a
v1.33 cluster, CoreDNS 1.12.0, to kubeadm v1.32). A downgrade whose two minors share a CoreDNS release
(v1.32 to v1.31 both run 1.11.3) passes them.
"""

from __future__ import annotations

from upgrader.domain.versions import Version
from upgrader.sandbox import releases
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node import manifests
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.kubeadm.cluster import CP_LABEL, Fatal, is_ready, nodes

COREDNS = "/apis/apps/v1/namespaces/kube-system/deployments/coredns"
IGNORE_HINT = "[preflight] If you know what you are doing, you can make a check non-fatal with " \
              "`--ignore-preflight-errors=...`"


def ignored(args: list[str]) -> set[str]:
    """The checks ``--ignore-preflight-errors`` names (a string slice: repeatable, comma-separated),
    lower-cased as kubeadm compares them."""
    flag = "--ignore-preflight-errors"
    values = [args[i + 1] for i, a in enumerate(args[:-1]) if a == flag]
    values += [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    return {v.strip().lower() for value in values for v in value.split(",") if v.strip()}


def _run(node: Node, errors: list[tuple[str, str]], skip: set[str], *, warn_on_stderr: bool) -> str | None:
    """preflight.RunChecks: ignored errors become warnings; the rest, kubeadm's fatal text (or None)."""
    fatal = [(k, m) for k, m in errors if k.lower() not in skip and "all" not in skip]
    for check, message in errors:
        if (check, message) not in fatal:
            (node.warn if warn_on_stderr else node.say)(f"\t[WARNING {check}]: {message}")
    if not fatal:
        return None
    lines = "\n".join(f"\t[ERROR {k}]: {m}" for k, m in fatal)
    return f"[preflight] Some fatal errors occurred:\n{lines}\n{IGNORE_HINT}"


def health(node: Node, api: KubeClient, skip: set[str]) -> None:
    """CheckClusterHealth: the API answers, every control-plane node is Ready, the manifests are there."""
    node.say("[upgrade] Running cluster health checks")
    errors: list[tuple[str, str]] = []
    if not api.ready():
        errors.append(("APIServerHealth", 'the API Server is unhealthy; /healthz didn\'t return "ok"'))
    else:
        not_ready = [n["metadata"]["name"] for n in nodes(api)
                     if CP_LABEL in n["metadata"].get("labels", {}) and not is_ready(n)]
        if not_ready:
            errors.append(("ControlPlaneNodesReady",
                           f"there are NotReady control-planes in the cluster: [{' '.join(not_ready)}]"))
    for component in manifests.COMPONENTS:
        path = f"/etc/kubernetes/manifests/{component}.yaml"
        if not node.layout.host_path(path).exists():
            errors.append(("StaticPodManifest", f"the manifest for component {component} doesn't exist: {path}"))
    fatal = _run(node, errors, skip, warn_on_stderr=False)
    if fatal:
        raise Fatal(f"[upgrade/health] FATAL: {fatal}", phase="preflight", modern=fatal)


def _coredns_version(api: KubeClient) -> str | None:
    """The tag of the CoreDNS the cluster runs, without its ``v``; None when there is no CoreDNS."""
    try:
        obj = api.get(COREDNS)
        image = str(obj["spec"]["template"]["spec"]["containers"][0]["image"])
    except (ApiError, KeyError, IndexError, TypeError):
        return None
    return image.rsplit(":", 1)[1].lstrip("v") if ":" in image.rsplit("/", 1)[-1] else None


def _semver(tag: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in tag.lstrip("v").split("."))
    except ValueError:
        return (0,)


def coredns(node: Node, api: KubeClient, kubeadm: Version, skip: set[str]) -> None:
    """RunCoreDNSMigrationCheck: CoreDNSUnsupportedPlugins and CoreDNSMigration (warnings on stderr)."""
    current = _coredns_version(api)
    if current is None or _semver(current) <= _semver(releases.coredns_tag(kubeadm)):
        return
    why = f"start version '{current}' not supported"
    checks = [("CoreDNSUnsupportedPlugins", why), ("CoreDNSMigration", f"CoreDNS will not be upgraded: {why}")]
    fatal = _run(node, checks, skip, warn_on_stderr=True)
    if fatal:
        raise Fatal(fatal, phase="preflight")
