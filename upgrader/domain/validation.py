"""Is this cluster in a state the documented kubeadm procedure can produce?

A plan built on an impossible state would only dig deeper, so such states are refused (exit 3) with
the nodes named. A cluster caught *inside* the procedure (the first control-plane node fully
upgraded, the others not yet) is not an error: the planner levels it.
"""

from __future__ import annotations

from upgrader.domain.inventory import Inventory
from upgrader.domain.skew import kubelet_max_skew, kubelet_too_old
from upgrader.domain.versions import Version
from upgrader.errors import SkewViolationError


def control_plane_version(inventory: Inventory) -> Version:
    """The version the control plane has reached: its newest apiserver."""
    return max(n.components.apiserver for n in inventory.control_planes if n.components)


def validate_cluster_state(inventory: Inventory) -> None:
    apiservers = {n.name: n.components.apiserver for n in inventory.control_planes if n.components}
    newest = max(apiservers.values())
    other_major = sorted(n.name for n in inventory.nodes if n.kubelet.major != newest.major) + sorted(
        name for name, v in apiservers.items() if v.major != newest.major
    )
    if other_major:
        raise SkewViolationError(f"versions of another major than {newest} on: {', '.join(other_major)}")
    oldest = min(apiservers.values())
    if newest.line.minus(oldest.line) > 1:
        spread = ", ".join(f"{name} {v}" for name, v in sorted(apiservers.items()))
        raise SkewViolationError(f"apiservers are more than one minor apart ({spread}); kubeadm never does that")
    _check_components(inventory)
    _check_kubelets(inventory, newest=newest, oldest=oldest)


def _check_components(inventory: Inventory) -> None:
    for node in inventory.control_planes:
        c = node.components
        assert c is not None
        for name, version in (("kube-controller-manager", c.controller_manager), ("kube-scheduler", c.scheduler)):
            if version.line > c.apiserver.line or c.apiserver.line.minus(version.line) > 1:
                raise SkewViolationError(
                    f"{name} on {node.name} is {version} beside kube-apiserver {c.apiserver}; "
                    "it must be at most one minor older and never newer"
                )


def _check_kubelets(inventory: Inventory, *, newest: Version, oldest: Version) -> None:
    too_new = sorted(f"{n.name} ({n.kubelet})" for n in inventory.nodes if n.kubelet.line > newest.line)
    if too_new:
        raise SkewViolationError(f"kubelet newer than every apiserver ({newest}) on: {', '.join(too_new)}")
    # Workers are upgraded only after every control-plane node: a worker ahead of any apiserver
    # cannot come from the documented procedure. A control-plane kubelet can (node-by-node rolls).
    ahead = sorted(
        f"{n.name} ({n.kubelet})" for n in inventory.workers if n.kubelet.line > oldest.line
    )
    if ahead:
        raise SkewViolationError(f"worker kubelet newer than the oldest apiserver ({oldest}) on: {', '.join(ahead)}")
    too_old = sorted(
        f"{n.name} ({n.kubelet}, allowed {kubelet_max_skew(n.kubelet.line)} minors)"
        for n in inventory.nodes
        if kubelet_too_old(n.kubelet.line, newest_apiserver=newest.line)
    )
    if too_old:
        raise SkewViolationError(f"kubelet too old for the newest apiserver ({newest}) on: {', '.join(too_old)}")
