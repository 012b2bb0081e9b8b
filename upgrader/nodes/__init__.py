"""Node access: the NodeTransport port and its adapters (local processes, sandbox nodes)."""

from upgrader.nodes.factory import transport_for
from upgrader.nodes.local import LocalTransport
from upgrader.nodes.port import (
    CommandResult,
    NodeLayout,
    NodePathError,
    NodeTransport,
    NodeUnreachableError,
    TransportError,
)
from upgrader.nodes.sandbox import SandboxTransport

__all__ = [
    "CommandResult",
    "LocalTransport",
    "NodeLayout",
    "NodePathError",
    "NodeTransport",
    "NodeUnreachableError",
    "SandboxTransport",
    "TransportError",
    "transport_for",
]
