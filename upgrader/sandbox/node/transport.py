"""SandboxTransport: reaches a sandbox node the way ssh reaches a real one.

A sandbox node is a directory (its root) on this machine, and upgrader runs as root, so the
transport keeps every command inside the node:

- paths: node paths in the command line (``/etc/kubernetes/...``, ``>/tmp/x``, ``--data-dir=/var/lib/etcd``)
  are rewritten into the node root and ``..`` never climbs above it (see :mod:`upgrader.sandbox.node.paths`
  for which directories are the node's); output shows them back as node paths;
- tools: the node's own commands (simulated kubeadm, apt-get, apt-mark, systemctl, etcdctl, kubectl,
  dpkg, ... and refusing guards for apt, service, reboot, crictl, ...) are in its ``/usr/bin`` and
  ``/usr/sbin``, first on PATH, and ``/bin/X``, ``/usr/bin/X``, ``/usr/sbin/X``, ``/sbin/X`` name them:
  the host's package manager, systemd or kubelet are never run; they are re-created before every
  command if a node lost one;
- environment: a login-like one, as ssh gives (HOME is the node's /root, the working directory too),
  with nothing of the operator's: no KUBECONFIG, ETCDCTL_*, proxies or cloud credentials, so kubectl
  on a control-plane node reads the node's ``/root/.kube/config`` (the sandbox) and on a worker
  reaches no cluster.

Reads and writes go through :meth:`NodeLayout.host_path`, which refuses paths that leave the root.
The ``node-unreachable`` fault makes every operation fail as ssh to a dead host does.
"""

from __future__ import annotations

import os
from pathlib import Path

from upgrader.errors import NodePathError, NodeUnreachableError
from upgrader.nodes.local import LocalTransport
from upgrader.ports import CommandResult, NodeLayout
from upgrader.sandbox import faults as sandbox_faults
from upgrader.sandbox.node import wrappers
from upgrader.sandbox.node.paths import NodePaths, normalize

SSH_UNREACHABLE = "ssh: connect to host {node} port 22: No route to host\r\n"
# what a non-interactive ssh session keeps of the client's environment (sshd's usual AcceptEnv)
PASSED_ENV = frozenset({"LANG", "LANGUAGE", "TERM", "TZ", "COLUMNS", "LINES", "NO_COLOR"})


def rewrite_node_paths(arg: str, root: Path) -> str:
    """Prefix every node path in arg with root (``--data-dir=/var/lib/etcd`` too); idempotent."""
    return NodePaths(root, wrappers.tool_paths()).rewrite(arg)


class SandboxTransport:
    """The transport of one sandbox node: ``SandboxTransport(sandbox_dir, "cp-1")``."""

    def __init__(self, sandbox_dir: Path, node: str) -> None:
        self.sandbox_dir = Path(sandbox_dir)
        self.node = node
        self.root = self.sandbox_dir / "nodes" / node
        self.layout = NodeLayout(self.root)
        self.paths = NodePaths(self.root, wrappers.tool_paths())
        self._local = LocalTransport(self.layout, env=self.environment(), cwd=self.root / "root")

    def environment(self) -> dict[str, str]:
        """The node's environment: the node's PATH first, its HOME, nothing that points off the node."""
        env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
        node_dirs = [str(self.root) + d for d in wrappers.node_path_dirs()]
        return env | {
            "PATH": os.pathsep.join([*node_dirs, *self._host_path_dirs()]),
            "HOME": str(self.root / "root"),
            "USER": "root",
            "LOGNAME": "root",
            "SHELL": "/bin/sh",
            "TMPDIR": str(self.root / "tmp"),
            "UPGRADER_SANDBOX_DIR": str(self.sandbox_dir),
            "UPGRADER_SANDBOX_NODE": self.node,
            "UPGRADER_SANDBOX_NODE_ROOT": str(self.root),
            "UPGRADER_SANDBOX_HOST_PATH": os.environ.get("PATH", "/usr/bin:/bin"),  # where kubectl finds its binary
        }

    def _host_path_dirs(self) -> list[str]:
        """The host's PATH entries in the shared OS image (/usr/bin, not /usr/local/bin or ~/.local/bin:
        those name the node's directories on the node), never relative ones (the cwd is in the node)."""
        sandbox = self.sandbox_dir.resolve()
        dirs: list[str] = []
        for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
            shared = d.startswith("/") and self.paths.node_target(normalize(d)) is None
            if shared and not Path(d).resolve().is_relative_to(sandbox) and d not in dirs:
                dirs.append(d)
        return dirs or ["/usr/bin", "/bin"]

    def _unreachable(self) -> bool:
        active = sandbox_faults.load(self.sandbox_dir)
        return any(f.kind == "node-unreachable" and f.node == self.node for f in active)

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        if self._unreachable():
            return CommandResult(255, "", SSH_UNREACHABLE.format(node=self.node))
        if not self.root.is_dir():
            return CommandResult(255, "", f"ssh: Could not resolve hostname {self.node}: Name or service not known\r\n")
        try:
            wrappers.ensure(self.root, sandbox_dir=self.sandbox_dir, node=self.node)
            self.layout.host_path("/root").mkdir(exist_ok=True)
        except (OSError, NodePathError) as e:  # never run a command on a node that could fall through to a host tool
            return CommandResult(255, "", f"upgrader: sandbox node {self.node} is broken, nothing was run: {e}\n")
        result = self._local.run([self.paths.rewrite(a) for a in argv], timeout)
        return CommandResult(result.exit_code, self.paths.view(result.stdout), self.paths.view(result.stderr))

    def read_file(self, path: str) -> bytes:
        self._check_reachable()
        return self._local.read_file(path)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._check_reachable()
        self._local.write_file(path, data, mode)

    def _check_reachable(self) -> None:
        if self._unreachable():
            raise NodeUnreachableError(SSH_UNREACHABLE.format(node=self.node).strip())
