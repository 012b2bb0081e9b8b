"""``python -m upgrader.sandbox.node.tools TOOL ARGS...``: what every wrapper on a sandbox node runs.

The registry is the package's simulated tools plus the guards for host tools (see
:mod:`upgrader.sandbox.node.wrappers`): every wrapper a node has resolves to something here, so none
can fall through to a host binary. Every node has the same wrappers; which package manager answers
depends on the node's OS (see :mod:`upgrader.sandbox.node.distros`): on a RHEL node dnf, yum and rpm,
and apt-get, dpkg and the rest of Debian's are not there; on a Debian node the reverse, with dnf, yum
and rpm refused as before.
"""

import os
import sys

from upgrader.sandbox.node import distros, wrappers
from upgrader.sandbox.node.runtime import RUNTIME
from upgrader.sandbox.node.tools import (
    Node,
    Tool,
    apt,
    crictl,
    ctr,
    dnf,
    dpkg,
    etcdctl,
    host_commands,
    journalctl,
    kubectl,
    rpm,
    systemctl,
)
from upgrader.sandbox.node.tools.kubeadm import command as kubeadm
from upgrader.sandbox.sandbox_config import SandboxConfig

DEBIAN_ONLY = ("apt-get", "apt-mark", "apt", "apt-cache", "dpkg", "dpkg-query", "aptitude", "apt-key",
               "dpkg-reconfigure")
RHEL_ONLY = ("dnf", "yum", "rpm")


def _etcd_tools(node: Node | None) -> bool:
    """Whether the node's sandbox lends it etcdctl (`sandbox up --node-etcd-tools`); a kubeadm node has none."""
    if node is None or node.sandbox_dir is None:
        return True  # no sandbox to ask: the tool itself decides (tests that build a registry alone)
    try:
        return SandboxConfig.load(node.sandbox_dir).node_etcd_tools
    except (OSError, ValueError, KeyError, TypeError):
        return False


def registry(os_name: str = distros.DEBIAN, node: Node | None = None) -> dict[str, Tool]:
    found: dict[str, Tool] = {name: host_commands.refuse(name) for name in wrappers.REFUSED}
    found |= {
        "kubeadm": kubeadm.main,
        "apt-get": apt.apt_get,
        "apt-mark": apt.apt_mark,
        "systemctl": systemctl.main,
        "etcdctl": etcdctl.main if _etcd_tools(node) else host_commands.missing("etcdctl"),
        "ctr": ctr.main,
        "crictl": crictl.main,
        "journalctl": journalctl.main,
        "kubectl": kubectl.main,
        "kubelet": host_commands.kubelet,
        "apt": host_commands.apt_front,
        "apt-cache": host_commands.apt_cache,
        "dpkg": dpkg.dpkg,
        "dpkg-query": dpkg.dpkg_query,
        "hostname": host_commands.hostname,
        "sudo": host_commands.sudo,
    }
    if os_name == distros.RHEL:
        found |= {name: host_commands.missing(name) for name in DEBIAN_ONLY}
        found |= {"dnf": dnf.dnf, "yum": dnf.yum, "rpm": rpm.rpm}
    else:
        found |= {name: host_commands.refuse(name) for name in RHEL_ONLY}
    return found


def run(argv: list[str]) -> int:
    if os.environ.get("LD_LIBRARY_PATH", "").startswith(RUNTIME + "/"):
        del os.environ["LD_LIBRARY_PATH"]  # it was only for this interpreter's libpython (node/runtime.py)
    node = Node.from_env()
    known = registry(distros.node_os(node.layout), node)
    if not argv or argv[0] not in known:
        print(f"usage: python -m {wrappers.TOOLS} {{{','.join(sorted(known))}}} ARGS...", file=sys.stderr)
        return 2
    return known[argv[0]](node, argv[1:])


sys.exit(run(sys.argv[1:]))
