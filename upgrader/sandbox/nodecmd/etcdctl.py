"""``etcdctl`` on a sandbox control-plane node: the real /usr/bin/etcdctl, pointed at this node's member.

As on a kubeadm node, the operator's command line names the local member (``--endpoints``) and
its client certificates; the sandbox's etcd listens on plain http on loopback, so the endpoint comes
from the node's etcd manifest and the certificate flags are dropped.
"""

from __future__ import annotations

import os
import shutil

from upgrader.sandbox import manifests
from upgrader.sandbox.nodecmd import Node

TLS_FLAGS = ("--cacert", "--cert", "--key")
REAL = "/usr/bin/etcdctl"


def _strip_tls(args: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in TLS_FLAGS:
            skip = True
            continue
        if arg.startswith(tuple(f"{f}=" for f in TLS_FLAGS)) or arg == "--insecure-skip-tls-verify":
            continue
        out.append(arg)
    return out


def local_endpoint(node: Node) -> str | None:
    pod = manifests.load(node.layout.host_path("/etc/kubernetes/manifests/etcd.yaml"))
    if pod is None:
        backup = node.layout.host_path("/etc/kubernetes/tmp")
        candidates = sorted(backup.glob("**/etcd.yaml"))  # the manifest may be moved away mid-restore
        pod = manifests.load(candidates[-1]) if candidates else None
    if pod is None:
        return None
    return manifests.flags(pod).get("advertise-client-urls", "").split(",")[0] or None


def main(node: Node, args: list[str]) -> int:
    argv = _strip_tls(args)
    if not any(a == "--endpoints" or a.startswith("--endpoints=") for a in argv):
        endpoint = local_endpoint(node)
        if endpoint:
            argv = [f"--endpoints={endpoint}", *argv]
    else:  # kubeadm's usual --endpoints=https://127.0.0.1:2379 means "this node's member"
        endpoint = local_endpoint(node) or "http://127.0.0.1:2379"
        argv = [a.replace("https://127.0.0.1:2379", endpoint).replace("https://", "http://") for a in argv]
    env = {**os.environ, "ETCDCTL_API": "3"}
    binary = REAL if os.path.exists(REAL) else (shutil.which("etcdctl", path="/usr/local/bin:/usr/bin:/bin") or REAL)
    os.execve(binary, [binary, *argv], env)
    return 127  # not reached
