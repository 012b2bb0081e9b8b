"""How far a sandbox node's commands are kept from the machine: a namespace of their own, or best effort.

upgrader runs as root and a sandbox node is a directory on this machine. With ``namespace``
isolation (the default) every node command runs in fresh mount, pid, UTS and IPC namespaces whose
``/`` is the node's directory (see :mod:`.nsinit` for what is mounted where): the machine's /etc,
/root, /var, /tmp, its package state, its other files, its processes and other nodes' roots are
not there at all, ``/usr`` is the machine's read-only with the node's tools layered over it, and
the capabilities that would act on the kernel (mounts, devices, modules, clock, network
configuration) are gone. Whatever a command spells, a path can only name the node's files, and a
PATH reset, ``env -i`` or a login shell still finds the node's tools.

What stays reachable, deliberately: the network (the sandbox's etcd and API servers are on this
machine's loopback, so any program speaking HTTP, or the real etcdctl under
``/usr/lib/upgrader-sandbox/libexec``, can reach any loopback service, including an etcd outside
the sandbox), the machine's ``/usr`` (read-only), and, read-only, what the simulated tools run on
(see :mod:`.runtime`). And root in a mount namespace is not a security boundary: it keeps honest
commands and mistakes on the node, not an attacker who means to leave it.

``best-effort`` isolation, for machines without namespaces (``sandbox up`` probes them and
refuses without an explicit ``--isolation=best-effort``), is the path-rewriting guard of
:mod:`.paths`: node paths in command lines are rewritten into the node root and the node's tools
come first on PATH; paths built at run time, scripts, and PATH resets escape it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from upgrader.domain.text import excerpt
from upgrader.errors import UsageError
from upgrader.ports import NodeLayout
from upgrader.sandbox.node import wrappers
from upgrader.sandbox.node.runtime import Mount, Runtime, RuntimeUnavailableError, config_mount, current
from upgrader.sandbox.sandbox_config import SandboxConfig

NAMESPACE = "namespace"
BEST_EFFORT = "best-effort"
MODES = (NAMESPACE, BEST_EFFORT)
NSINIT = Path(__file__).resolve().with_name("nsinit.py")
UNSHARE_FLAGS = ("--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child", "--propagation=private")
# The node's own parts of /usr: what an upgrade or an operator may change there (writable on the node)
NODE_USR = ("usr/local", "usr/lib/systemd", "usr/share/keyrings")
# The machine's top-level links into /usr (merged /usr), mirrored in every node root
USR_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
STAGE = ".node-root"  # in the sandbox directory: an empty directory where a node's / is assembled
# Debian's links of /usr's commands (/usr/bin/which -> /etc/alternatives/which -> /usr/bin/which.debianutils):
# the one part of the machine's /etc a node sees, read-only, so the commands of its /usr resolve
ALTERNATIVES = Mount("/etc/alternatives", "/etc/alternatives", is_dir=True)
PROBE_TIMEOUT = 30.0


class IsolationUnavailableError(UsageError):
    """Node commands cannot run in their own namespaces on this machine."""


def unavailable_reason() -> str | None:
    """Why node commands cannot be isolated here, or None: it isolates a real command in a scratch node.

    The probe goes the way every node command goes (``unshare`` from PATH, the overlay, the binds of
    this interpreter, pivot_root, the capability drop), so what it accepts is what `exec` will do.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) was not found on PATH"
    try:
        links = usr_links()
        runtime = current()
        with tempfile.TemporaryDirectory(prefix="upgrader-isolation-probe-") as tmp:
            done = _probe(Path(tmp).resolve(), unshare=unshare, links=links, runtime=runtime)
    except (RuntimeUnavailableError, OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"{unshare} exited {done.returncode}"
    return None


def _probe(tmp: Path, *, unshare: str, links: dict[str, str], runtime: Runtime) -> subprocess.CompletedProcess[str]:
    """The runtime's interpreter started in a scratch node's namespaces."""
    root, stage = tmp / "node", tmp / "stage"
    stage.mkdir()
    (root / "root").mkdir(parents=True)
    prepare(root, links=links, runtime=runtime, extra=())
    env = {"PATH": "/usr/bin:/bin"} | ({"LD_LIBRARY_PATH": runtime.library_path} if runtime.library_path else {})
    argv = Plan(node="probe", root=root, stage=stage, mounts=runtime.mounts).argv(
        unshare, [runtime.python, "-I", "-S", "-c", "import os"])
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PROBE_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)


def _etcd_tools(sandbox_dir: Path) -> bool:
    """Whether the sandbox lends its nodes etcdctl (no readable config: no, as on a kubeadm node)."""
    try:
        return SandboxConfig.load(sandbox_dir).node_etcd_tools
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UsageError(f"--isolation {excerpt(mode)}: use {NAMESPACE} (the default) or {BEST_EFFORT}")


def require(mode: str) -> None:
    """For `sandbox up`: refuse (exit 2) a namespace-isolated sandbox where namespaces do not work."""
    check_mode(mode)
    if mode == BEST_EFFORT:
        return
    reason = unavailable_reason()
    if reason is not None:
        raise IsolationUnavailableError(
            f"sandbox nodes cannot be isolated in their own namespaces on this machine ({reason}); without "
            f"that, commands run on a node could reach this machine's files and tools. Pass "
            f"--isolation={BEST_EFFORT} to use the path-rewriting guard instead, which only catches mistakes")


def usr_links() -> dict[str, str]:
    """The machine's top-level links into /usr (``bin -> usr/bin``...), which every node root mirrors.

    A machine whose /bin is a directory of its own (no merged /usr) would show its /bin/systemctl to a
    node past the node's tools: namespace isolation is not offered there.
    """
    links: dict[str, str] = {}
    for name in USR_LINKS:
        path = Path("/", name)
        if not path.is_symlink():
            if path.exists():
                raise OSError(f"/{name} is a directory, not a link into /usr (the machine has no merged /usr)")
            continue
        target = os.readlink(path)
        if target.lstrip("/") != f"usr/{name}":
            raise OSError(f"/{name} links to {target}, not into /usr (the machine has no merged /usr)")
        links[name] = f"usr/{name}"
    return links


def prepare(root: Path, *, links: dict[str, str], runtime: Runtime, extra: tuple[Mount, ...]) -> None:
    """The mount points a node root needs (cheap when they exist): /proc, /dev, the links into /usr, the
    node's own parts of /usr, and where the runtime is bound.

    Refuses a root where one of the links is something else, and (NodePathError) a mount point that
    resolves outside the root: a node may have turned its /etc into a link to the machine's /.
    """
    for name, target in links.items():
        path = root / name
        if path.is_symlink() and os.readlink(path) == target:
            continue
        if path.exists() or path.is_symlink():
            raise OSError(f"the node's /{name} is not a link to /{target}: it would hide the node's tools")
        os.symlink(target, path)
    layout = NodeLayout(root)
    for node_path in ("/proc", "/dev", *(f"/{d}" for d in NODE_USR)):
        _directory(layout, node_path)
    for mount in (*runtime.mounts, *extra):
        if mount.is_dir:
            _directory(layout, mount.inside)
        elif not layout.host_path(mount.inside).is_file():
            _directory(layout, str(Path(mount.inside).parent))
            layout.host_path(mount.inside).touch()


def _directory(layout: NodeLayout, node_path: str) -> None:
    path = layout.host_path(node_path)
    if not path.is_dir():
        path.mkdir(parents=True)


@dataclass(frozen=True, slots=True)
class Plan:
    """What :mod:`.nsinit` mounts for one node command."""

    node: str
    root: Path
    stage: Path
    mounts: tuple[Mount, ...]

    def arguments(self) -> list[str]:
        """The plan as nsinit.parse reads it: ``NODE ROOT STAGE CWD --usr ... --rw ... --ro ...``."""
        args = [self.node, str(self.root), str(self.stage), "/root", "--usr", str(self.root / "usr"), "--usr", "/usr"]
        for d in NODE_USR:
            args += ["--rw", str(self.root / d), "/" + d]
        for m in self.mounts:
            args += ["--ro", m.source, m.inside]
        return args

    def argv(self, unshare: str, command: list[str]) -> list[str]:
        return [unshare, *UNSHARE_FLAGS, sys.executable, "-I", "-S", str(NSINIT), *self.arguments(), "--", *command]


class NodeNamespace:
    """Runs one node's commands isolated: ``NodeNamespace(sandbox_dir, "cp-1").argv(["kubeadm", ...])``."""

    def __init__(self, sandbox_dir: Path, node: str, *, etcd_tools: bool | None = None) -> None:
        self.sandbox_dir = Path(sandbox_dir).resolve()
        self.node = node
        self.root = self.sandbox_dir / "nodes" / node
        self.etcd_tools = _etcd_tools(self.sandbox_dir) if etcd_tools is None else etcd_tools

    def prepare(self) -> Runtime:
        """Wrappers and mount points of the node (before every command: a lost one comes back)."""
        runtime = current()
        wrappers.ensure(self.root, wrappers.node_scripts(node=self.node, runtime=runtime, etcd_tools=self.etcd_tools))
        prepare(self.root, links=usr_links(), runtime=runtime, extra=self._extra())
        (self.sandbox_dir / STAGE).mkdir(exist_ok=True)
        return runtime

    def _extra(self) -> tuple[Mount, ...]:
        return (config_mount(self.sandbox_dir), *((ALTERNATIVES,) if Path(ALTERNATIVES.source).is_dir() else ()))

    def argv(self, command: list[str], *, runtime: Runtime) -> list[str]:
        unshare = shutil.which("unshare")
        if unshare is None:
            raise OSError("unshare (util-linux) was not found on PATH")
        mounts = (*runtime.mounts, *self._extra())
        plan = Plan(node=self.node, root=self.root, stage=self.sandbox_dir / STAGE, mounts=mounts)
        return plan.argv(unshare, command)
