"""``plan --two-step``: the emulation range of each hop's new kube-apiserver, read from its image.

The range is what the binary's own ``--help`` says (DOMAIN.md: read it, never compute it). It is read
on one control-plane node through containerd's ``ctr`` (the image is pulled there when missing; the
upgrade would pull it anyway). A node that cannot be reached, or a range that cannot be read, is not
an error of the plan: the hop stays a plain upgrade, and the plan says why.
"""

from __future__ import annotations

from collections.abc import Iterable

from upgrader.domain.emulation import EmulationRange, parse_emulation_range
from upgrader.domain.inventory import Inventory, inventory_to_dict
from upgrader.domain.records import ClusterRecord
from upgrader.domain.versions import Version
from upgrader.errors import UpgraderError
from upgrader.nodes.component_help import read_help
from upgrader.services.wiring import AppContext

COMPONENT = "kube-apiserver"


def read_ranges(app: AppContext, cluster: ClusterRecord, inventory: Inventory,
                versions: Iterable[Version]) -> dict[Version, EmulationRange | str]:
    """Per version, the range its kube-apiserver states, or why it could not be read."""
    wanted = sorted(set(versions))
    if not wanted:
        return {}
    nodes = sorted(inventory.control_planes, key=lambda n: (not n.ready, n.name))
    if not nodes:
        return dict.fromkeys(wanted, "the inventory has no control-plane node to read it on")
    node = nodes[0].name
    repository = inventory.kubeadm_config.image_repository if inventory.kubeadm_config else None
    try:
        transport = app.transport(cluster, node, inventory=inventory_to_dict(inventory))
    except UpgraderError as e:
        return dict.fromkeys(wanted, f"node {node} cannot be reached: {e.message}")
    found: dict[Version, EmulationRange | str] = {}
    for version in wanted:
        try:
            text = read_help(transport, component=COMPONENT, version=version, repository=repository)
        except UpgraderError as e:
            found[version] = f"{COMPONENT} {version} --help on {node}: {e.message}"
            continue
        parsed = parse_emulation_range(text)
        found[version] = parsed if parsed is not None else \
            f"{COMPONENT} {version} --help on {node} names no --emulated-version range"
    return found
