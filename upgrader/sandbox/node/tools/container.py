"""One ``ctr run`` container on a sandbox node: its bind mounts, its own filesystem and its network.

Paths inside the container are the ``dst`` of its ``--mount type=bind,src=SRC,dst=DST`` options; a
``src`` is a node path, and only the node's own directories can be bound (``/etc``, ``/var``, ``/tmp``,
``/root``... as :mod:`upgrader.sandbox.node.paths` lists them): the machine's ``/usr``, ``/proc`` or what
the sandbox binds for its tools are refused, and a path that leaves the node root through ``..`` or a
link is refused too, so no container ever touches the host's real /var/lib/etcd. A path under no
mount is in the image's own filesystem: a scratch directory that goes away with the container, as
with ``--rm`` (the sandbox keeps no stopped containers, whether or not ``--rm`` was given).
``options=rbind:ro`` is accepted and recorded but not enforced: the simulated tools write only where
their arguments say (a restore's ``--data-dir``, a save's file).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from upgrader.errors import NodePathError
from upgrader.sandbox.node.paths import NODE_SUBTREES, NODE_TOP, normalize
from upgrader.sandbox.node.tools import Node

RUNC = ("ctr: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
        "process: ")


class MountError(Exception):
    """A --mount the sandbox will not (or real ctr could not) set up; the message is ctr's line."""


@dataclass(frozen=True, slots=True)
class Bind:
    source: str  # a local path (inside the node root)
    destination: str  # the path inside the container
    read_only: bool


def missing_tool(tool: str) -> str:
    """runc's words for an executable the image does not have."""
    if tool.startswith("/"):
        return f'{RUNC}exec: "{tool}": stat {tool}: no such file or directory: unknown'
    return f'{RUNC}exec: "{tool}": executable file not found in $PATH: unknown'


def _node_path(node: Node, source: str) -> str | None:
    """The node path a --mount src names (best-effort nodes get their paths already rewritten into the root)."""
    root = str(node.layout.root).rstrip("/")
    if not root:
        return normalize(source)
    if source == root or source.startswith(root + "/"):
        return normalize(source[len(root):] or "/")
    return None


def _node_owned(path: str) -> bool:
    rel = path.strip("/")
    return bool(rel) and (rel.split("/", 1)[0] in NODE_TOP or any(rel == s or rel.startswith(s + "/")
                                                                  for s in NODE_SUBTREES))


def parse_mount(node: Node, spec: str) -> Bind:
    """``type=bind,src=DIR,dst=DIR,options=rbind:rw`` -> a Bind, or MountError."""
    fields: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise MountError(f"ctr: invalid mount option {part!r} in {spec!r}")
        fields[key] = value
    source = fields.get("src") or fields.get("source")
    destination = fields.get("dst") or fields.get("destination") or fields.get("target")
    if fields.get("type", "none") != "bind" or not source or not destination:
        raise MountError(f"ctr: sandbox node {node.name} only simulates bind mounts "
                         f"(type=bind,src=DIR,dst=DIR,options=rbind:rw), not {spec!r}")
    node_path = _node_path(node, source)
    if node_path is None or not _node_owned(node_path) or not destination.startswith("/"):
        raise MountError(f"ctr: sandbox node {node.name} binds only the node's own directories (/etc, /var, "
                         f"/tmp, /root, ...): {source} is not one of them, refused")
    try:
        local = node.layout.host_path(node_path)
    except NodePathError as e:
        raise MountError(f"ctr: sandbox node {node.name}: {e}") from e
    if not local.exists():
        raise MountError(f'{RUNC}error during container init: error mounting "{source}" to rootfs at '
                         f'"{destination}": stat {source}: no such file or directory: unknown')
    options = fields.get("options", "rbind:rw").split(":")
    return Bind(str(local), normalize(destination).rstrip("/") or "/", read_only="ro" in options)


@dataclass
class Container:
    """A running container: ``host(path)`` is where a container path is on this machine."""

    node: Node
    image: str
    net_host: bool
    binds: list[Bind]
    rootfs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ctr-rootfs-")))

    def close(self) -> None:
        shutil.rmtree(self.rootfs, ignore_errors=True)

    def host(self, path: str) -> str:
        """The local path of an absolute container path (a bind's source, or the image's own filesystem)."""
        norm = normalize(path)
        for b in sorted(self.binds, key=lambda b: len(b.destination), reverse=True):
            if b.destination == "/" or norm == b.destination or norm.startswith(b.destination + "/"):
                return b.source + norm[len(b.destination.rstrip("/")):]
        return str(self.rootfs) + norm

    def argument(self, arg: str) -> str:
        """One tool argument with its container path made local (``/x``, ``--flag=/x``)."""
        if arg.startswith("/"):
            return self.host(arg)
        name, sep, value = arg.partition("=")
        if arg.startswith("-") and sep and value.startswith("/"):
            return f"{name}={self.host(value)}"
        return arg

    def view(self, text: str) -> str:
        """Local paths in a tool's output shown as the container's."""
        for b in sorted(self.binds, key=lambda b: len(b.source), reverse=True):
            if b.source != b.destination:
                text = text.replace(b.source, b.destination if b.destination != "/" else "")
        return text.replace(str(self.rootfs), "")
