"""`upgrader runs list|show` and `upgrader history CLUSTER`: what runs did, step by step, and who did what."""

from __future__ import annotations

from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table

app = typer.Typer(help="Runs of plans: list them, show one step by step.", no_args_is_help=True)
RUN_ID = typer.Argument(..., min=1, max=2**63 - 1, help="The run's id (see `upgrader runs list`).")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_dict(run: Any, *, full: bool = False) -> dict[str, Any]:
    done = sum(1 for s in run.steps if s.status.value in ("succeeded", "skipped"))
    doc: dict[str, Any] = {
        "id": run.id, "plan": run.plan_id, "cluster": run.cluster, "status": run.status.value,
        "started_by": run.started_by, "host": run.host, "command_line": run.command_line,
        "fencing_token": run.fencing_token, "created_at": _iso(run.created_at), "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at), "steps_done": done, "steps_total": len(run.steps),
        "outcome": dict(run.outcome) if run.outcome is not None else None,
        "rollback_of": run.rollback_of, "rolled_back_by": list(run.rolled_back_by),
    }
    if full:
        doc["options"] = dict(run.options)
        doc["steps"] = [{
            "n": s.n, "action": s.action, "node": s.node, "version": s.version, "batch": s.batch,
            "status": s.status.value, "attempts": s.attempts, "started_at": _iso(s.started_at),
            "finished_at": _iso(s.finished_at), "seconds": _seconds(s), "outputs": s.outputs, "error": s.error,
        } for s in run.steps]
    return doc


def _seconds(step: Any) -> float | None:
    if step.started_at is None or step.finished_at is None:
        return None
    return round((step.finished_at - step.started_at).total_seconds(), 3)


@app.command("list")
def list_(
    ctx: typer.Context,
    cluster: Optional[str] = typer.Argument(None, help="Only this cluster's runs."),  # noqa: UP045
    output: Output = OUTPUT_OPTION,
) -> None:
    """List runs, newest first."""
    from upgrader.services import runs

    records = runs.list_runs(ctx.obj, cluster=cluster)
    if output is Output.JSON:
        emit_json([run_dict(r) for r in records])
        return
    if not records:
        typer.echo("no runs (start one with `upgrader apply PLAN`)")
        return
    rows = [(r.id, r.cluster, r.plan_id, _status(r), f"{sum(1 for s in r.steps if s.status.value == 'succeeded')}"
             f"/{len(r.steps)}", f"{r.started_by}@{r.host}", r.created_at.strftime("%Y-%m-%d %H:%M")) for r in records]
    typer.echo(table(["id", "cluster", "plan", "status", "steps", "by", "started"], rows))


def _status(run: Any) -> str:
    """The run's status, saying so when an interrupted run is a two-step hop's soak."""
    soaking = run.status.value == "interrupted" and isinstance((run.outcome or {}).get("soaking"), dict)
    return "interrupted (soaking)" if soaking else str(run.status.value)


@app.command("show")
def show(ctx: typer.Context, run_id: int = RUN_ID, output: Output = OUTPUT_OPTION) -> None:
    """Show a run's steps: status, attempts, timings, outputs and errors."""
    from upgrader.cli.apply import render_result
    from upgrader.services import runs

    run, _plan = runs.show_run(ctx.obj, run_id=run_id)
    if output is Output.JSON:
        emit_json(run_dict(run, full=True))
        return
    typer.echo(f"run {run.id}: plan {run.plan_id} on {run.cluster}, {run.status.value}; started by "
               f"{run.started_by}@{run.host} at {run.created_at:%Y-%m-%d %H:%M:%S}")
    if run.rollback_of is not None:
        typer.echo(f"a rollback of run {run.rollback_of}")
    if run.rolled_back_by:
        typer.echo(f"rolled back by run {', '.join(str(r) for r in run.rolled_back_by)}")
    rows = [(s.n, s.action, s.node, s.version, s.batch, s.status.value, s.attempts, _seconds(s),
             (s.error or "")[:70]) for s in run.steps]
    typer.echo(table(["n", "action", "node", "version", "batch", "status", "tries", "secs", "error"], rows))
    if run.status.value != "running":
        typer.echo("\n" + render_result(run))


def history_command(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A cluster registered with `upgrader cluster add`."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Everything done to a cluster: runs, snapshots, overrides and other events, with who and from where."""
    from upgrader.services import runs

    found = runs.history(ctx.obj, cluster=cluster)
    if output is Output.JSON:
        emit_json({
            "cluster": found.cluster,
            "runs": [run_dict(r) for r in found.runs],
            "snapshots": [{"id": s.id, "created_at": _iso(s.created_at), "created_by": s.created_by,
                           "label": s.label, "known_good": s.known_good, "status": s.status.value,
                           "run_id": s.run_id} for s in found.snapshots],
            "events": [{"id": e.id, "at": _iso(e.at), "kind": e.kind, "actor": e.actor, "host": e.host,
                        "run_id": e.run_id, "command_line": e.command_line, "data": e.data} for e in found.events],
        })
        return
    rows = [(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.kind, e.run_id, f"{e.actor}@{e.host}", _summary(e.data))
            for e in sorted(found.events, key=lambda e: e.id)]
    typer.echo(f"history of {found.cluster}: {len(found.runs)} run(s), {len(found.snapshots)} snapshot(s)")
    typer.echo(table(["at", "event", "run", "by", "what"], rows) if rows else "no events yet")


def _summary(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    keys = ("plan", "target", "snapshot", "error", "reason", "ignored", "check", "lease")
    return ", ".join(f"{k}={str(data[k])[:50]}" for k in keys if k in data)[:100]
