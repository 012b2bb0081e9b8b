"""`upgrader preflight CLUSTER --to VERSION`: may an upgrade start? Every check, and why."""

from __future__ import annotations

from typing import Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table
from upgrader.errors import PreflightError


def preflight_command(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A cluster registered with `upgrader cluster add`."),
    to: str = typer.Option(..., "--to", help="Target: an exact patch (v1.33.2) or a minor (v1.33 = newest patch)."),
    ignore: list[str] = typer.Option(
        [], "--ignore", metavar="CHECK",
        help="Let this failed check pass (repeatable); needs --reason. Recorded in the ledger with who and why.",
    ),
    reason: Optional[str] = typer.Option(  # noqa: UP045
        None, "--reason", metavar="TEXT", help="Why the --ignore'd checks may fail (one line, recorded).",
    ),
    quick: bool = typer.Option(
        False, "--quick", help="List the target's images instead of pulling them (and only warn about them).",
    ),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Check that an upgrade to VERSION may start; nothing on the cluster is changed.

    Checks: api-ready (/readyz), control-plane-ready (every control-plane node Ready), etcd (every
    member healthy, one leader, members = control-plane nodes), skew (now and along the plan),
    cordoned-nodes (cordoned by someone else: a warning, never touched), disruption-budgets (PDBs
    that would block a drain), certificates (none expiring within 30 days), disk-space (twice the
    etcd database free on control-plane nodes and in the snapshot store), kubeadm-backups (more
    than 3 under /etc/kubernetes/tmp: a warning), images (the target's control-plane images pull),
    removed-apis (clients still requesting APIs the target no longer serves).

    Exit codes: 0 no blocking check failed, 2 bad input (an unknown check name, --ignore without
    --reason, an unreachable API), 4 a blocking check failed.
    """
    from upgrader.services import preflight

    report = preflight.run_preflight(ctx.obj, preflight.PreflightRequest(
        cluster=cluster, target=to, ignore=tuple(ignore), reason=reason, quick=quick))
    if output is Output.JSON:
        emit_json(report.to_dict())
    else:
        rows = [(str(c.status), str(c.severity), c.name, c.reason, c.message) for c in report.checks]
        typer.echo(table(["status", "severity", "check", "reason", "message"], rows))
        verdict = "passed" if report.passed else "refused"
        typer.echo(f"\npreflight {verdict}: {report.cluster} to {report.target}")
    if not report.passed:
        blocking = ", ".join(c.name for c in report.checks if c.blocks)
        raise PreflightError(f"preflight refused the upgrade of {report.cluster} to {report.target}: {blocking} failed")
