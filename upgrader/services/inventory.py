"""The inventory use case: see the cluster as it is, through its API, its nodes and its etcd, and record it.

Three sources, merged into one document (the shape ``plan --state`` takes):

- the API (``ClusterApi.observe_inventory``): nodes, versions, taints, addresses, OS facts, and
  kubeadm's ClusterConfiguration;
- each node's transport (a cluster registered without settings is reached over ssh with ssh's
  defaults, as ``--transport`` says): the package manager and the Kubernetes repository (see
  upgrader/nodes/packages.py). Nodes are probed in parallel, each bounded by the transport's short
  connect timeout; a node that fails is recorded as ``transport_error`` on that node;
- etcd's members, from a callable (default: :func:`etcd_session`); a failure is recorded as
  ``etcd: {"error": ...}``, never raised.

Only the API is required: without it there is no inventory (ClusterUnreachableError).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from upgrader import logs
from upgrader.domain.inventory import Inventory, inventory_to_dict, parse_inventory
from upgrader.domain.inventory_facts import EtcdMemberInfo, EtcdState, PackageStatus, etcd_to_dict
from upgrader.domain.names import validate_name
from upgrader.domain.records import ClusterRecord, ObservationSource
from upgrader.domain.text import excerpt
from upgrader.errors import InvalidInventoryError, UpgraderError
from upgrader.nodes import packages
from upgrader.ports import EtcdMember
from upgrader.services.wiring import AppContext

log = logs.get_logger(__name__)
MembersSource = Callable[[], list[EtcdMember]]
NODE_WORKERS = 8  # nodes probed at once
_DEFAULT: Any = object()


def observe_and_record(app: AppContext, *, cluster: str, members: MembersSource | None = _DEFAULT) -> Inventory:
    """``upgrader inventory``: observe, then record the observation (source "live") in the ledger."""
    inventory = observe(app, cluster=cluster, members=members)
    with app.unit_of_work() as uow:
        uow.repo.record_observation(cluster=inventory.cluster, observed_at=inventory.observed_at,
                                    fingerprint=inventory.fingerprint, source=str(ObservationSource.LIVE),
                                    inventory=inventory_to_dict(inventory))
        uow.commit()
    return inventory


def observe(app: AppContext, *, cluster: str, members: MembersSource | None = _DEFAULT,
            nodes: bool = True) -> Inventory:
    """The live inventory, validated like a file; ``members=None`` leaves etcd out of it and
    ``nodes=False`` the node probes (packages): what the API says is all a plan needs."""
    validate_name(cluster)
    with app.unit_of_work() as uow:
        record = uow.repo.get_cluster(cluster)
    doc = app.cluster_api(record).observe_inventory()
    if nodes:
        _add_packages(app, record, doc)
    if members is _DEFAULT:
        members = default_members(app, record, doc)
    if members is not None:
        doc["etcd"] = observe_etcd(members)
    try:
        return parse_inventory(doc)
    except InvalidInventoryError as e:
        raise InvalidInventoryError(f"observed inventory of {cluster}: {e.message}") from e


def observe_etcd(members: MembersSource) -> dict[str, Any]:
    """``{"members": [...]}`` sorted by name, or ``{"error": ...}`` when they could not be listed."""
    try:
        found = members()
    except NotImplementedError:
        return {"error": "etcd access is not available in this build"}
    except (UpgraderError, OSError) as e:
        return {"error": _one_line(e)}
    except Exception as e:  # an etcd failure is recorded on the inventory, never fatal to it
        log.warning("etcd members could not be observed", error=type(e).__name__)
        return {"error": f"{type(e).__name__}: {_one_line(e)}"}
    infos = tuple(EtcdMemberInfo(id=m.id, name=m.name, peer_urls=tuple(m.peer_urls), client_urls=tuple(m.client_urls),
                                 leader=m.leader, healthy=m.healthy, db_size=m.db_size, revision=m.revision,
                                 version=m.version, error=m.error)
                  for m in sorted(found, key=lambda m: (m.name, m.id)))
    return etcd_to_dict(EtcdState(members=infos))


def default_members(app: AppContext, record: ClusterRecord, doc: Mapping[str, Any]) -> MembersSource:
    """etcd's members through the shared etcd access (services/etcd_access.py)."""
    def members() -> list[EtcdMember]:
        from upgrader.services.etcd_access import etcd_session

        with etcd_session(app, record, doc) as session:
            return session.members()

    return members


def _add_packages(app: AppContext, record: ClusterRecord, doc: dict[str, Any]) -> None:
    nodes = [n for n in doc.get("nodes") or [] if isinstance(n, dict) and isinstance(n.get("name"), str)]
    if not nodes:
        return
    pool = ThreadPoolExecutor(max_workers=min(NODE_WORKERS, len(nodes)))
    try:
        results = list(pool.map(lambda n: _node_packages(app, record, n["name"], doc), nodes))
    finally:  # on Ctrl-C or SIGTERM, the probes not yet started never start
        pool.shutdown(wait=True, cancel_futures=True)
    for node, result in zip(nodes, results, strict=True):
        node["packages"] = result


def _node_packages(app: AppContext, record: ClusterRecord, node: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    try:  # the node's InternalIP comes from this observation, not an older one
        found = packages.probe(app.transport(record, node, doc))
    except (UpgraderError, OSError) as e:
        return {"status": str(PackageStatus.TRANSPORT_ERROR), "error": _one_line(e)}
    repo = None if found.repo is None else {"url": found.repo.url, "minor": found.repo.minor,
                                            "file": found.repo.file}
    return {"status": str(PackageStatus.OBSERVED), "manager": found.manager, "repo": repo}


def _one_line(e: BaseException) -> str:
    """An error's first line, secrets hidden (it is stored in the ledger and printed)."""
    from upgrader.domain.redaction import redact

    text = next((redact(line.strip()) for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return text if len(text) <= 300 else excerpt(text, 300)
