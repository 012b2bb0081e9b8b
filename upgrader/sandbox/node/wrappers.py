"""The commands a sandbox node has, where they live in its root, and the wrapper scripts that run them.

Every name here shadows the host's binary of that name on the node: the wrappers sit where a real
node has the tool (``/usr/bin``, ``/usr/sbin``, first on the node's PATH). On a node isolated in its
own namespaces (see :mod:`.isolation`) the node's ``usr`` is layered over the machine's ``/usr`` and
``/bin``, ``/sbin`` are links into it, so every spelling (``/bin/X``, ``/sbin/X``, ``/usr/bin/X``,
``/usr/sbin/X``) and every PATH finds the node's tool; a wrapper is also put in the other of
``bin``/``sbin`` when the machine has the tool there. With best-effort isolation the node
transport maps those spellings onto the wrappers instead (see :mod:`.paths`).
So a command typed on a sandbox node never runs the host's package manager, init system, kubelet,
container runtime or power switch, all of which would act on the machine upgrader runs on, as root.

``SIMULATED`` tools behave like the real ones for what the sandbox models (see :mod:`.tools`);
``REFUSED`` tools exist on a real node but have no safe simulation: they fail like an unsupported
command, with a message on stderr and exit code 127, and never reach the host's binary. Every node
has both package managers' wrappers, whatever its OS (see :mod:`.distros`): the other OS's answer
as a missing command would (exit 127), and the host's binary of that name is never reached either.

The etcd client tools (:data:`ETCD_TOOLS`) are not on a node unless its sandbox was created with
``--node-etcd-tools``, as a kubeadm node has none (they come from the etcd image, through ``ctr``): an
isolated node gets an overlay whiteout where the machine has one, so the shell does not find it at
all; a best-effort node keeps a wrapper that answers ``etcdctl: command not found`` (exit 127), since
its PATH also lists the machine's directories (``command -v`` still finds that wrapper there).

Two kinds of wrapper run the same tool: :func:`host_script` for best-effort nodes (machine paths:
the node root, the sandbox directory, this interpreter) and :func:`node_script` for isolated
nodes (the paths the node sees, see :mod:`.runtime`). Both bake in everything the tool needs, so
``env -i`` in front of a tool changes nothing.

This module only uses the standard library: the node transport imports it to know the tool paths.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import upgrader
from upgrader.sandbox.node.runtime import SANDBOX_DIR, Runtime

SIMULATED: dict[str, str] = {
    "kubeadm": "/usr/bin", "kubelet": "/usr/bin", "kubectl": "/usr/bin", "etcdctl": "/usr/bin",
    "apt-get": "/usr/bin", "apt-mark": "/usr/bin", "apt": "/usr/bin", "apt-cache": "/usr/bin",
    "dpkg": "/usr/bin", "dpkg-query": "/usr/bin", "systemctl": "/usr/bin", "hostname": "/usr/bin",
    "sudo": "/usr/bin", "dnf": "/usr/bin", "yum": "/usr/bin", "rpm": "/usr/bin", "ctr": "/usr/bin",
    "crictl": "/usr/bin", "journalctl": "/usr/bin",
}
REFUSED: dict[str, str] = {
    # package managers, init system and services, power
    "aptitude": "/usr/bin", "apt-key": "/usr/bin", "snap": "/usr/bin", "dpkg-reconfigure": "/usr/sbin",
    "systemd-run": "/usr/bin", "loginctl": "/usr/bin", "hostnamectl": "/usr/bin",
    "timedatectl": "/usr/bin", "service": "/usr/sbin", "invoke-rc.d": "/usr/sbin", "update-rc.d": "/usr/sbin",
    "reboot": "/usr/sbin", "shutdown": "/usr/sbin", "halt": "/usr/sbin", "poweroff": "/usr/sbin",
    "init": "/usr/sbin", "telinit": "/usr/sbin",
    # container runtime and etcd itself (the sandbox supervisor runs those; ctr and crictl are simulated)
    "containerd": "/usr/bin", "runc": "/usr/sbin", "docker": "/usr/bin",
    "nerdctl": "/usr/bin", "etcd": "/usr/bin",
    # the kernel, mounts, firewall, users and processes of the host (kubeadm's prerequisites touch these)
    "sysctl": "/usr/sbin", "modprobe": "/usr/sbin", "swapoff": "/usr/sbin", "swapon": "/usr/sbin",
    "mount": "/usr/bin", "umount": "/usr/bin", "iptables": "/usr/sbin", "ip6tables": "/usr/sbin",
    "nft": "/usr/sbin", "su": "/usr/bin", "pkill": "/usr/bin", "killall": "/usr/bin",
}
ALL: dict[str, str] = {**SIMULATED, **REFUSED}
# A kubeadm node has no etcd client tools of its own (they come from the etcd image, through ctr): on a
# sandbox node these are absent unless it was created with them (`sandbox up --node-etcd-tools`).
ETCD_TOOLS = ("etcdctl", "etcdutl")
# The real tool a simulated one hands its work to, when it is not the tool of the same name
REAL_FOR = {"ctr": "etcdctl"}


@dataclass(frozen=True, slots=True)
class Whiteout:
    """No such command on an isolated node: an overlay whiteout hides the machine's binary of that name.

    Where a whiteout cannot be made, ``fallback`` (a wrapper that answers "command not found") stands in."""

    fallback: str
# What every wrapper runs with ``python -m``: the simulated tools' package.
TOOLS = "upgrader.sandbox.node.tools"


def tool_paths() -> dict[str, str]:
    """Tool name -> its node path, e.g. ``{"kubeadm": "/usr/bin/kubeadm", "service": "/usr/sbin/service"}``."""
    return {name: f"{directory}/{name}" for name, directory in ALL.items()}


def node_path_dirs() -> list[str]:
    """The node's own PATH entries, before the shared OS image's, as on a Debian root's PATH."""
    return ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]


def host_script(tool: str, *, sandbox_dir: Path, node: str, root: Path) -> str:
    """A small sh wrapper that runs the simulated tool with this node baked in, like a binary on PATH."""
    env = {
        "UPGRADER_SANDBOX_DIR": str(sandbox_dir),
        "UPGRADER_SANDBOX_NODE": node,
        "UPGRADER_SANDBOX_NODE_ROOT": str(root),
    }
    exports = "".join(f"{k}={shlex.quote(v)}; export {k}\n" for k, v in env.items())
    source_root = str(Path(upgrader.__file__).resolve().parent.parent)
    kind = "simulated" if tool in SIMULATED else "refused (not simulated)"
    return (
        "#!/bin/sh\n"
        f"# upgrader sandbox: {kind} {tool} on node {node}\n"
        f"{exports}"
        f"PYTHONPATH={shlex.quote(source_root)}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH\n"
        # -P: never import from the working directory, which is inside the node
        f'exec {shlex.quote(sys.executable)} -P -m {TOOLS} {tool} "$@"\n'
    )


def node_script(tool: str, *, node: str, runtime: Runtime) -> str:
    """The wrapper of an isolated node: the same tool, run by the interpreter the node sees (its root is /)."""
    env = {"UPGRADER_SANDBOX_DIR": SANDBOX_DIR, "UPGRADER_SANDBOX_NODE": node, "UPGRADER_SANDBOX_NODE_ROOT": "/",
           "PYTHONPATH": ":".join(runtime.pythonpath)}
    real_name = REAL_FOR.get(tool, tool)
    real = runtime.real_tool(real_name)
    if real:
        env[f"UPGRADER_SANDBOX_REAL_{real_name.upper()}"] = real
    if runtime.library_path:  # a shared libpython; the tools drop this before they run anything
        env["LD_LIBRARY_PATH"] = runtime.library_path
    exports = "".join(f"{k}={shlex.quote(v)}; export {k}\n" for k, v in env.items())
    kind = "simulated" if tool in SIMULATED else "refused (not simulated)"
    return (
        "#!/bin/sh\n"
        f"# upgrader sandbox: {kind} {tool} on node {node}\n"
        f"{exports}"
        # -P: never import from the working directory; -S: nor from the interpreter's own site-packages
        # (a pyenv's global packages), only from PYTHONPATH: upgrader and its environment's packages
        f'exec {shlex.quote(runtime.python)} -P -S -m {TOOLS} {tool} "$@"\n'
    )


def host_scripts(*, sandbox_dir: Path, node: str, root: Path) -> dict[str, str]:
    """Node path -> wrapper text, for a best-effort node."""
    return {path: host_script(tool, sandbox_dir=sandbox_dir, node=node, root=root)
            for tool, path in tool_paths().items()}


def node_scripts(*, node: str, runtime: Runtime, host_usr: Path = Path("/usr"),
                 etcd_tools: bool = False) -> dict[str, str | Whiteout]:
    """Node path -> wrapper text, for an isolated node: in the tool's directory, and in the other of
    bin/sbin too where the machine has the tool there (it would come first on root's PATH).

    Without ``etcd_tools`` the etcd client tools are whiteouts: the node has none, like a kubeadm node."""
    scripts: dict[str, str | Whiteout] = {}
    for tool, path in {**tool_paths(), "etcdutl": "/usr/bin/etcdutl"}.items():
        text = node_script(tool, node=node, runtime=runtime)
        absent = tool in ETCD_TOOLS and not etcd_tools
        if tool == "etcdutl" and not absent:
            continue  # the machine's etcdutl, if any, is what --node-etcd-tools lends (Debian has none)
        entry: str | Whiteout = Whiteout(text) if absent else text
        if not absent or os.path.lexists(host_usr / path.removeprefix("/usr/")):
            scripts[path] = entry
        for other in ("bin", "sbin"):
            spelling = f"/usr/{other}/{tool}"
            if spelling != path and os.path.lexists(host_usr / other / tool):
                scripts[spelling] = entry
    return scripts


def ensure(root: Path, scripts: Mapping[str, str | Whiteout]) -> None:
    """Write every wrapper that is missing or changed: a node never falls through to a host binary.

    Called before every command a sandbox node runs, so a wrapper deleted or overwritten on the node
    (``rm /usr/bin/apt-get`` on a best-effort node, or from the host) comes back instead of exposing
    the host's tool of that name.
    """
    for node_path, entry in scripts.items():
        path = root / node_path.lstrip("/")
        if isinstance(entry, Whiteout):
            if not _whiteout(path, root):
                _ensure_text(path, entry.fallback, root)
            continue
        _ensure_text(path, entry, root)


def _whiteout(path: Path, root: Path) -> bool:
    """An overlay whiteout (a 0/0 character device) at path; False when this machine cannot make one."""
    try:
        st = os.lstat(path)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return True
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.resolve().is_relative_to(root.resolve()):
        raise OSError(f"{path.parent} leads outside the node root {root}")
    tmp = path.with_name(f".{path.name}.whiteout")
    try:
        tmp.unlink(missing_ok=True)
        os.mknod(tmp, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        os.replace(tmp, path)
    except PermissionError:
        return False
    return True


def _ensure_text(path: Path, text: str, root: Path) -> None:
    try:
        if path.is_file() and path.read_text() == text and os.access(path, os.X_OK):
            return
    except (OSError, UnicodeDecodeError):
        pass
    _write_executable(path, text, root)


def _write_executable(path: Path, text: str, root: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.resolve().is_relative_to(root.resolve()):
        raise OSError(f"{path.parent} leads outside the node root {root}")
    import tempfile  # here: every simulated command imports this module for the tool names, and writes nothing

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
