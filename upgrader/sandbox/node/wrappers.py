"""The commands a sandbox node has, where they live in its root, and the wrapper scripts that run them.

Every name here shadows the host's binary of that name on the node: the wrappers sit where a real
node has the tool (``/usr/bin``, ``/usr/sbin``, first on the node's PATH), and the sandbox transport
maps every absolute spelling (``/bin/X``, ``/sbin/X``, ``/usr/bin/X``, ``/usr/sbin/X``) onto them.
So a command typed on a sandbox node never runs the host's package manager, init system, kubelet,
container runtime or power switch, all of which would act on the machine upgrader runs on, as root.

``SIMULATED`` tools behave like the real ones for what the sandbox models (see :mod:`.tools`);
``REFUSED`` tools exist on a real node but have no safe simulation: they fail like an unsupported
command, with a message on stderr and exit code 127, and never reach the host's binary.

This module only uses the standard library: the node transport imports it to know the tool paths.
"""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
from pathlib import Path

import upgrader

SIMULATED: dict[str, str] = {
    "kubeadm": "/usr/bin", "kubelet": "/usr/bin", "kubectl": "/usr/bin", "etcdctl": "/usr/bin",
    "apt-get": "/usr/bin", "apt-mark": "/usr/bin", "apt": "/usr/bin", "apt-cache": "/usr/bin",
    "dpkg": "/usr/bin", "dpkg-query": "/usr/bin", "systemctl": "/usr/bin", "hostname": "/usr/bin",
    "sudo": "/usr/bin",
}
REFUSED: dict[str, str] = {
    # package managers, init system and services, power
    "aptitude": "/usr/bin", "apt-key": "/usr/bin", "snap": "/usr/bin", "dpkg-reconfigure": "/usr/sbin",
    "journalctl": "/usr/bin", "systemd-run": "/usr/bin", "loginctl": "/usr/bin", "hostnamectl": "/usr/bin",
    "timedatectl": "/usr/bin", "service": "/usr/sbin", "invoke-rc.d": "/usr/sbin", "update-rc.d": "/usr/sbin",
    "reboot": "/usr/sbin", "shutdown": "/usr/sbin", "halt": "/usr/sbin", "poweroff": "/usr/sbin",
    "init": "/usr/sbin", "telinit": "/usr/sbin",
    # container runtime and etcd itself (the sandbox supervisor runs those)
    "crictl": "/usr/bin", "ctr": "/usr/bin", "containerd": "/usr/bin", "runc": "/usr/sbin", "docker": "/usr/bin",
    "nerdctl": "/usr/bin", "etcd": "/usr/bin",
    # the kernel, mounts, firewall, users and processes of the host (kubeadm's prerequisites touch these)
    "sysctl": "/usr/sbin", "modprobe": "/usr/sbin", "swapoff": "/usr/sbin", "swapon": "/usr/sbin",
    "mount": "/usr/bin", "umount": "/usr/bin", "iptables": "/usr/sbin", "ip6tables": "/usr/sbin",
    "nft": "/usr/sbin", "su": "/usr/bin", "pkill": "/usr/bin", "killall": "/usr/bin",
}
ALL: dict[str, str] = {**SIMULATED, **REFUSED}
# What every wrapper runs with ``python -m``: the simulated tools' package.
TOOLS = "upgrader.sandbox.node.tools"


def tool_paths() -> dict[str, str]:
    """Tool name -> its node path, e.g. ``{"kubeadm": "/usr/bin/kubeadm", "service": "/usr/sbin/service"}``."""
    return {name: f"{directory}/{name}" for name, directory in ALL.items()}


def node_path_dirs() -> list[str]:
    """The node's own PATH entries, before the shared OS image's, as on a Debian root's PATH."""
    return ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]


def script(tool: str, *, sandbox_dir: Path, node: str, root: Path) -> str:
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


def ensure(root: Path, *, sandbox_dir: Path, node: str) -> None:
    """Write every wrapper that is missing or changed: a node never falls through to a host binary.

    Called before every command a sandbox node runs, so a wrapper deleted or overwritten on the node
    (``rm /usr/bin/apt-get``) comes back instead of exposing the host's tool of that name.
    """
    for tool, node_path in tool_paths().items():
        path = root / node_path.lstrip("/")
        text = script(tool, sandbox_dir=sandbox_dir, node=node, root=root)
        try:
            if path.read_text() == text and os.access(path, os.X_OK):
                continue
        except (OSError, UnicodeDecodeError):
            pass
        _write_executable(path, text, root)


def _write_executable(path: Path, text: str, root: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.parent.resolve().is_relative_to(root.resolve()):
        raise OSError(f"{path.parent} leads outside the node root {root}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
