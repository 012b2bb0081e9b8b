"""Rendering for people (aligned tables) and for automation (exactly one JSON document on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import typer


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


OUTPUT_OPTION = typer.Option(Output.TABLE, "--output", "-o", help="table for people, json for automation.")


def emit_json(doc: Any) -> None:
    """Indented for a terminal; compact (and several times faster for big plans) into a pipe."""
    indent = 2 if sys.stdout.isatty() else None
    typer.echo(json.dumps(doc, indent=indent, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def preview_or_confirm(doc: dict[str, Any], output: Output, *, dry_run: bool, yes: bool,
                       render: Callable[[dict[str, Any]], str], no_terminal: str, question: str) -> bool:
    """The preview of a command that changes a cluster, and its consent: with ``dry_run`` the preview is
    printed (JSON: ``dry_run: true``) and False returned; without ``yes`` it is shown on stderr and
    ``question`` asked, or, with no terminal to ask on, UsageError(``no_terminal``) (exit 2). True: go on."""
    if dry_run:
        if output is Output.JSON:
            emit_json(doc | {"dry_run": True})
        else:
            typer.echo(render(doc))
        return False
    if not yes:
        if not sys.stdin.isatty():
            from upgrader.errors import UsageError

            raise UsageError(no_terminal)
        typer.echo(render(doc), err=True)
        typer.confirm(question, abort=True, err=True)
    return True
