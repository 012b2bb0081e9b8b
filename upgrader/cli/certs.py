"""`upgrader certs check|renew CLUSTER`: kubeadm's certificates, read and renewed before they expire."""

from __future__ import annotations

from typing import Any

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, preview_or_confirm, table
from upgrader.errors import UsageError

app = typer.Typer(help="kubeadm certificates: when they expire, and their renewal with the control-plane restart.",
                  no_args_is_help=True)

CLUSTER = typer.Argument(..., help="A cluster registered with `upgrader cluster add`.")
MAX_HORIZON_DAYS = 3650


def parse_horizon(text: str) -> int:
    """30d or 30 -> days."""
    raw = text.strip().removesuffix("d")
    if not raw.isascii() or not raw.isdigit() or not 0 <= int(raw) <= MAX_HORIZON_DAYS:
        raise UsageError(f"invalid horizon {text[:40]!r}: expected days, e.g. 30d (0 to {MAX_HORIZON_DAYS}d)")
    return int(raw)


HORIZON = typer.Option("30d", "--horizon", help="Certificates expiring within this many days are due, e.g. 30d.")


@app.command("check")
def check(ctx: typer.Context, cluster: str = CLUSTER, horizon: str = HORIZON, output: Output = OUTPUT_OPTION) -> None:
    """When each control-plane node's certificates expire (`kubeadm certs check-expiration` on the node).

    Certificates that expire within the horizon are marked due; `upgrader certs renew CLUSTER` renews
    them. The certificate authorities (ten years) are listed too: kubeadm does not renew those.
    Nothing is changed.

    Exit codes: 0 read (due or not: the JSON's "due" says), 2 bad input or a cluster not registered.
    """
    from upgrader.services import certificates

    report = certificates.expiring(ctx.obj, cluster, horizon_days=parse_horizon(horizon))
    doc = report.to_dict()
    if output is Output.JSON:
        emit_json(doc)
        return
    typer.echo(render_report(doc))


def render_report(doc: dict[str, Any]) -> str:
    rows = []
    for node in doc["nodes"]:
        if node["error"]:
            rows.append((node["node"], "-", "-", "-", f"unreadable: {node['error']}"))
        for c in node["certificates"]:
            mark = ("EXPIRED" if c["days_left"] < 0 else "due") if c["within_horizon"] else ""
            if c["within_horizon"] and c["authority"]:
                mark += " (authority: not renewed by kubeadm)"
            rows.append((node["node"], c["name"] + (" (CA)" if c["authority"] else ""), c["expires"][:16],
                         c["residual"], mark))
    soonest = doc["soonest"][:16] if doc["soonest"] else "unknown"
    verdict = (f"due: a certificate expires within {doc['horizon_days']} days (soonest {soonest}); renew with "
               f"`upgrader certs renew {doc['cluster']}`" if doc["due"]
               else f"nothing due within {doc['horizon_days']} days (soonest {soonest})")
    return table(["node", "certificate", "expires (UTC)", "residual", ""], rows) + "\n\n" + verdict


@app.command("renew")
def renew(
    ctx: typer.Context,
    cluster: str = CLUSTER,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a terminal)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the certificates and the steps; change nothing."),
    horizon: str = HORIZON,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Renew the control plane's certificates and restart its static pods, one node at a time.

    On each control-plane node in turn, recorded step by step (`upgrader runs show RUN`):
    `kubeadm certs renew all` (under flock /etc/kubernetes), which rewrites the certificates in
    /etc/kubernetes/pki and those embedded in admin.conf, super-admin.conf, controller-manager.conf and
    scheduler.conf; then, since the static pods keep the certificates they started with, the
    kube-apiserver, kube-controller-manager, kube-scheduler and etcd manifests move to
    /etc/kubernetes/upgrader-certs-RUN/manifests until `crictl ps` no longer lists them, and back;
    then /readyz, the node's mirror pods (newly started containers), etcd and every node must read
    healthy before the next node. A failed restart puts the manifests back (or says it could not);
    `upgrader resume RUN` finishes an interrupted renewal. Renewal is unconditional, as kubeadm's is:
    the horizon only marks what is due. Copy the new admin.conf wherever it is used.

    Exit codes: 0 renewed (or previewed), 2 bad input or no confirmation, 4 a node's certificates
    could not be read (nothing changed), 6 a step failed (the run says each node's state and what
    to do), 7 another run holds the cluster, 130 interrupted (resumable).
    """
    from upgrader.cli.apply import run_and_render
    from upgrader.services import certificates

    days = parse_horizon(horizon)
    previewed = certificates.preview(ctx.obj, cluster, horizon_days=days)
    if not preview_or_confirm(
            previewed.to_dict(), output, dry_run=dry_run, yes=yes, render=render_preview,
            no_terminal=f"certs renew restarts the control plane of {cluster} node by node: confirm with --yes "
                        f"(there is no terminal to ask on); see it first with "
                        f"`upgrader certs renew {cluster} --dry-run`",
            question=f"\nRenew the certificates of {cluster} and restart its control plane?"):
        return
    run_and_render(ctx, output, len(previewed.plan.steps),
                   lambda report, stop: certificates.renew(ctx.obj, cluster, report=report, stop=stop,
                                                           horizon_days=days, previewed=previewed))


def render_preview(doc: dict[str, Any]) -> str:
    lines = [f"certificate renewal of {doc['cluster']}", "", render_report(doc["certificates"]), "",
             "steps (one control-plane node at a time):"]
    for step in doc["steps"]:
        lines.append(f"{step['n']:>3}. {step['action']} {step['node']}")
        lines += [f"       {w}" for w in step["would"]]
    return "\n".join(lines)
