"""Where a node's filesystem is rooted: :class:`NodeLayout`, part of the ports (``upgrader.ports`` re-exports it).

It lives in a module of its own, with nothing but the standard library and :mod:`upgrader.errors`
beneath it, because every simulated command on a sandbox node is a short process of its own that
needs it: importing the ports (their Protocols and the ledger's records) would cost each of them
more than the command's own work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from upgrader.errors import NodePathError


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
