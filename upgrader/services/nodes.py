"""Node access use cases: how a cluster's nodes are reached (kept in the ledger), and `node exec`.

Settings changes are events (``node-access-changed``, with the settings before and after); a
command run with ``--accept-new-host-keys`` is an event too (``host-key-opt-in``: who, which
node, and the keys ssh added), whether or not the command then succeeded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upgrader.domain.names import validate_name, validate_node_name
from upgrader.domain.node_access import ssh_target, update_ssh, validate_address
from upgrader.domain.records import ClusterRecord
from upgrader.domain.text import excerpt
from upgrader.errors import UsageError
from upgrader.ports import CommandResult
from upgrader.services.audit import record_event
from upgrader.services.wiring import AppContext

TRANSPORT_KINDS = ("ssh", "local")  # what an operator may choose; `sandbox up` registers "sandbox"


def transport_settings(kind: str | None, changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The settings `cluster add` stores: None when nothing was given (SSH with ssh's defaults)."""
    if kind not in (None, *TRANSPORT_KINDS):
        raise UsageError(f"unknown node transport {excerpt(kind)} (choose: {', '.join(TRANSPORT_KINDS)})")
    if kind == "local":
        if changes:
            raise UsageError("--ssh-* and --etcd-tools settings need --transport ssh")
        return {"kind": "local"}
    if kind is None and not changes:
        return None
    return update_ssh(None, node=None, changes=changes)


def configure(app: AppContext, *, cluster: str, node: str | None = None, kind: str | None = None,
              changes: Mapping[str, Any] | None = None, unset: tuple[str, ...] = ()) -> ClusterRecord:
    """Change how a cluster's nodes (or one node, with ``node``) are reached."""
    validate_name(cluster)
    if node is not None:
        validate_node_name(node)
    changes = dict(changes or {})
    if kind not in (None, *TRANSPORT_KINDS):
        raise UsageError(f"unknown node transport {excerpt(kind)} (choose: {', '.join(TRANSPORT_KINDS)})")
    if kind == "local" and (node is not None or changes or unset):
        raise UsageError("--transport local takes no --node, --ssh-*, --etcd-tools or --unset: this machine is "
                         "every node")
    if kind is None and not changes and not unset:
        raise UsageError("nothing to change: give --ssh-user, --ssh-port, --ssh-identity, --ssh-jump, "
                         "--ssh-option, --ssh-known-hosts, --etcd-tools, --transport or --unset")
    with app.unit_of_work() as uow:
        before = uow.repo.get_cluster(cluster).transport
        if (before or {}).get("kind") == "sandbox":
            raise UsageError(f"cluster {cluster} is a sandbox: its nodes are reached through the sandbox "
                             "(see `upgrader sandbox`), not ssh")
        after = {"kind": "local"} if kind == "local" else update_ssh(
            {"kind": "ssh"} if (before or {}).get("kind") == "local" else before,
            node=node, changes=changes, unset=unset)
        record = uow.repo.set_cluster_transport(cluster, after)
        record_event(app, uow, "node-access-changed", cluster=cluster,
                     data={"node": node, "before": before, "after": after})
        uow.commit()
    return record


def set_node_address(app: AppContext, *, cluster: str, node: str, address: str | None) -> ClusterRecord:
    """Set (or, with None, forget) the address a node is reached at instead of its InternalIP."""
    if address is None:
        return configure(app, cluster=cluster, node=node, unset=("address",))
    return configure(app, cluster=cluster, node=node, changes={"address": validate_address(address)})


@dataclass(frozen=True, slots=True)
class NodeAccess:
    """What `cluster show` says about node access: the stored settings and, for SSH, each known
    node's effective target (the nodes of the latest observation and those with settings)."""

    kind: str
    settings: dict[str, Any]
    nodes: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "settings": self.settings, "nodes": self.nodes,
                "etcd_tools": str(self.settings.get("etcd_tools", "host"))}


def node_access(app: AppContext, record: ClusterRecord) -> NodeAccess:
    settings = dict(record.transport or {"kind": "ssh"})
    kind = str(settings.get("kind", "ssh"))
    if kind != "ssh":
        return NodeAccess(kind, settings, [])
    with app.unit_of_work() as uow:
        latest = uow.repo.latest_observation(record.name)
    observed = {n.get("name"): n for n in (latest.inventory.get("nodes") or []) if isinstance(n, Mapping)} \
        if latest is not None else {}
    names = sorted({*(k for k in observed if isinstance(k, str)), *(settings.get("nodes") or {})})
    nodes = []
    for name in names:
        ip = observed.get(name, {}).get("internal_ip")
        nodes.append({"node": name} | ssh_target(settings, name, ip if isinstance(ip, str) else None).as_dict())
    return NodeAccess(kind, settings, nodes)


def exec_on_node(app: AppContext, *, cluster: str, node: str, argv: list[str], timeout: float) -> CommandResult:
    """Run argv on a node of a registered cluster, through the transport its settings name."""
    validate_name(cluster)
    validate_node_name(node)
    if not argv:
        raise UsageError("name a command to run: upgrader node exec CLUSTER NODE -- COMMAND [ARG...]")
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    transport = app.transport(record, node)
    try:
        return transport.run(argv, timeout)
    finally:
        if app.accept_new_host_keys:
            record_host_key_opt_in(app, cluster=cluster, node=node, transport=transport)


def record_host_key_opt_in(app: AppContext, *, cluster: str, node: str, transport: object) -> None:
    """The audit event of an ``--accept-new-host-keys`` use: who, which node and address, and the
    keys ssh added (none when the key was known already). Every use case that takes the flag calls
    it once per node it reached, succeeded or not."""
    target = getattr(transport, "target", None)
    with app.unit_of_work() as uow:
        record_event(app, uow, "host-key-opt-in", cluster=cluster, data={
            "node": node, "address": getattr(target, "address", None),
            "added": list(getattr(transport, "added_host_keys", []))})
        uow.commit()
