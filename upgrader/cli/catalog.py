"""`upgrader catalog ...`: the release catalog the planner chooses versions from."""

from __future__ import annotations

from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table

app = typer.Typer(
    help="The release catalog: the versions `plan` may propose. Built in, plus the upstream listing "
    "`catalog refresh` stores in the ledger.",
    no_args_is_help=True,
)


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    url: Optional[str] = typer.Option(  # noqa: UP045 (typer needs Optional on 3.11)
        None, "--url", metavar="URL", envvar="UPGRADER_CATALOG_URL", show_envvar=False,
        help="Base URL of the listing: a directory of stable-1.N.txt files (http or https). Default: "
        "$UPGRADER_CATALOG_URL, else https://dl.k8s.io/release.",
    ),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Read the upstream release listing and store it in the ledger.

    Each URL/stable-1.N.txt names the newest GA patch of minor 1.N (v1.33.13); its HTTP Last-Modified
    is taken as that patch's release date. Minors are read from v1.24 up to the first one that has no
    file past the newest built-in minor. A mirror with the same layout (any web server serving such a
    directory) works the same.

    The stored listing adds newer patches and minors to the built-in catalog; it never removes one.
    `plan` and `preflight` use both, unless --catalog FILE is given. A schedule tick refreshes a
    listing older than a day and carries on with the stored one when offline.

    Exit codes: 0 stored, 2 the listing could not be read or is malformed (nothing is stored), 7 the
    ledger is busy.
    """
    from upgrader.services import catalog

    result = catalog.refresh(ctx.obj, url=url)
    if output is Output.JSON:
        emit_json(result.to_dict())
        return
    newest = result.releases[-1].version
    added = ", ".join(str(v) for v in result.added) if result.added else "none"
    typer.echo(f"stored {len(result.releases)} releases from {result.source} (newest {newest}); "
               f"new to the catalog: {added}")


@app.command("show")
def show(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Show the newest patch of each minor the planner knows, with its release date and origin.

    ORIGIN is `listing` for a version the stored listing names (dated by its stable-1.N.txt), `built-in`
    for one only the list shipped with upgrader has (no date). Nothing is fetched: see `catalog refresh`.
    """
    from upgrader.services import catalog

    view = catalog.show(ctx.obj)
    if output is Output.JSON:
        emit_json(view.to_dict())
        return
    stored = view.stored
    if stored is None:
        typer.echo("no stored listing: the built-in catalog only (run `upgrader catalog refresh`)")
    else:
        typer.echo(f"listing from {stored.source}, fetched {_when(stored.fetched_at)}")
    rows: list[tuple[Any, ...]] = [
        (r.version.line, r.version, r.released.strftime("%Y-%m-%d") if r.released else None,
         "built-in" if r.version in view.builtin_only else "listing")
        for r in view.newest
    ]
    typer.echo(table(["minor", "newest", "released", "origin"], rows))


def _when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M UTC"))
