"""Builds a node's transport from the settings the ledger keeps for its cluster.

``{"kind": "sandbox", "dir": ...}`` is what `upgrader sandbox up` registers; ``{"kind": "local",
"root": "/"}`` runs on this machine. The ssh adapter is not written yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from upgrader.errors import UsageError
from upgrader.nodes.local import LocalTransport
from upgrader.nodes.sandbox import SandboxTransport
from upgrader.ports import NodeLayout, NodeTransport


def transport_for(settings: Mapping[str, Any] | None, node: str) -> NodeTransport:
    kind = (settings or {}).get("kind", "local")
    if kind == "sandbox":
        return SandboxTransport(Path(str(settings["dir"])), node)  # type: ignore[index]
    if kind == "local":
        return LocalTransport(NodeLayout(Path(str((settings or {}).get("root", "/")))))
    raise UsageError(f"unknown node transport kind {kind!r} (known: local, sandbox)")
