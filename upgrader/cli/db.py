"""`upgrader db ...`: explicit schema migrations (PostgreSQL is never migrated implicitly)."""

from __future__ import annotations

import os

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json

app = typer.Typer(help="Ledger schema: upgrade, current revision, check.", no_args_is_help=True)


def _url(ctx: typer.Context) -> str:
    from upgrader.ledger.db import resolve_url

    return resolve_url(ctx.obj.db, os.environ)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Migrate the ledger schema to this version of upgrader."""
    from upgrader.ledger import db

    url = _url(ctx)
    db.upgrade(url)
    typer.echo(f"ledger at revision {db.current(url)}")


@app.command("current")
def current(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Print the ledger's schema revision and the one this upgrader expects."""
    from upgrader.ledger import db

    url = _url(ctx)
    rev, head = db.current(url), db.head()
    if output is Output.JSON:
        emit_json({"current": rev, "head": head, "up_to_date": rev == head})
    else:
        typer.echo(f"current: {rev or 'none (empty database)'}\nhead:    {head}")


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Exit 0 when the schema matches this upgrader, 2 (with the reason) when it does not."""
    from upgrader.errors import SchemaMismatchError
    from upgrader.ledger import db

    url = _url(ctx)
    rev, head = db.current(url), db.head()
    if rev != head:
        raise SchemaMismatchError(f"ledger schema is at {rev or 'no revision'}, this upgrader needs {head}: "
                                  "run `upgrader db upgrade`")
    typer.echo(f"ledger schema up to date ({head})")
