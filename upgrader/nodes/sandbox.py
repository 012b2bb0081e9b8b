"""SandboxTransport: reaches a sandbox node the way ssh reaches a real one.

A sandbox node is a directory (its root) on this machine. Commands run as local processes with the
node's ``bin/`` (simulated kubeadm, apt-get, apt-mark, systemctl, etcdctl) first on PATH, in the node
root, and with node paths in their arguments (``/etc/kubernetes/...``, ``/var/lib/etcd``, ``/tmp/x``)
rewritten into the node root, so an operator's command line works unchanged and never touches the
host's real files. Host binaries (``/usr/bin/...``) stay shared, as the OS image would be.

The ``node-unreachable`` fault makes every operation fail as ssh to a dead host does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from upgrader.nodes.local import LocalTransport
from upgrader.nodes.port import CommandResult, NodeLayout, NodeUnreachableError
from upgrader.sandbox import faults as sandbox_faults

# Top-level directories that belong to the node, not to the shared OS image.
NODE_DIRS = ("etc", "var", "opt", "root", "home", "srv", "mnt", "tmp", "run", "backup")
_NODE_PATH = re.compile(
    r"(?:(?<=^)|(?<=[=\s,;:\"'(]))(/(?:" + "|".join(NODE_DIRS) + r")(?=/|$|[\s,;:\"')]))"
)

SSH_UNREACHABLE = "ssh: connect to host {node} port 22: No route to host\r\n"


def rewrite_node_paths(arg: str, root: Path) -> str:
    """Prefix every node path in arg with root (``--data-dir=/var/lib/etcd`` too); idempotent."""
    root_text = str(root)
    if root_text in arg:
        return arg
    return _NODE_PATH.sub(lambda m: root_text + m.group(1), arg)


class SandboxTransport:
    """The transport of one sandbox node: ``SandboxTransport(sandbox_dir, "cp-1")``."""

    def __init__(self, sandbox_dir: Path, node: str) -> None:
        self.sandbox_dir = Path(sandbox_dir)
        self.node = node
        self.root = self.sandbox_dir / "nodes" / node
        self.layout = NodeLayout(self.root)
        self._local = LocalTransport(self.layout, env=self._env(), cwd=self.root)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["UPGRADER_SANDBOX_DIR"] = str(self.sandbox_dir)
        env["UPGRADER_SANDBOX_NODE"] = self.node
        env["UPGRADER_SANDBOX_NODE_ROOT"] = str(self.root)
        env.pop("ETCDCTL_ENDPOINTS", None)
        return env

    def _unreachable(self) -> bool:
        active = sandbox_faults.load(self.sandbox_dir)
        return any(f.kind == "node-unreachable" and f.node == self.node for f in active)

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        if self._unreachable():
            return CommandResult(255, "", SSH_UNREACHABLE.format(node=self.node))
        if not self.root.is_dir():
            return CommandResult(255, "", f"ssh: Could not resolve hostname {self.node}: Name or service not known\r\n")
        rewritten = [argv[0], *(rewrite_node_paths(a, self.root) for a in argv[1:])]
        result = self._local.run(rewritten, timeout)  # cwd is the node root: relative paths start at "/"
        return CommandResult(result.exit_code, self._node_view(result.stdout), self._node_view(result.stderr))

    def _node_view(self, text: str) -> str:
        """Host paths in output shown as the node sees them (/root/snap.db, not <root>/root/snap.db)."""
        return text.replace(str(self.root) + "/", "/")

    def read_file(self, path: str) -> bytes:
        self._check_reachable()
        return self._local.read_file(path)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._check_reachable()
        self._local.write_file(path, data, mode)

    def _check_reachable(self) -> None:
        if self._unreachable():
            raise NodeUnreachableError(SSH_UNREACHABLE.format(node=self.node).strip())
