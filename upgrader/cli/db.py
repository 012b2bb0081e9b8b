"""`upgrader db ...`: explicit schema migrations (PostgreSQL is never migrated implicitly)."""

from __future__ import annotations

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json

app = typer.Typer(help="Ledger schema: upgrade, current revision, check.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Migrate the ledger schema to this version of upgrader."""
    from upgrader.services import ledger

    state = ledger.upgrade_schema(ctx.obj)
    typer.echo(f"ledger at revision {state.current}")


@app.command("current")
def current(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Print the ledger's schema revision and the one this upgrader expects."""
    from upgrader.services import ledger

    state = ledger.schema_state(ctx.obj)
    if output is Output.JSON:
        emit_json({"current": state.current, "head": state.head, "up_to_date": state.up_to_date})
    else:
        typer.echo(f"current: {state.current or 'none (empty database)'}\nhead:    {state.head}")


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Exit 0 when the schema matches this upgrader, 2 (with the reason) when it does not."""
    from upgrader.services import ledger

    state = ledger.check_schema(ctx.obj)
    typer.echo(f"ledger schema up to date ({state.head})")
