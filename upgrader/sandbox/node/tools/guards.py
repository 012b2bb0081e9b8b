"""The guards for host commands a sandbox node has no simulation of (see :mod:`upgrader.sandbox.node.wrappers`).

A refused command fails like an unsupported one: a message on stderr naming the sandbox node, exit
code 127, and the host's binary of that name is never run. The other OS's package manager is
:func:`missing` (on a RHEL node, apt-get and dpkg are not there at all). Only the standard library
here: a refusal is a process of its own and should cost no more than starting one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upgrader.sandbox.node.tools import Node

HINTS = {
    "apt-key": "the pkgs.k8s.io key is in /etc/apt/keyrings",
    "aptitude": "use apt-get",
    "dnf": "a Debian node: use apt-get",
    "yum": "a Debian node: use apt-get",
    "rpm": "a Debian node: use dpkg",
    "snap": "use apt-get",
    "dpkg-reconfigure": "use apt-get",
    "systemd-run": "use systemctl for the kubelet",
    "service": "use systemctl",
    "invoke-rc.d": "use systemctl",
    "update-rc.d": "use systemctl",
    "reboot": "restart the kubelet with `systemctl restart kubelet`",
    "shutdown": "stop the kubelet with `systemctl stop kubelet`",
    "halt": "stop the kubelet with `systemctl stop kubelet`",
    "poweroff": "stop the kubelet with `systemctl stop kubelet`",
    "kubelet": "the sandbox supervisor runs the kubelet: use systemctl",
    "etcd": "etcd runs as the static pod /etc/kubernetes/manifests/etcd.yaml",
    "hostnamectl": "the node's name is in /etc/hostname",
}

def refuse(tool: str) -> Callable[[Node, list[str]], int]:
    def refused(node: Node, args: list[str]) -> int:
        hint = HINTS.get(tool)
        node.warn(f"{tool}: not available on sandbox node {node.name}: upgrader does not simulate it, and the "
                  f"host's {tool} would act on this machine" + (f" ({hint})" if hint else ""))
        return 127

    return refused


def missing(tool: str) -> Callable[[Node, list[str]], int]:
    """A command this node's OS does not have (apt-get on RHEL): what a shell says of a missing binary."""

    def not_found(node: Node, args: list[str]) -> int:
        node.warn(f"{tool}: command not found")
        return 127

    return not_found
