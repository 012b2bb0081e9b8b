"""Simulated ``kubeadm``: its command line, and ``kubeadm certs``.

``kubeadm version`` and ``kubeadm config images`` are :mod:`.version`; ``kubeadm upgrade
plan|apply|node`` is :mod:`.upgrade`.
"""

from __future__ import annotations

import time

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.kubeadm.version import images, version

CERTS = (
    ("admin.conf", "ca"), ("apiserver", "ca"), ("apiserver-etcd-client", "etcd-ca"),
    ("apiserver-kubelet-client", "ca"), ("controller-manager.conf", "ca"), ("etcd-healthcheck-client", "etcd-ca"),
    ("etcd-peer", "etcd-ca"), ("etcd-server", "etcd-ca"), ("front-proxy-client", "front-proxy-ca"),
    ("scheduler.conf", "ca"), ("super-admin.conf", "ca"),
)
CAS = ("ca", "etcd-ca", "front-proxy-ca")
YEAR, TEN_YEARS = 365 * 86400, 3650 * 86400


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
        # imported here: only `kubeadm upgrade` needs the API client, every other command starts faster
        from upgrader.sandbox.node.tools.kubeadm import upgrade

        return upgrade.main(node, words[1], args)
    node.warn(f'unknown command "{" ".join(words)}" for "kubeadm"\nTo see the stack trace of this error '
              "execute with --v=5 or higher")
    return 1


def _expires(issued: float, lifetime: int) -> tuple[str, str]:
    remaining = issued + lifetime - time.time()
    when = time.strftime("%b %d, %Y %H:%M UTC", time.gmtime(issued + lifetime))
    days = int(remaining // 86400)
    left = f"{days // 365}y" if days >= 365 else f"{days}d"
    return when, left if remaining > 0 else "<invalid>"


def check_expiration(node: Node) -> int:
    state = machine.certs(node.layout)
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
    state = machine.certs(node.layout)
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
    machine.save_certs(node.layout, {**state, "issued": time.time()})
    node.say("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
             "kube-scheduler and etcd, so that they can use the new certificates.")
    return 0
