"""`upgrader snapshot ...`: verified etcd + control-plane snapshots, and their retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table

app = typer.Typer(help="Take, verify and prune etcd + control-plane snapshots (files 0600, recorded in the ledger).",
                  no_args_is_help=True)

MAX_ID = 2**63 - 1
ID = typer.Argument(..., min=1, max=MAX_ID, help="The snapshot's id (see `upgrader snapshot list`).")


def snapshot_dict(record: Any, *, full: bool = False) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": record.id, "cluster": record.cluster, "created_at": record.created_at.isoformat(),
        "created_by": record.created_by, "label": record.label, "status": record.status.value,
        "known_good": record.known_good, "known_good_reason": record.known_good_reason, "pinned": record.pinned,
        "path": record.path, "size": record.size, "sha256": record.sha256, "source_member": record.source_member,
        "external": record.external, "revision": record.etcd_status.get("revision"),
        "deleted_at": record.deleted_at.isoformat() if record.deleted_at else None,
        "run_id": record.run_id,
    }
    if full:
        doc |= {"etcd_status": dict(record.etcd_status), "versions": dict(record.versions),
                "artefacts": [a.to_dict() for a in record.artefacts]}
    return doc


@app.command("create")
def create(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A cluster registered with `upgrader cluster add`."),
    label: Optional[str] = typer.Option(None, "--label", help="A tag: lowercase letters, digits, '-', '_', '.'."),  # noqa: UP045
    store: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--store", help="Directory of the snapshot store (default: $UPGRADER_SNAPSHOT_DIR, else "
        "$XDG_DATA_HOME/upgrader/snapshots).", metavar="DIR"),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Take a verified etcd snapshot from one healthy member, with every control-plane node's manifests,
    kubelet config, package versions and repository config, and kubeadm-config.

    The file is written 0600 under a temp name and renamed once the etcd tool has read its status;
    it is recorded only then. known_good is set when the cluster was healthy right before and after.

    Exit codes: 0 taken, 2 bad input or unusable store/tools/API, 4 no healthy etcd member, 7 the cluster
    is locked by a run or another snapshot command, 8 corrupt.
    """
    from upgrader.services import snapshots

    result = snapshots.create_snapshot(ctx.obj, cluster=cluster, label=label, store_dir=store)
    record = result.record
    if output is Output.JSON:
        emit_json(snapshot_dict(record, full=True) | {"health_before": result.before.to_dict(),
                                                       "health_after": result.after.to_dict()})
        return
    typer.echo(f"snapshot {record.id} of {record.cluster}: {record.path} ({record.size} bytes, revision "
               f"{record.etcd_status.get('revision')}, from {record.source_member}, {len(record.artefacts)} artefacts)")
    typer.echo(f"known-good: {'yes' if record.known_good else 'no'} ({record.known_good_reason})")


@app.command("list")
def list_(
    ctx: typer.Context,
    cluster: Optional[str] = typer.Argument(None, help="Only this cluster's snapshots."),  # noqa: UP045
    deleted: bool = typer.Option(False, "--deleted", help="Also list pruned snapshots."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """List snapshots, oldest first."""
    from upgrader.services import snapshots

    records = snapshots.list_snapshots(ctx.obj, cluster=cluster, include_deleted=deleted)
    if output is Output.JSON:
        emit_json([snapshot_dict(r) for r in records])
        return
    if not records:
        typer.echo("no snapshots (take one with `upgrader snapshot create CLUSTER`)")
        return
    rows = [(r.id, r.cluster, f"{r.created_at:%Y-%m-%d %H:%M:%S}", r.label, "yes" if r.known_good else "no",
             "pinned" if r.pinned else "", r.status.value, r.size, r.path) for r in records]
    typer.echo(table(["id", "cluster", "created (utc)", "label", "known-good", "pin", "status", "bytes", "path"],
                     rows))


@app.command("show")
def show(ctx: typer.Context, snapshot_id: int = ID, output: Output = OUTPUT_OPTION) -> None:
    """Everything recorded of a snapshot: etcd status, the cluster's versions, the artefacts."""
    from upgrader.services import snapshots

    doc = snapshot_dict(snapshots.show_snapshot(ctx.obj, snapshot_id=snapshot_id), full=True)
    if output is Output.JSON:
        emit_json(doc)
        return
    for key in ("id", "cluster", "created_at", "created_by", "label", "status", "known_good", "known_good_reason",
                "pinned", "path", "size", "sha256", "source_member", "external", "etcd_status", "versions"):
        typer.echo(f"{key + ':':19} {doc[key]}")
    typer.echo("artefacts:")
    typer.echo(table(["node", "kind", "node path", "bytes", "sha256"],
                     [(a["node"], a["kind"], a["node_path"], a["size"], a["sha256"][:16]) for a in doc["artefacts"]]))


@app.command("verify")
def verify(
    ctx: typer.Context,
    snapshot_id: int = ID,
    cluster: Optional[str] = typer.Option(  # noqa: UP045
        None, "--cluster", help="Refuse unless the snapshot is of this cluster (its etcd members compared too)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Check a snapshot: the etcd file's sha256, its own integrity (the etcd tool's status: hash and revision as
    recorded), and every artefact's sha256.

    Exit codes: 0 intact, 2 no such snapshot, 8 missing, corrupt, or of another cluster.
    """
    from upgrader.services import snapshot_checks

    result = snapshot_checks.verify_snapshot(ctx.obj, snapshot_id=snapshot_id, cluster=cluster)
    if output is Output.JSON:
        emit_json({"id": result.record.id, "cluster": result.record.cluster, "ok": True,
                   "checked": list(result.checked), "membership": result.membership})
        return
    typer.echo(f"snapshot {result.record.id} of {result.record.cluster} is intact ({len(result.checked)} checks; "
               f"etcd membership: {result.membership})")


@app.command("prune")
def prune(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A registered cluster."),
    keep_last: int = typer.Option(0, "--keep-last", min=0, max=100_000, help="Keep the N newest snapshots."),
    keep_daily: int = typer.Option(0, "--keep-daily", min=0, max=100_000,
                                   help="Keep the newest of each of the last D UTC days that have snapshots."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", min=0, max=100_000,
                                    help="Keep the newest of each of the last W ISO weeks that have snapshots."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be deleted; delete nothing."),
    kubeadm_backups: bool = typer.Option(False, "--kubeadm-backups",
                                         help="Also remove kubeadm's backups under /etc/kubernetes/tmp on the "
                                         "control-plane nodes, keeping the newest of each kind."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Delete snapshots a retention policy does not keep (as restic/borg forget, in UTC).

    Never deleted: a pinned snapshot, the newest known-good one whose file is intact, one an unfinished
    run refers to. Each deletion is an event in the ledger; the row stays, marked deleted, and is marked
    before its files are removed (files that cannot be removed are reported and retried by the next
    prune). Holds the cluster's lock: exit 7 while a run or another snapshot command holds it (not with
    --dry-run, which only reads). A store that is not there or not readable refuses the prune (exit 2).
    """
    from upgrader.domain.snapshots import RetentionPolicy
    from upgrader.services import snapshot_checks

    policy = RetentionPolicy(keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly)
    result = snapshot_checks.prune_snapshots(ctx.obj, cluster=cluster, policy=policy, dry_run=dry_run,
                                             kubeadm_backups=kubeadm_backups)
    gone = result.would_delete if dry_run else result.deleted
    if output is Output.JSON:
        emit_json({"cluster": cluster, "dry_run": dry_run,
                   "kept": [{"id": i, "reasons": list(r)} for i, r in sorted(result.decision.keep.items())],
                   "deleted": [] if dry_run else [snapshot_dict(r) for r in gone],
                   "would_delete": [snapshot_dict(r) for r in gone] if dry_run else [],
                   "kubeadm_backups": result.kubeadm_backups,
                   "not_removed": [{"id": i, "reason": why} for i, why in sorted(result.not_removed.items())]})
        return
    verb = "would delete" if dry_run else "deleted"
    for i, reasons in sorted(result.decision.keep.items()):
        typer.echo(f"keep   {i:>6}  ({', '.join(reasons)})")
    for r in gone:
        typer.echo(f"{verb} {r.id:>6}  {r.created_at:%Y-%m-%d %H:%M:%S}  {r.path}")
    for node, names in sorted(result.kubeadm_backups.items()):
        typer.echo(f"{node}: {verb} {len(names)} kubeadm backup(s)" + (f": {', '.join(names)}" if names else ""))
    for i, why in sorted(result.not_removed.items()):
        typer.echo(f"warning: snapshot {i} is deleted but its files stay ({why}); the next prune retries", err=True)


def _pin(ctx: typer.Context, snapshot_id: int, pinned: bool, output: Output) -> None:
    from upgrader.services import snapshots

    record, changed = snapshots.set_pinned(ctx.obj, snapshot_id=snapshot_id, pinned=pinned)
    if output is Output.JSON:
        emit_json(snapshot_dict(record) | {"changed": changed})
        return
    state = "pinned" if pinned else "unpinned"
    typer.echo(f"snapshot {record.id} {state}" if changed else f"snapshot {record.id} was already {state}")


@app.command("pin")
def pin(ctx: typer.Context, snapshot_id: int = ID, output: Output = OUTPUT_OPTION) -> None:
    """Keep a snapshot whatever prune's policy says."""
    _pin(ctx, snapshot_id, True, output)


@app.command("unpin")
def unpin(ctx: typer.Context, snapshot_id: int = ID, output: Output = OUTPUT_OPTION) -> None:
    """Let prune's policy decide about this snapshot again."""
    _pin(ctx, snapshot_id, False, output)
