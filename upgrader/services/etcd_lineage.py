"""Is a snapshot of this cluster's etcd, even after restores gave that etcd new member ids?

A snapshot records the ids of the etcd members it was taken from. A restore with a new cluster token
(every rollback upgrader makes) gives every member a new id, so a plain comparison would call all of
the cluster's older snapshots "another cluster" after its first rollback. Each such restore is on the
audit trail as an ``etcd-restored`` event naming the restored snapshot's member ids
(``from_member_ids``) and the ids the restore gave (``member_ids``): both are generations of one etcd.

The lineage of a snapshot is its recorded ids, closed over those events: an event that shares an id
with the lineage, or that restored this very snapshot, joins both its id sets to it (to a fixed point,
so a snapshot of a generation that a later restore abandoned still belongs). Only restores upgrader made
after its own same-etcd check are followed, so the lineage never reaches another cluster's etcd: a
snapshot whose lineage shares no member with the live etcd is refused (IntegrityError, exit 8).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from upgrader.domain.records import ClusterRecord, EventRecord, SnapshotRecord
from upgrader.errors import IntegrityError, UpgraderError
from upgrader.services.etcd_access import etcd_session
from upgrader.services.wiring import AppContext

RESTORED = "etcd-restored"  # the event services.rollback records after a restore


@dataclass(frozen=True, slots=True)
class Lineage:
    member_ids: frozenset[str]  # every id this snapshot's etcd has had
    restored_by: tuple[int, ...]  # the runs whose restores joined ids to it, in order


def lineage(snapshot: SnapshotRecord, restores: Iterable[EventRecord]) -> Lineage:
    """The snapshot's member ids and every id the restores of its etcd gave (pure: the events are given)."""
    known = set(snapshot.etcd_status.get("member_ids") or [])
    events = sorted((e for e in restores if e.kind == RESTORED), key=lambda e: e.id)
    runs: list[int] = []
    joined: set[int] = set()
    changed = bool(known)
    while changed:
        changed = False
        for event in events:
            if event.id in joined:
                continue
            data = event.data or {}
            ids = set(data.get("from_member_ids") or []) | set(data.get("member_ids") or [])
            if known & ids or data.get("snapshot") == snapshot.id:
                joined.add(event.id)
                known |= ids
                changed = True
                if event.run_id is not None:
                    runs.append(event.run_id)
    return Lineage(frozenset(known), tuple(runs))


def restore_events(app: AppContext, cluster: str) -> list[EventRecord]:
    with app.unit_of_work() as uow:
        return [e for e in uow.repo.list_events(cluster, limit=100000) if e.kind == RESTORED]


def compare_members(app: AppContext, cluster: ClusterRecord, snapshot: SnapshotRecord, *,
                    same: str = "same members") -> str:
    """What was found when the snapshot's etcd was compared with ``cluster``'s live one (``same`` when its
    recorded members are live); IntegrityError when they share no member even through restores."""
    recorded = set(snapshot.etcd_status.get("member_ids") or [])
    if not recorded:
        return "not checked: no member ids recorded"
    try:
        with etcd_session(app, cluster) as session:
            live = {m.id for m in session.members()}
    except UpgraderError as e:
        return f"not checked: the etcd of {cluster.name} did not answer ({e.message})"
    if not live:
        return f"not checked: the etcd of {cluster.name} listed no members"
    if not recorded.isdisjoint(live):
        return same
    found = lineage(snapshot, restore_events(app, cluster.name))
    if found.member_ids.isdisjoint(live):
        raise IntegrityError(f"snapshot {snapshot.id} was taken from etcd members {', '.join(sorted(recorded))}; "
                             f"cluster {cluster.name}'s etcd has members {', '.join(sorted(live))}"
                             f"{_since(found)}: a snapshot of another cluster, refused")
    runs = ", ".join(str(r) for r in found.restored_by)
    return f"{same} (the same etcd, restored since by run {runs})"


def _since(found: Lineage) -> str:
    if not found.restored_by:
        return ""
    return f" (nor any restored since, by run {', '.join(str(r) for r in found.restored_by)})"
