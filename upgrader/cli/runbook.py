"""`upgrader runbook list|show|run`: incident runbooks, safe to follow under stress, recorded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table
from upgrader.errors import UsageError

if TYPE_CHECKING:
    from upgrader.services.runbook_files import Listed

app = typer.Typer(help="""Incident runbooks: written procedures for when an upgrade went wrong, each step shown
before it runs, confirmed, and recorded in the ledger with who and when.

Examples:

  upgrader runbook list

  upgrader runbook show rollback-last-upgrade

  upgrader runbook run uncordon-nodes-left-by-upgrader --cluster prod --dry-run

  upgrader runbook run restore-etcd-from-snapshot --cluster prod --param snapshot=12

  upgrader runbook run renew-certificates --cluster prod --yes -o json

A runbook run is a run like any other: `upgrader runs show RUN`, `upgrader resume RUN`.""",
                  no_args_is_help=True)

RUNBOOKS = typer.Option(None, "--runbooks", help="A directory of your own runbooks (NAME.yaml): they are added "
                        "to the shipped ones and replace one of the same name.")


@app.command("list")
def list_command(runbooks: Path | None = RUNBOOKS, output: Output = OUTPUT_OPTION) -> None:
    """The runbooks: name, title, params, and whether the file is valid. Every file is validated; one
    that is not is listed with its error ("invalid: FILE:LINE: step N (NAME): field F: ..."), the
    others as usual (exit 0 either way: `runbook show NAME` and `runbook run` refuse it, exit 2)."""
    from upgrader.services import runbooks as service

    found = service.listing(runbooks)
    if output is Output.JSON:
        emit_json({"runbooks": [_listed(r) for r in found]})
        return
    rows = []
    for r in found:
        if r.loaded is None:
            rows.append((r.name, "", "", f"invalid: {r.error}"))
        else:
            rb = r.loaded.runbook
            rows.append((rb.name, rb.title, " ".join(p.name for p in rb.params) or "", "ok"))
    typer.echo(table(["name", "title", "params", "status"], rows))


def _listed(r: Listed) -> dict[str, Any]:
    if r.loaded is None:
        return {"name": r.name, "title": None, "source": r.source, "params": [], "steps": None,
                "status": "invalid", "error": r.error}
    rb = r.loaded.runbook
    return {"name": rb.name, "title": rb.title, "source": r.source, "params": [p.name for p in rb.params],
            "steps": len(rb.steps), "status": "ok", "error": None}


@app.command("show")
def show_command(name: str = typer.Argument(..., help="The runbook's name (see `upgrader runbook list`)."),
                 runbooks: Path | None = RUNBOOKS, output: Output = OUTPUT_OPTION) -> None:
    """The runbook for a person: its purpose, when to use it, its params, every step (what it does,
    whether it asks before running, what to expect) and what to check after.

    `runbook run NAME --cluster C --dry-run` shows what each step will do on that cluster."""
    from upgrader.services import runbooks as service

    doc = service.show(name, runbooks)
    if output is Output.JSON:
        emit_json(doc)
        return
    typer.echo(render_show(doc))


def render_show(doc: dict[str, Any]) -> str:
    lines = [f"{doc['name']}: {doc['title']}", "", "PURPOSE", *_wrap(doc["purpose"]), "", "WHEN TO USE"]
    lines += [f"  - {w}" for w in doc["when_to_use"]]
    lines += ["", "PARAMS"]
    if not doc["params"]:
        lines.append("  (none besides --cluster)")
    for p in doc["params"]:
        need = "required" if p["required"] else (f"default {p['default']}" if p["default"] else "optional")
        lines.append(f"  {p['name']} ({p['kind']}, {need}): {p['help']}")
    lines += ["", "STEPS"]
    for n, s in enumerate(doc["steps"], 1):
        ask = "asks before it runs" if s["confirm"] else "runs without asking"
        lines.append(f"  {n}. {s['title'] or s['name']}  [{s['action']}, {ask}]")
        lines.append(f"     does: {s['does']}")
        if s["with"]:
            lines.append("     with: " + ", ".join(f"{k}={_arg(v)}" for k, v in s["with"].items()))
        if s["expect"]:
            lines.append(f"     expect: {s['expect']}")
    lines += ["", "AFTER, CHECK"] + [f"  - {a}" for a in doc["after"]]
    return "\n".join(lines)


def _arg(value: Any) -> str:
    return "[" + ", ".join(str(v) for v in value) + "]" if isinstance(value, list) else str(value)


def _wrap(text: str, width: int = 100) -> list[str]:
    import textwrap

    return ["  " + line for line in textwrap.wrap(text, width - 2)] or [""]


@app.command("run")
def run_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The runbook's name (see `upgrader runbook list`)."),
    cluster: str = typer.Option(..., "--cluster", "-c", help="A cluster registered with `upgrader cluster add`."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE, one per param (repeat the option)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Answer yes to every step's confirmation (automation; "
                             "required without a terminal)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show each step and what it would do on this cluster; "
                                 "no run, no lease, no change."),
    runbooks: Path | None = RUNBOOKS,
    output: Output = OUTPUT_OPTION,
) -> None:
    """Run a runbook on a cluster, step by step, under the cluster's lease.

    Before each step that changes something the step says exactly what it will do and waits for
    your answer (--yes answers yes). A step you decline stops the run there: nothing of it ran, and
    `upgrader resume RUN` continues, asking again only for the steps not yet confirmed. Every
    answer (who, when, what was shown) and every step's output is in the ledger
    (`upgrader runs show RUN`).

    Examples:

      upgrader runbook run rollback-last-upgrade --cluster prod

      upgrader runbook run uncordon-nodes-left-by-upgrader --cluster prod --param run=42 --yes

    Exit codes: 0 done (or dry run), 2 bad name, param or no terminal to ask on, 6 a step failed,
    7 another run holds the cluster, 130 stopped before a step (declined, or Ctrl-C): resumable.
    """
    from upgrader.cli.apply import run_and_render
    from upgrader.domain.runbooks import parse_params
    from upgrader.services import runbooks as service

    given = parse_params(param)
    if not dry_run and not yes and not sys.stdin.isatty():
        raise UsageError(f"runbook {name} asks before each step that changes {cluster} and there is no terminal "
                         f"to ask on: answer with --yes, or look first with --dry-run")
    previewed = service.preview(ctx.obj, name, cluster, given, extra=runbooks)
    doc = previewed.to_dict()
    if dry_run:
        if output is Output.JSON:
            emit_json(doc | {"dry_run": True})
        else:
            typer.echo(render_preview(doc))
        return
    if output is not Output.JSON:
        typer.echo(render_preview(doc, header=f"runbook {name} on {cluster}"), err=True)
    run_and_render(ctx, output, len(previewed.plan.steps),
                   lambda report, stop: service.run(ctx.obj, previewed, yes=yes, confirm=None if yes else ask,
                                                    report=report, stop=stop), live=yes)


def ask(step: Any, lines: list[str]) -> bool:
    """Show what the step will do, on stderr, and ask (the answer is recorded by the service).
    EOFError when the input ends (Ctrl-D, a closed pipe): the service records the step declined."""
    params = step.params or {}
    typer.echo(f"\nstep {step.n}: {params.get('title') or params.get('name')}", err=True)
    for line in lines:
        typer.echo(f"  {line}", err=True)
    if params.get("expect"):
        typer.echo(f"  expect: {params['expect']}", err=True)
    try:
        return bool(typer.confirm("Run this step?", default=False, err=True))
    except typer.Abort as e:  # typer's word for both: end of input is no answer, Ctrl-C stays Ctrl-C
        if isinstance(e.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise EOFError("end of input at the confirmation prompt") from None


def render_preview(doc: dict[str, Any], *, header: str | None = None) -> str:
    lines = [header or f"dry run of runbook {doc['runbook']} on {doc['cluster']} (nothing is changed)",
             f"  {doc['title']}"]
    if doc["params"]:
        lines.append("  params: " + ", ".join(f"{k}={v}" for k, v in doc["params"].items()))
    for s in doc["steps"]:
        ask_ = "asks first" if s["confirm"] else "no question"
        lines.append(f"{s['n']:>3}. {s['title'] or s['name']}  [{s['action']}, {ask_}]")
        lines += [f"       {w}" for w in s["would"]]
        if s["expect"]:
            lines.append(f"       expect: {s['expect']}")
    lines.append("after, check:")
    lines += [f"  - {a}" for a in doc["after"]]
    return "\n".join(lines)
