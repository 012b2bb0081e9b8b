"""The sandbox: a local kubeadm-like cluster on real etcd, to rehearse upgrades on (and to test upgrader).

This is its public face, and the only part of it that code outside the sandbox uses
(``upgrader.services.sandbox``, and the composition root for :class:`SandboxTransport`):

- :func:`up` (with :class:`UpRequest`, :class:`UpResult`), :func:`down`, :func:`require` a sandbox by name;
- :func:`status` of one sandbox, :func:`listing` of them all;
- :func:`inject` a fault, :func:`clear_faults`; :func:`age_certs`, so its certificates expire soon;
- :class:`SandboxTransport`, the node transport of a sandbox node; :class:`SandboxConfig`, what a sandbox is.

Inside, from the top: ``lifecycle`` (the CLI's side) > ``supervisor`` (the background process) >
``controllers`` | ``node`` > ``apiserver`` > ``etcd``, over a few shared modules (``sandbox_config``,
``faults``, ``releases``, ``processes``, ``kubeclient``); import-linter holds that order.

The names are loaded on first use: every command run on a sandbox node, every API server and the
supervisor is a ``python -m upgrader.sandbox....`` process, which imports this package first, and
none of them should pay for loading the lifecycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upgrader.sandbox.lifecycle.certs import age_certs
    from upgrader.sandbox.lifecycle.down import down
    from upgrader.sandbox.lifecycle.inject import clear_faults, inject
    from upgrader.sandbox.lifecycle.registry import require
    from upgrader.sandbox.lifecycle.report import listing, status
    from upgrader.sandbox.lifecycle.up import UpRequest, UpResult, up
    from upgrader.sandbox.node.transport import SandboxTransport
    from upgrader.sandbox.sandbox_config import SandboxConfig

_FACE = {
    "SandboxConfig": "upgrader.sandbox.sandbox_config",
    "SandboxTransport": "upgrader.sandbox.node.transport",
    "UpRequest": "upgrader.sandbox.lifecycle.up",
    "UpResult": "upgrader.sandbox.lifecycle.up",
    "age_certs": "upgrader.sandbox.lifecycle.certs",
    "clear_faults": "upgrader.sandbox.lifecycle.inject",
    "down": "upgrader.sandbox.lifecycle.down",
    "inject": "upgrader.sandbox.lifecycle.inject",
    "listing": "upgrader.sandbox.lifecycle.report",
    "require": "upgrader.sandbox.lifecycle.registry",
    "status": "upgrader.sandbox.lifecycle.report",
    "up": "upgrader.sandbox.lifecycle.up",
}
__all__ = [
    "SandboxConfig",
    "SandboxTransport",
    "UpRequest",
    "UpResult",
    "age_certs",
    "clear_faults",
    "down",
    "inject",
    "listing",
    "require",
    "status",
    "up",
]


def __getattr__(name: str) -> Any:
    module = _FACE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
