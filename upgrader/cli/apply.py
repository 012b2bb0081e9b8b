"""`upgrader apply PLAN` and `upgrader resume RUN`: run a reviewed plan on the cluster's nodes."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json
from upgrader.cli.sandbox import parse_duration
from upgrader.errors import UsageError

PLAN_ID = typer.Argument(..., min=1, max=2**63 - 1, help="The plan's id (`upgrader plan` printed it).")
RUN_ID = typer.Argument(..., min=1, max=2**63 - 1, help="The run's id (apply printed it; `upgrader runs list`).")
EXIT = {"succeeded": 0, "failed": 6, "interrupted": 130, "rolled_back": 5}


def apply_command(
    ctx: typer.Context,
    plan_id: int = PLAN_ID,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a terminal)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print every command and API call, per step and node, "
                                 "in order; change nothing."),
    auto_rollback: bool = typer.Option(True, "--auto-rollback/--no-auto-rollback",
                                       help="On a failed step or gate, hand over to the rollback driver."),
    drain_timeout: str = typer.Option("10m", "--drain-timeout", help="How long a drain may wait for evictions "
                                      "a PodDisruptionBudget refuses (429), e.g. 90s, 10m."),
    gate_timeout: str = typer.Option("10m", "--gate-timeout", help="How long a health gate may wait."),
    gate_passes: int | None = typer.Option(None, "--gate-passes", min=1, max=100, show_default="3",
                                           help="Consecutive good readings a health gate needs (flap damping); "
                                           "default UPGRADER_GATE_PASSES, else 3."),
    gate_interval: str | None = typer.Option(None, "--gate-interval", show_default="2s",
                                             help="Time between a gate's readings; default "
                                             "UPGRADER_GATE_INTERVAL (seconds), else 2s."),
    force_drain: bool = typer.Option(False, "--force-drain", help="Delete pods a drain could not evict in time "
                                     "(recorded). Without it a blocked drain fails the step."),
    rehearse: bool = typer.Option(False, "--rehearse", help="Before each control-plane hop, rehearse the rollback "
                                  "to the snapshot just taken (restored into a scratch etcd beside this host); a "
                                  "failed rehearsal stops the run before the hop (exit 8)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Apply a stored plan: upgrade the cluster node by node, with drains, health gates and a ledger record.

    Refuses a plan already applied, a cluster changed since the plan was made (exit 3), a failing
    preflight (exit 4) and a cluster another run holds (exit 7), all before anything changes.
    Ctrl-C stops at the next safe point; `upgrader resume RUN` continues.

    Exit codes: 0 done, 2 bad input or no confirmation, 3 cluster changed, 4 preflight refused,
    6 a step failed (the run's record says what to do next), 7 another run holds the cluster,
    8 a rollback rehearsal (--rehearse) failed before its hop, 130 interrupted (resumable).
    """
    from upgrader.services import apply, runs
    from upgrader.services.run_options import run_options

    pace: dict[str, Any] = {}
    if gate_passes is not None:
        pace["gate_passes"] = gate_passes
    if gate_interval is not None:
        pace["gate_interval"] = parse_duration(gate_interval)
    options = run_options(auto_rollback=auto_rollback, drain_timeout=parse_duration(drain_timeout),
                          gate_timeout=parse_duration(gate_timeout), force_drain=force_drain, rehearse=rehearse,
                          **pace)
    if dry_run:
        plan, steps = runs.preview(ctx.obj, plan_id, options)
        if output is Output.JSON:
            emit_json({"plan": plan_id, "cluster": plan.cluster, "dry_run": True, "steps": steps})
        else:
            typer.echo(render_preview(plan_id, plan, steps))
        return
    _record, plan = apply.load_plan(ctx.obj, plan_id)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"apply changes cluster {plan.cluster}: confirm with --yes (there is no terminal to ask "
                             "on); review it first with `upgrader plans show " + str(plan_id) + "`")
        from upgrader.cli.plan import render_plan

        typer.echo(render_plan(plan_id, plan), err=True)
        typer.confirm(f"\nApply plan {plan_id} to cluster {plan.cluster} ({plan.source_version} -> {plan.target})?",
                      abort=True, err=True)
    _run(ctx, output, len(plan.steps), lambda report, stop: apply.apply(ctx.obj, plan_id, options, report=report,
                                                                         stop=stop))


def resume_command(
    ctx: typer.Context,
    run_id: int = RUN_ID,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a terminal)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Continue an interrupted or failed run with the options it started with.

    A step the run was in when it stopped is observed first (is the package installed, did the
    manifests move, is the node cordoned?) and only run again when it did not take effect.
    A lease left by a dead upgrader process on this host is taken over at once; another waits
    out its TTL (60 s). A runbook's run asks again before each step not yet confirmed (--yes answers
    for you). Exit codes as for apply.
    """
    from upgrader.services import apply, runs

    run, plan = runs.show_run(ctx.obj, run_id=run_id)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"resume changes cluster {run.cluster}: confirm with --yes "
                             "(there is no terminal to ask on)")
        done = sum(1 for s in run.steps if s.status.value in ("succeeded", "skipped"))
        typer.confirm(f"Resume run {run_id} on cluster {run.cluster} ({run.status.value}, {done}/{len(run.steps)} "
                      "steps done)?", abort=True, err=True)
    from upgrader.cli.runbook import ask  # a runbook's run asks before each step not confirmed yet

    _run(ctx, output, len(plan.steps), lambda report, stop: apply.resume(
        ctx.obj, run_id, report=report, stop=stop, yes=yes, confirm=None if yes else ask), live=yes)


def run_and_render(ctx: typer.Context, output: Output, total: int, start: Any, *, live: bool = True) -> None:
    """Drive a run with Ctrl-C handling and progress, print how it ended, exit with its code. ``live``
    False: no live view on the terminal (the run asks questions there)."""
    _run(ctx, output, total, start, live=live)


def _run(ctx: typer.Context, output: Output, total: int, start: Any, *, live: bool = True) -> None:
    from upgrader.cli.progress import Progress
    from upgrader.cli.runs import run_dict
    from upgrader.errors import LockLostError

    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        typer.echo("\nstopping at the next safe point (Ctrl-C again to stop at once)", err=True)

    signal.signal(signal.SIGINT, interrupted)
    try:
        with Progress(total=total, live=live and sys.stderr.isatty() and output is not Output.JSON) as progress:
            result = start(progress.report, stop)
    finally:
        signal.signal(signal.SIGINT, previous)
    run = result.run
    if output is Output.JSON:
        emit_json(run_dict(run, full=True) | ({"lease_lost": result.lease_lost} if result.lease_lost else {}))
    else:
        typer.echo(render_result(run))
    if result.lease_lost:
        raise LockLostError(f"run {run.id} stopped: {result.lease_lost}")
    code = EXIT.get(run.status.value, 1)
    if run.status.value == "failed" and isinstance((run.outcome or {}).get("exit_code"), int):
        code = int(run.outcome["exit_code"])  # a failed rehearsal: 8
    if _soaking(run):  # step one done: pausing for the soak is what the plan asked for
        code = 0
    if code:
        raise typer.Exit(code)


def _soaking(run: Any) -> bool:
    return run.status.value == "interrupted" and isinstance((run.outcome or {}).get("soaking"), dict)


def render_result(run: Any) -> str:
    outcome = dict(run.outcome or {})
    status = "soaking" if _soaking(run) else run.status.value
    if status == "succeeded" and outcome.get("summary"):  # a run that is not an upgrade says what it did
        return f"run {run.id} succeeded: {outcome['summary']} (`upgrader runs show {run.id}`)"
    if status == "succeeded":
        return f"run {run.id} succeeded: {run.cluster} is at {outcome.get('target')} (`upgrader runs show {run.id}`)"
    lines = [f"run {run.id} {status}: {outcome.get('error') or outcome.get('reason') or ''}".rstrip(": ")]
    if outcome.get("output"):
        lines += ["  last output:", *(f"    {line}" for line in str(outcome["output"]).splitlines())]
    if outcome.get("snapshot_id") is not None:
        lines.append(f"  known-good snapshot: {outcome['snapshot_id']}")
    nexts = outcome.get("next") or []
    for line in [nexts] if isinstance(nexts, str) else nexts:
        lines.append(f"  next: {line}")
    return "\n".join(lines)


def render_preview(plan_id: int, plan: Any, steps: list[dict[str, Any]]) -> str:
    lines = [f"dry run of plan {plan_id}: {plan.cluster} {plan.source_version} -> {plan.target} (nothing is changed)"]
    for step in steps:
        where = step["node"] or "cluster"
        batch = f" [batch {step['batch']}]" if step["batch"] is not None else ""
        lines.append(f"{step['n']:>3}. {step['action']} {where}{' ' + step['version'] if step['version'] else ''}"
                     f"{batch}")
        lines += [f"       {w}" for w in step["would"]]
    return "\n".join(lines)
