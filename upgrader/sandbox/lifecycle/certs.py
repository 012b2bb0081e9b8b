"""`sandbox certs NAME --expire-in 10d`: age a sandbox's kubeadm certificates, to rehearse their renewal.

kubeadm issues the control plane's certificates for a year; a cluster left alone that long loses
them. Aging rewrites, on each control-plane node, when its certificates were issued (the state the
simulated ``kubeadm certs check-expiration`` and ``kubeadm certs renew`` read and write), so that they
expire ``expire_in`` seconds from now. The certificate authorities (ten years) are left as they are.

The static pods that run keep the certificates they started with: the sandbox shows it as a real
node does, through the containers' start times (``crictl ps``, the mirror pods' ``startedAt``), which
move only when the kubelet restarts them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from upgrader.errors import UsageError
from upgrader.ports import NodeLayout
from upgrader.sandbox.node import machine
from upgrader.sandbox.sandbox_config import SandboxConfig

YEAR = 365 * 86400  # kubeadm's default certificate validity (the simulated kubeadm's too)


@dataclass(frozen=True, slots=True)
class CertsAged:
    nodes: list[str]
    expires: float  # epoch seconds


def age_certs(cfg: SandboxConfig, expire_in: float, *, node: str | None = None) -> CertsAged:
    """Make the certificates of every control-plane node (or ``node``) expire ``expire_in`` seconds from now."""
    if not 0 <= expire_in <= YEAR:
        raise UsageError(f"certificates can expire in 0 to 365 days (kubeadm issues them for a year), not "
                         f"{expire_in / 86400:g} days")
    if node is not None and node not in cfg.control_planes:
        raise UsageError(f"sandbox {cfg.name} has no control-plane node {node!r} "
                         f"(control planes: {', '.join(cfg.control_planes)})")
    nodes = [node] if node is not None else list(cfg.control_planes)
    expires = time.time() + expire_in
    for name in nodes:
        layout = NodeLayout(cfg.node_root(name))
        state = machine.certs(layout)
        machine.save_certs(layout, {**state, "issued": expires - YEAR})
    return CertsAged(nodes, expires)
