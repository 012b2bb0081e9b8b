"""SandboxTransport: reaches a sandbox node the way ssh reaches a real one.

A sandbox node is a directory (its root) on this machine, and upgrader runs as root, so the
transport keeps every command inside the node, as the sandbox's isolation mode says
(``config.json``, chosen at `sandbox up`; see :mod:`upgrader.sandbox.node.isolation`):

- ``namespace`` (the default): the command runs in its own mount, pid, UTS and IPC namespaces whose
  ``/`` is the node root, ``/usr`` the machine's read-only with the node's tools layered over it. The
  command line goes through as given and its output comes back as printed: there is no host path
  to rewrite, every path is the node's;
- ``best-effort``: node paths in the command line (``/etc/kubernetes/...``, ``>/tmp/x``,
  ``--data-dir=/var/lib/etcd``) are rewritten into the node root and ``..`` never climbs above it
  (see :mod:`upgrader.sandbox.node.paths`); output shows them back as node paths;

and in both:

- tools: the node's own commands (simulated kubeadm, apt-get, apt-mark, systemctl, kubectl, dpkg, ctr,
  crictl, ... and refusing guards for apt, service, reboot, containerd, ...) are in its ``/usr/bin`` and
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
from upgrader.sandbox.node import isolation, wrappers
from upgrader.sandbox.node.paths import NodePaths, normalize
from upgrader.sandbox.node.runtime import RuntimeUnavailableError
from upgrader.sandbox.sandbox_config import SandboxConfig

SSH_UNREACHABLE = "ssh: connect to host {node} port 22: No route to host\r\n"
# what a non-interactive ssh session keeps of the client's environment (sshd's usual AcceptEnv)
PASSED_ENV = frozenset({"LANG", "LANGUAGE", "TERM", "TZ", "COLUMNS", "LINES", "NO_COLOR"})
# root's PATH on a Debian node (and what a login shell there sets)
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BROKEN = "upgrader: sandbox node {node} is broken, nothing was run: {error}\n"


class SandboxTransport:
    """The transport of one sandbox node: ``SandboxTransport(sandbox_dir, "cp-1")``."""

    def __init__(self, sandbox_dir: Path, node: str) -> None:
        self.sandbox_dir = Path(sandbox_dir)
        self.node = node
        self.root = self.sandbox_dir / "nodes" / node
        self.layout = NodeLayout(self.root)
        self.isolation = _isolation(self.sandbox_dir)
        self.paths = NodePaths(self.root, wrappers.tool_paths())
        self._namespace: isolation.NodeNamespace | None = None
        if self.isolation != isolation.BEST_EFFORT:  # only an explicit best-effort goes without namespaces
            self._namespace = isolation.NodeNamespace(self.sandbox_dir, node)
            self._local = LocalTransport(self.layout, env=self.node_environment(), cwd=self.sandbox_dir)
        else:
            self._local = LocalTransport(self.layout, env=self.environment(), cwd=self.root / "root")

    def node_environment(self) -> dict[str, str]:
        """An isolated node's environment, in its own terms: its PATH, its HOME, nothing of the operator's."""
        env = {k: v for k, v in os.environ.items() if k in PASSED_ENV or k.startswith("LC_")}
        return env | {"PATH": NODE_PATH, "HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/sh"}

    def environment(self) -> dict[str, str]:
        """A best-effort node's environment: the node's PATH first, its HOME, nothing that points off the node."""
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
        if self._namespace is not None:
            return self._run_isolated(self._namespace, argv, timeout)
        return self._run_rewritten(argv, timeout)

    def _run_isolated(self, namespace: isolation.NodeNamespace, argv: list[str], timeout: float) -> CommandResult:
        """In the node's own namespaces: the command line and its output as they are, every path the node's."""
        try:
            self.layout.host_path("/root").mkdir(exist_ok=True)
            command = namespace.argv(argv, runtime=namespace.prepare())
        except (OSError, NodePathError, RuntimeUnavailableError) as e:  # never run a command that is not isolated
            return CommandResult(255, "", BROKEN.format(node=self.node, error=e))
        result = self._local.run(command, timeout)
        if result.exit_code != 0 and result.stderr.startswith("unshare: "):  # nothing ran, as with ssh's own failures
            return CommandResult(255, result.stdout, BROKEN.format(node=self.node, error=result.stderr.strip()))
        if result.exit_code == 124 and result.stderr.endswith(f": {command[0]}\n"):  # LocalTransport's timeout
            return CommandResult(124, result.stdout, result.stderr.replace(command[0], argv[0]))
        return result

    def _run_rewritten(self, argv: list[str], timeout: float) -> CommandResult:
        """Best effort: on this machine, with the node's paths in the command line moved into its root."""
        try:
            wrappers.ensure(self.root, wrappers.host_scripts(sandbox_dir=self.sandbox_dir, node=self.node,
                                                             root=self.root))
            self.layout.host_path("/root").mkdir(exist_ok=True)
        except (OSError, NodePathError) as e:  # never run a command on a node that could fall through to a host tool
            return CommandResult(255, "", BROKEN.format(node=self.node, error=e))
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


def _isolation(sandbox_dir: Path) -> str:
    """The sandbox's isolation mode; a sandbox without a readable config gets the strict one."""
    try:
        return SandboxConfig.load(sandbox_dir).isolation
    except (OSError, ValueError, KeyError, TypeError):
        return isolation.NAMESPACE
