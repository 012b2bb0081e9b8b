"""Simulated ``kubeadm``: version, config images, certs, and upgrade plan/apply/node.

Its version is the installed kubeadm package of the node, so upgrading kubeadm means installing the
package, as on a real node. The upgrade logic lives in :mod:`upgrader.sandbox.nodecmd.upgrade`.
"""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox import nodestate, releases
from upgrader.sandbox.nodecmd import Node

CERTS = (
    ("admin.conf", "ca"), ("apiserver", "ca"), ("apiserver-etcd-client", "etcd-ca"),
    ("apiserver-kubelet-client", "ca"), ("controller-manager.conf", "ca"), ("etcd-healthcheck-client", "etcd-ca"),
    ("etcd-peer", "etcd-ca"), ("etcd-server", "etcd-ca"), ("front-proxy-client", "front-proxy-ca"),
    ("scheduler.conf", "ca"), ("super-admin.conf", "ca"),
)
CAS = ("ca", "etcd-ca", "front-proxy-ca")
V1BETA3, V1BETA4 = "kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"
# v1beta4 defaults that v1beta3 did not have (cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go)
V1BETA4_DEFAULTS = {"caCertificateValidityPeriod": "87600h0m0s", "certificateValidityPeriod": "8760h0m0s",
                    "encryptionAlgorithm": "RSA-2048", "dns": {}, "proxy": {}}
YEAR, TEN_YEARS = 365 * 86400, 3650 * 86400


def installed_version(node: Node) -> Version:
    pkg = nodestate.packages(node.layout).get("kubeadm")
    if pkg is None:
        raise SystemExit("kubeadm: command not found")
    return releases.parse_deb(pkg.version)


def main(node: Node, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        node.say("Usage:\n  kubeadm [command]\n\nAvailable Commands:\n  certs config upgrade version")
        return 0
    if words[0] == "version":
        return version(node, args)
    if words[:3] == ["config", "images", "pull"] or words[:3] == ["config", "images", "list"]:
        return images(node, args, pull=words[2] == "pull")
    if words[:2] == ["certs", "check-expiration"]:
        return check_expiration(node)
    if words[:2] == ["certs", "renew"] and len(words) > 2:
        return renew(node, words[2])
    if words[0] == "upgrade" and len(words) > 1 and words[1] in ("plan", "apply", "node"):
        from upgrader.sandbox.nodecmd import upgrade

        return upgrade.main(node, words[1], args)
    node.warn(f'unknown command "{" ".join(words)}" for "kubeadm"\nTo see the stack trace of this error '
              "execute with --v=5 or higher")
    return 1


def option(args: list[str], *names: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE``."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def version(node: Node, args: list[str]) -> int:
    info = releases.version_info(installed_version(node))
    fmt = option(args, "-o", "--output")
    if fmt == "json":
        node.say(json.dumps({"clientVersion": info}, indent=2))
    elif fmt == "yaml":
        node.say(yaml.safe_dump({"clientVersion": info}, sort_keys=False).rstrip())
    elif fmt == "short":
        node.say(info["gitVersion"])
    else:
        fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
        node.say(f"kubeadm version: &version.Info{{{fields}}}")
    return 0


def images(node: Node, args: list[str], *, pull: bool) -> int:
    text = option(args, "--kubernetes-version") or str(installed_version(node))
    try:
        target = Version.parse(text)
    except InvalidVersionError:
        node.warn(f'could not convert "{text}" to a Kubernetes version\nTo see the stack trace of this error '
                  "execute with --v=5 or higher")
        return 1
    for image in releases.images(target):
        node.say(f"[config/images] Pulled {image}" if pull else image)
    return 0


def _expires(issued: float, lifetime: int) -> tuple[str, str]:
    remaining = issued + lifetime - time.time()
    when = time.strftime("%b %d, %Y %H:%M UTC", time.gmtime(issued + lifetime))
    days = int(remaining // 86400)
    left = f"{days // 365}y" if days >= 365 else f"{days}d"
    return when, left if remaining > 0 else "<invalid>"


def check_expiration(node: Node) -> int:
    state = nodestate.certs(node.layout)
    if not state:
        node.warn("[check-expiration] Error reading configuration from the Cluster. Falling back to default "
                  "configuration\nopen /etc/kubernetes/pki/ca.crt: no such file or directory")
        return 1
    node.say("[check-expiration] Reading configuration from the cluster...")
    node.say("[check-expiration] FYI: You can look at this config file with 'kubectl -n kube-system get cm "
             "kubeadm-config -o yaml'\n")
    node.say(f"{'CERTIFICATE':<25}{'EXPIRES':<26}{'RESIDUAL TIME':<16}{'CERTIFICATE AUTHORITY':<24}EXTERNALLY MANAGED")
    for name, ca in CERTS:
        when, left = _expires(state["issued"], YEAR)
        node.say(f"{name:<25}{when:<26}{left:<16}{ca:<24}no")
    node.say(f"\n{'CERTIFICATE AUTHORITY':<25}{'EXPIRES':<26}{'RESIDUAL TIME':<16}EXTERNALLY MANAGED")
    for ca in CAS:
        when, left = _expires(state.get("ca_issued", state["issued"]), TEN_YEARS)
        node.say(f"{ca:<25}{when:<26}{left:<16}no")
    return 0


def renew(node: Node, which: str) -> int:
    state = nodestate.certs(node.layout)
    names = [n for n, _ in CERTS] if which == "all" else [which]
    if which != "all" and which not in dict(CERTS):
        node.warn(f'unknown command "{which}" for "kubeadm certs renew"')
        return 1
    node.say("[renew] Reading configuration from the cluster...")
    node.say("[renew] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config "
             "-o yaml'\n")
    for name in names:
        if name.endswith(".conf"):
            node.say(f"certificate embedded in the kubeconfig file for the {name[:-5]} to use renewed")
        else:
            node.say(f"certificate for {name.replace('-', ' ')} renewed")
    nodestate.save_certs(node.layout, {**state, "issued": time.time()})
    node.say("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
             "kube-scheduler and etcd, so that they can use the new certificates.")
    return 0


def config_api_version(version: Version) -> str:
    """The kubeadm config API a kubeadm of that version writes (v1beta4 from v1.31 on)."""
    return V1BETA4 if (version.major, version.minor) >= (1, 31) else V1BETA3


def _args(extra: Any) -> list[dict[str, str]]:
    """v1beta3's extraArgs map as v1beta4's list of name/value pairs, sorted by name as kubeadm does."""
    if isinstance(extra, list):
        return extra
    return [{"name": str(k), "value": str(v)} for k, v in sorted((extra or {}).items())]


def migrate_cluster_configuration(conf: dict[str, Any], *, target: Version, kubeadm: Version) -> dict[str, Any]:
    """The ClusterConfiguration a kubeadm of version ``kubeadm`` uploads to the kubeadm-config ConfigMap
    after upgrading the cluster to ``target``.

    kubeadm reads the stored document with whatever API it was written in, converts it to its own
    and uploads that: from v1.31 on that is v1beta4, where ``extraArgs`` are lists of name/value
    pairs, ``apiServer.timeoutForControlPlane`` moved out of the ClusterConfiguration (to the
    Init/JoinConfiguration ``timeouts``), and new fields come with their defaults. Keys are sorted, as
    kubeadm's YAML marshalling sorts them.
    """
    out = dict(conf, kubernetesVersion=str(target))
    if config_api_version(kubeadm) == V1BETA4 and out.get("apiVersion") != V1BETA4:
        out["apiVersion"] = V1BETA4
        for component in ("apiServer", "controllerManager", "scheduler"):
            section = dict(out.get(component) or {})
            section.pop("timeoutForControlPlane", None)
            if "extraArgs" in section:
                section["extraArgs"] = _args(section["extraArgs"])
            out[component] = section
        local = dict((out.get("etcd") or {}).get("local") or {})
        if "extraArgs" in local:
            local["extraArgs"] = _args(local["extraArgs"])
        if "local" in (out.get("etcd") or {}):
            out["etcd"] = {**out["etcd"], "local": local}
        for key, default in V1BETA4_DEFAULTS.items():
            out.setdefault(key, default)
    return dict(sorted(out.items()))
