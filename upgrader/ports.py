"""The node-access port: how upgrader runs commands and moves files on a cluster node.

Every node command of an upgrade (apt-get, kubeadm, systemctl, etcdctl) goes through a
:class:`NodeTransport`, so the engine does not care whether a node is reached over ssh, is the
machine upgrader runs on, or is a sandbox node whose filesystem lives in a directory.
Node paths are always written as on a real node (``/etc/kubernetes/...``); a :class:`NodeLayout`
maps them onto the filesystem that really holds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from upgrader.errors import NodePathError


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command did on a node: its exit code and its output, passed through untouched."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass(frozen=True, slots=True)
class NodeLayout:
    """Where a node's filesystem is rooted: ``/`` on a real node, a directory for a sandbox node.

    ``host_path("/etc/kubernetes")`` is the only way code should turn a node path into a local one,
    so no sandbox command can ever touch the host's real /etc/kubernetes.
    """

    root: Path = Path("/")

    def host_path(self, node_path: str | PurePosixPath) -> Path:
        """The local path of a node path; for a rooted layout it is guaranteed to stay inside the root.

        ``..`` is resolved lexically and may not climb above the node's ``/``, and the result, with
        every symlink on the way resolved, must still be inside the root: a sandbox node's files can
        never name the host's /etc/kubernetes. Raises :class:`NodePathError` otherwise.
        """
        text = str(node_path)
        if not text.startswith("/"):
            raise ValueError(f"node paths are absolute, got {text!r}")
        if self.root == Path("/"):
            return Path(text)
        parts: list[str] = []
        for part in text.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise NodePathError(f"node path {text} climbs above the node's / (refused)")
                parts.pop()
                continue
            parts.append(part)
        local = self.root.joinpath(*parts)
        try:
            root, resolved = self.root.resolve(), local.resolve()
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise NodePathError(f"node path {text} cannot be resolved: {e}") from e
        if resolved != root and not resolved.is_relative_to(root):
            raise NodePathError(f"node path {text} resolves to {resolved}, outside the node root {root} (refused)")
        return local

    @property
    def kubernetes_dir(self) -> Path:
        return self.host_path("/etc/kubernetes")

    @property
    def manifests_dir(self) -> Path:
        return self.host_path("/etc/kubernetes/manifests")


class NodeTransport(Protocol):
    """Runs commands and moves files on one node."""

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        """Run argv (no shell) on the node; a non-zero exit is a result, not an exception."""
        ...

    def read_file(self, path: str) -> bytes:
        """The bytes of a node file; raises TransportError when it cannot be read."""
        ...

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Atomically replace a node file with data and the given permission bits."""
        ...
