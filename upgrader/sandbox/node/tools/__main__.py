"""``python -m upgrader.sandbox.node.tools TOOL ARGS...``: what every wrapper on a sandbox node runs.

The registry is the package's simulated tools plus the guards for host tools (see
:mod:`upgrader.sandbox.node.wrappers`): every wrapper a node has resolves to something here, so none
can fall through to a host binary.
"""

import os
import sys

from upgrader.sandbox.node import wrappers
from upgrader.sandbox.node.runtime import RUNTIME
from upgrader.sandbox.node.tools import Node, Tool, apt, dpkg, etcdctl, host_commands, kubectl, systemctl
from upgrader.sandbox.node.tools.kubeadm import command as kubeadm


def registry() -> dict[str, Tool]:
    found: dict[str, Tool] = {name: host_commands.refuse(name) for name in wrappers.REFUSED}
    return found | {
        "kubeadm": kubeadm.main,
        "apt-get": apt.apt_get,
        "apt-mark": apt.apt_mark,
        "systemctl": systemctl.main,
        "etcdctl": etcdctl.main,
        "kubectl": kubectl.main,
        "kubelet": host_commands.kubelet,
        "apt": host_commands.apt_front,
        "apt-cache": host_commands.apt_cache,
        "dpkg": dpkg.dpkg,
        "dpkg-query": dpkg.dpkg_query,
        "hostname": host_commands.hostname,
        "sudo": host_commands.sudo,
    }


def run(argv: list[str]) -> int:
    if os.environ.get("LD_LIBRARY_PATH", "").startswith(RUNTIME + "/"):
        del os.environ["LD_LIBRARY_PATH"]  # it was only for this interpreter's libpython (node/runtime.py)
    known = registry()
    if not argv or argv[0] not in known:
        print(f"usage: python -m {wrappers.TOOLS} {{{','.join(sorted(known))}}} ARGS...", file=sys.stderr)
        return 2
    return known[argv[0]](Node.from_env(), argv[1:])


sys.exit(run(sys.argv[1:]))
