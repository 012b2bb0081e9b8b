"""`upgrader cluster ...`: register clusters and keep their skip lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table

app = typer.Typer(help="Register clusters and the versions they must never be upgraded to.", no_args_is_help=True)


def _record_dict(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "kubeconfig": record.kubeconfig,
        "context": record.context,
        "transport": record.transport,
        "created_at": record.created_at.isoformat(),
        "skipped_versions": [
            {"version": s.version, "reason": s.reason, "by": s.created_by, "at": s.created_at.isoformat()}
            for s in record.skips
        ],
    }


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the cluster: lowercase letters, digits, '-'."),
    kubeconfig: Path = typer.Option(..., "--kubeconfig", help="Kubeconfig that reaches the cluster's API."),
    context: Optional[str] = typer.Option(None, "--context", help="Context to use (default: current-context)."),  # noqa: UP045
    output: Output = OUTPUT_OPTION,
) -> None:
    """Register a cluster. The file and context are checked; the cluster need not be reachable."""
    from upgrader.services import clusters

    record = clusters.register_cluster(ctx.obj, name=name, kubeconfig=kubeconfig, context=context)
    if output is Output.JSON:
        emit_json(_record_dict(record))
    else:
        typer.echo(f"cluster {record.name} added (kubeconfig {record.kubeconfig}, context {record.context})")


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """List registered clusters."""
    from upgrader.services import clusters

    records = clusters.list_clusters(ctx.obj)
    if output is Output.JSON:
        emit_json([_record_dict(r) for r in records])
        return
    if not records:
        typer.echo("no clusters registered (add one with `upgrader cluster add NAME --kubeconfig PATH`)")
        return
    rows = [(r.name, r.context, len(r.skips), r.kubeconfig) for r in records]
    typer.echo(table(["name", "context", "skipped", "kubeconfig"], rows))


@app.command("show")
def show(ctx: typer.Context, name: str, output: Output = OUTPUT_OPTION) -> None:
    """Show a cluster and its skip list."""
    from upgrader.services import clusters

    record = clusters.show_cluster(ctx.obj, name=name)
    if output is Output.JSON:
        emit_json(_record_dict(record))
        return
    doc = _record_dict(record)
    for key in ("name", "kubeconfig", "context", "created_at"):
        typer.echo(f"{key + ':':12} {doc[key]}")
    if record.skips:
        typer.echo("skipped versions:")
        typer.echo(table(["version", "reason", "by", "at"], [(s.version, s.reason, s.created_by, s.created_at)
                                                          for s in record.skips]))
    else:
        typer.echo("skipped versions: none")


@app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Forget a cluster. Its audit events stay in the ledger; the cluster itself is not touched."""
    from upgrader.services import clusters

    clusters.unregister_cluster(ctx.obj, name=name)
    typer.echo(f"cluster {name} removed")


@app.command("skip")
def skip(
    ctx: typer.Context,
    name: str,
    version: str = typer.Argument(..., help="The exact version never to upgrade to, e.g. v1.31.2."),
    reason: str = typer.Option(..., "--reason", help="Why (a CVE, a regression): shown in every plan."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Never plan through VERSION on this cluster (a bad patch, a CVE, a known regression)."""
    from upgrader.services import clusters

    result = clusters.skip_version(ctx.obj, cluster=name, version=version, reason=reason)
    if output is Output.JSON:
        emit_json(_record_dict(result.record) | {"skipped": str(result.version), "replaced_reason": result.replaced})
        return
    typer.echo(f"{name}: plans will skip {result.version}")
    if result.replaced is not None:
        typer.echo(f"{name}: {result.version} was already skipped; its reason was {result.replaced!r}, now it is "
                   f"{reason.strip()!r}")


@app.command("unskip")
def unskip(ctx: typer.Context, name: str, version: str) -> None:
    """Allow VERSION again."""
    from upgrader.services import clusters

    parsed, removed = clusters.unskip_version(ctx.obj, cluster=name, version=version)
    typer.echo(f"{name}: {parsed} is allowed again" if removed else f"{name}: {parsed} was not skipped")
