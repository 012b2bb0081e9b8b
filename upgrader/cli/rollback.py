"""`upgrader rollback CLUSTER`: back to a verified known-good snapshot, the cost shown first."""

from __future__ import annotations

from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, preview_or_confirm, table
from upgrader.errors import RunFailedError


def rollback_command(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A cluster registered with `upgrader cluster add`."),
    to: Optional[str] = typer.Option(  # noqa: UP045
        None, "--to", help="SNAPSHOT_ID (see `upgrader snapshot list`) or last-known-good. Default: the snapshot "
        "taken before the first hop of the cluster's last upgrade run, i.e. where that run started."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a terminal)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the preview (versions, snapshot, nodes, the loss "
                                 "list) and stop; nothing is changed."),
    rehearse: bool = typer.Option(False, "--rehearse", help="Restore the snapshot into a scratch etcd beside "
                                  "upgrader, not into the cluster: check revision, hash and keys, list the loss."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Roll a cluster back to a snapshot: etcd restored, manifests, kubelet config and packages downgraded.

    What happens, each step recorded and resumable (`upgrader resume RUN`): on every control-plane
    node the static pod manifests are moved aside (kept under /etc/kubernetes/upgrader-rollback-RUN)
    and the etcd data dir too (kept as DIR.upgrader-rollback-RUN: nothing is deleted); the snapshot is
    restored for every member with a new cluster token (the etcd image of the snapshot's own manifest,
    run through ctr, or a host etcdutl/etcdctl of its minor); the snapshot's manifests and kubelet
    config go back; kubeadm, kubelet and kubectl are downgraded to the snapshot's builds; the kubelets
    restart and upgrader waits for quorum and /readyz. Then every worker whose kubelet is newer than
    the restored API server is drained, downgraded and uncordoned, and the cluster is verified.

    Before anything: the snapshot is verified (sha256, the etcd tool's own check, same cluster) and
    the preview shows the current and target versions, the snapshot, the nodes to downgrade and
    what will be lost: every object written since the snapshot, by resource, namespace and name
    (Secrets by name only).

    During a two-step soak (the last upgrade run did step one and was not finalized), no --to is a
    "soak" rollback: kubeadm-config and the control-plane manifests go back to the old minor, kubeadm
    and kubectl are downgraded, the kubelets restart; no etcd restore, nothing is lost, workers are not
    touched. After `upgrader finalize` the point of no return has passed: the preview names it and the
    rollback restores the snapshot. Every preview lists the points of no return passed since the snapshot.

    Exit codes: 0 rolled back (or previewed), 2 bad input or no confirmation, 3 no snapshot to go
    back to, 6 the rollback failed (the run says each node's state; follow the restore-etcd-from-snapshot runbook),
    7 another run holds the cluster, 8 the snapshot failed verification or cannot be reinstated.
    """
    from upgrader.services import rollback

    if rehearse:
        done = rollback.rehearse(ctx.obj, cluster=cluster, to=to)
        if output is Output.JSON:
            emit_json(done)
        else:
            typer.echo(render_rehearsal(done))
        return
    previewed = rollback.preview(ctx.obj, cluster=cluster, to=to)
    doc = previewed.to_dict()
    cost = (f"loses every write since snapshot {doc['snapshot']['id']}" if doc["etcd_restore"]
            else "swaps its control-plane binaries and manifests back")
    if preview_or_confirm(doc, output, dry_run=dry_run, yes=yes, render=render_preview,
                          no_terminal=f"rollback changes cluster {cluster} and {cost}: confirm with --yes (there is "
                                      f"no terminal to ask on); see it first with `upgrader rollback {cluster} "
                                      f"--dry-run`",
                          question=f"\nRoll cluster {cluster} back to snapshot {doc['snapshot']['id']} "
                                   f"({doc['target']['version']})?"):
        _run(ctx, output, previewed)


def _run(ctx: typer.Context, output: Output, previewed: Any) -> None:
    from upgrader.cli.apply import _run as run_with_progress
    from upgrader.services import rollback

    try:
        run_with_progress(ctx, output, len(previewed.rollback.plan.steps),
                          lambda report, stop: rollback.run(ctx.obj, previewed, report=report, stop=stop))
    except typer.Exit as e:
        if e.exit_code == 6 and previewed.rollback.kind == "soak":
            raise RunFailedError(f"the soak rollback of {previewed.cluster} failed; etcd was not touched and "
                                 "nothing was deleted: see `upgrader runs show` for each node's state, fix the "
                                 "cause and `upgrader resume` it") from None
        if e.exit_code == 6:  # a failed rollback: the one-line error names the runbook
            raise RunFailedError(f"the rollback of {previewed.cluster} failed; nothing was deleted: see "
                                 "`upgrader runs show` for each node's state and follow the "
                                 "restore-etcd-from-snapshot runbook, or fix the cause and `upgrader resume` "
                                 "it") from None
        raise


def render_preview(doc: dict[str, Any]) -> str:
    snap, target = doc["snapshot"], doc["target"]
    soak = not doc.get("etcd_restore", True)
    lines = [f"rollback of {doc['cluster']} to snapshot {snap['id']} ({target['version']})"
             + (f", undoing run {doc['rollback_of']}" if doc.get("rollback_of") else ""),
             f"  kind: {doc.get('kind')}" + (" (binaries and manifests swapped back, no etcd restore)" if soak
                                             else " (etcd restored from the snapshot)"),
             f"  snapshot: taken {snap['created_at']}, revision {snap['revision']}, "
             f"verified ({len(snap['checked'])} checks; {snap['membership']})"]
    if doc.get("needs_snapshot"):
        lines.append(f"  needs the snapshot: {doc['needs_snapshot']}")
    lines.append("")
    rows = [(node, now.get("apiserver"), now.get("kubelet"), _target_of(doc, node)) for node, now in
            sorted(doc["current"].items())]
    lines += [table(["node", "apiserver now", "kubelet now", "after rollback"], rows), ""]
    if soak:
        lines.append("control plane manifests and kubeadm-config swapped back, kubeadm/kubectl downgraded, kubelet "
                     "restarted: " + ", ".join(doc["control_planes"]))
    else:
        lines.append("control plane stopped, etcd restored, downgraded: " + ", ".join(doc["control_planes"]))
    workers = doc["workers_drained_and_downgraded"]
    if soak:
        lines.append("workers: untouched (their kubelets stayed at the old minor during the soak)")
    else:
        lines.append("workers drained and downgraded: " + (", ".join(f"{n} -> {v}" for n, v in sorted(workers.items()))
                                                           or "none (no kubelet newer than the restored API server)"))
    lines.append("")
    lines += render_points(doc.get("points_of_no_return_passed") or [])
    lines += render_loss(doc.get("loss"), doc.get("loss_error"))
    return "\n".join(lines)


def render_points(points: list[dict[str, Any]]) -> list[str]:
    if not points:
        return ["points of no return passed since the snapshot: none", ""]
    rows = [(p.get("kind"), p.get("run_id"), p.get("step"), p.get("at"), p.get("detail")) for p in points]
    return ["points of no return passed since the snapshot:",
            table(["point", "run", "step", "when", "what"], rows), ""]


def _target_of(doc: dict[str, Any], node: str) -> str:
    if node in doc["control_planes"]:
        return f"{doc['target']['version']} (control plane)"
    return doc["workers_drained_and_downgraded"].get(node) or "unchanged"


def render_loss(loss: dict[str, Any] | None, error: str | None) -> list[str]:
    if loss is None:
        return [f"what will be lost: unknown ({error})"]
    if loss.get("why_empty"):
        return [f"what will be lost: nothing ({loss['why_empty']})"]
    counts = loss.get("counts", {})
    lines = [f"what will be lost: {loss.get('revisions_since')} etcd revisions written in the "
             f"{float(loss.get('seconds_since', 0)):.0f}s since the snapshot; "
             + ", ".join(f"{n} {c}" for c, n in counts.items())]
    rows = [(o.get("change"), o.get("resource"), o.get("namespace") or "-", o.get("name"))
            for o in loss.get("objects", [])]
    if rows:
        lines.append(table(["change", "resource", "namespace", "name"], rows))
    return lines


def render_rehearsal(doc: dict[str, Any]) -> str:
    lines = [f"rollback rehearsed for snapshot {doc.get('snapshot_id', doc.get('snapshot'))}: "
             + ("ok" if doc.get("ok") else "FAILED")]
    for check in doc.get("checks", []):
        lines.append(f"  {check.get('name')}: {'ok' if check.get('ok') else 'failed'} {check.get('detail', '')}")
    if isinstance(doc.get("loss"), dict):
        lines += render_loss(doc["loss"], None)
    return "\n".join(lines)
