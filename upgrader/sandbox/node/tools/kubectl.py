"""``kubectl`` on a sandbox node: the host's kubectl binary, but only with the node's own configuration.

The node transport gives a node its own HOME (``/root`` in the node) and no KUBECONFIG, so kubectl
finds what a real node has: ``/root/.kube/config`` on a control-plane node (a copy of admin.conf,
as operators make after ``kubeadm init``), nothing on a worker. Where kubectl would fall back to its
built-in default (``localhost:8080``, which on this machine could be anything), this wrapper fails
the way kubectl does when nothing listens there, so plain kubectl on a worker reaches no cluster.

On an isolated node the real binary is where the node's wrapper says (``UPGRADER_SANDBOX_REAL_KUBECTL``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from upgrader.sandbox.node.tools import Node

CONFIG_FLAGS = ("--kubeconfig", "--server", "-s")
CLIENT_ONLY = {"config", "completion", "help", "kustomize", "plugin", "options"}
REFUSED = "The connection to the server localhost:8080 was refused - did you specify the right host or port?"


REAL_ENV = "UPGRADER_SANDBOX_REAL_KUBECTL"


def host_kubectl(node: Node) -> str | None:
    """The host's kubectl, from the PATH entries outside the node (never this wrapper)."""
    if node.layout.root == Path("/"):  # an isolated node: its /usr/bin/kubectl is this tool
        real = os.environ.pop(REAL_ENV, None)
        return real if real and Path(real).is_file() else None
    nodes = node.layout.root.resolve().parent  # no node's wrapper, this one or another's
    host_path = os.environ.get("UPGRADER_SANDBOX_HOST_PATH") or "/usr/local/bin:/usr/bin:/bin"
    dirs = [d for d in host_path.split(os.pathsep) if d.startswith("/") and not Path(d).resolve().is_relative_to(nodes)]
    found = shutil.which("kubectl", path=os.pathsep.join(dirs))
    return found if found and not Path(found).resolve().is_relative_to(nodes) else None


def has_config(args: list[str]) -> bool:
    """Whether kubectl would find a cluster to talk to other than its localhost:8080 default."""
    if any(a in CONFIG_FLAGS or a.startswith(tuple(f"{f}=" for f in CONFIG_FLAGS)) for a in args):
        return True
    files = [f for f in os.environ.get("KUBECONFIG", "").split(os.pathsep) if f]
    home = os.environ.get("HOME")
    if not files and home:
        files = [str(Path(home) / ".kube" / "config")]
    return any(Path(f).is_file() for f in files)


def client_only(args: list[str]) -> bool:
    words = [a for a in args if not a.startswith("-")]
    return bool({"-h", "--help", "--client"} & set(args)) or not words or words[0] in CLIENT_ONLY


def main(node: Node, args: list[str]) -> int:
    binary = host_kubectl(node)
    if binary is None:
        node.warn("kubectl: command not found")
        return 127
    if not has_config(args) and not client_only(args):
        node.warn(REFUSED)
        return 1
    os.execv(binary, [binary, *args])
    return 127  # not reached
