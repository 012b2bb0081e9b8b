"""Which function answers a command on a sandbox node, loading only that command's module.

The registry is the package's simulated tools plus the guards for host tools (see
:mod:`upgrader.sandbox.node.wrappers`): every wrapper a node has resolves to something here, so none
can fall through to a host binary. Every node has the same wrappers; which package manager answers
depends on the node's OS (see :mod:`upgrader.sandbox.node.distros`): on a RHEL node dnf, yum and rpm,
and apt-get, dpkg and the rest of Debian's are not there; on a Debian node the reverse, with dnf, yum
and rpm refused as before.

Each command is a process of its own (an upgrade hop runs dozens), so the table names each tool's
function as ``"module:function"`` and :func:`resolve` imports only the module of the tool called:
loading every tool (and what they use: the API server's emulation rules, the image store, YAML)
used to cost each command twice what its own work does. The node's OS is read only for the
commands it decides, and the sandbox's config only for etcdctl.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import cast

from upgrader.sandbox.node import wrappers
from upgrader.sandbox.node.runtime import RUNTIME
from upgrader.sandbox.node.tools import Node, Tool
from upgrader.sandbox.node.tools.guards import missing, refuse

DEBIAN_ONLY = ("apt-get", "apt-mark", "apt", "apt-cache", "dpkg", "dpkg-query", "aptitude", "apt-key",
               "dpkg-reconfigure")
RHEL_ONLY = ("dnf", "yum", "rpm")

# Tool name -> "module:function", the module relative to this package
SIMULATED: dict[str, str] = {
    "kubeadm": "kubeadm.command:main",
    "apt-get": "apt:apt_get",
    "apt-mark": "apt:apt_mark",
    "systemctl": "systemctl:main",
    "etcdctl": "etcdctl:main",
    "ctr": "ctr:main",
    "crictl": "crictl:main",
    "journalctl": "journalctl:main",
    "kubectl": "kubectl:main",
    "kubelet": "host_commands:kubelet",
    "apt": "host_commands:apt_front",
    "apt-cache": "host_commands:apt_cache",
    "dpkg": "dpkg:dpkg",
    "dpkg-query": "dpkg:dpkg_query",
    "hostname": "host_commands:hostname",
    "sudo": "host_commands:sudo",
}
RHEL_SIMULATED: dict[str, str] = {"dnf": "dnf:dnf", "yum": "dnf:yum", "rpm": "rpm:rpm"}
REFUSE, MISSING = "refuse", "missing"


def names() -> list[str]:
    """Every command this answers (the same on either OS: only the answer differs)."""
    return sorted({*wrappers.REFUSED, *SIMULATED, *DEBIAN_ONLY, *RHEL_ONLY})


def entry(name: str, *, rhel: bool = False, etcd_tools: bool = True) -> str | None:
    """What answers ``name`` on a RHEL or a Debian node: ``"module:function"``, :data:`REFUSE` or
    :data:`MISSING`; None for a command no node has."""
    if rhel:
        if name in DEBIAN_ONLY:
            return MISSING
        if name in RHEL_SIMULATED:
            return RHEL_SIMULATED[name]
    elif name in RHEL_ONLY:
        return REFUSE
    if name == "etcdctl" and not etcd_tools:
        return MISSING
    if name in SIMULATED:
        return SIMULATED[name]
    return REFUSE if name in wrappers.REFUSED else None


def load(name: str, spec: str) -> Tool:
    """The function an :func:`entry` names (importing its module now)."""
    if spec == REFUSE:
        return refuse(name)
    if spec == MISSING:
        return missing(name)
    module, _, function = spec.partition(":")
    return cast(Tool, getattr(importlib.import_module(f"{__package__}.{module}"), function))


def resolve(name: str, node: Node) -> Tool | None:
    """The function that answers ``name`` on this node, or None for a command no node has."""
    rhel = (name in DEBIAN_ONLY or name in RHEL_ONLY) and _is_rhel(node)
    spec = entry(name, rhel=rhel, etcd_tools=_etcd_tools(node) if name == "etcdctl" else True)
    return None if spec is None else load(name, spec)


def _is_rhel(node: Node) -> bool:
    from upgrader.sandbox.node import distros

    return distros.node_os(node.layout) == distros.RHEL


def _etcd_tools(node: Node | None) -> bool:
    """Whether the node's sandbox lends it etcdctl (`sandbox up --node-etcd-tools`); a kubeadm node has none."""
    if node is None or node.sandbox_dir is None:
        return True  # no sandbox to ask: the tool itself decides (tests that build a registry alone)
    from upgrader.sandbox.sandbox_config import SandboxConfig

    try:
        return SandboxConfig.load(node.sandbox_dir).node_etcd_tools
    except (OSError, ValueError, KeyError, TypeError):
        return False


def run(argv: list[str]) -> int:
    if os.environ.get("LD_LIBRARY_PATH", "").startswith(RUNTIME + "/"):
        del os.environ["LD_LIBRARY_PATH"]  # it was only for this interpreter's libpython (node/runtime.py)
    node = Node.from_env()
    tool = resolve(argv[0], node) if argv else None
    if tool is None:
        print(f"usage: python -m {wrappers.TOOLS} {{{','.join(names())}}} ARGS...", file=sys.stderr)
        return 2
    return tool(node, argv[1:])
