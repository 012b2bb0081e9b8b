"""`upgrader plans ...`: read back the plans the ledger holds."""

from __future__ import annotations

from typing import Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table

app = typer.Typer(help="Plans stored in the ledger: list them, show one again.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    cluster: Optional[str] = typer.Option(None, "--cluster", help="Only this cluster's plans."),  # noqa: UP045
    output: Output = OUTPUT_OPTION,
) -> None:
    """List stored plans, oldest first."""
    from upgrader.services import plans

    records = plans.list_plans(ctx.obj, cluster=cluster)
    if output is Output.JSON:
        emit_json([{"id": r.id, "cluster": r.cluster, "target": r.target, "created_at": r.created_at.isoformat(),
                    "created_by": r.created_by, "steps": len(r.steps)} for r in records])
        return
    if not records:
        typer.echo("no plans (make one with `upgrader plan CLUSTER --to VERSION`)")
        return
    rows = [(r.id, r.cluster, r.document["source"]["control_plane_version"], r.target, len(r.steps),
             r.created_by, r.created_at.strftime("%Y-%m-%d %H:%M")) for r in records]
    typer.echo(table(["id", "cluster", "from", "to", "steps", "by", "created"], rows))


@app.command("show")
def show(ctx: typer.Context, plan_id: int = typer.Argument(..., help="The id `upgrader plan` printed."),
         output: Output = OUTPUT_OPTION) -> None:
    """Show a stored plan exactly as `upgrader plan` printed it."""
    from upgrader.cli.plan import render_plan
    from upgrader.services import plans

    record, plan = plans.show_plan(ctx.obj, plan_id=plan_id)
    if output is Output.JSON:
        emit_json({"id": record.id, **record.document})
    else:
        typer.echo(render_plan(record.id, plan))
