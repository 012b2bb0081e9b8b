"""`upgrader finalize RUN`: end a two-step hop's soak by raising the emulated version (no way back
without the etcd snapshot after it), then let the run go on."""

from __future__ import annotations

import sys

import typer

from upgrader.cli.apply import RUN_ID, run_and_render
from upgrader.cli.output import OUTPUT_OPTION, Output
from upgrader.errors import UsageError


def finalize_command(
    ctx: typer.Context,
    run_id: int = RUN_ID,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (required without a terminal)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Finalize a soaking two-step hop: raise the emulated version and continue the run.

    The run must be soaking (`upgrader apply` of a `--two-step` plan paused after step one). Finalize
    checks etcd's minimum patch when the soak held etcd's minor (refused with exit 4, nothing changed,
    still soaking), records the point of no return, removes --emulated-version from kubeadm-config and
    the manifests, upgrades etcd when it was held, verifies /version, then upgrades the kubelets and
    workers as planned. After it, `upgrader rollback` needs the etcd snapshot.

    Exit codes: 0 done (or soaking at the next two-step hop), 2 bad input or not soaking, 4 refused
    (nothing changed), 6 a step failed, 7 another run holds the cluster, 130 interrupted.
    """
    from upgrader.services import finalize

    run, _plan, soak, points = finalize.load_soaking(ctx.obj, run_id)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"finalize raises the emulated version on cluster {run.cluster} (no way back without "
                             "the etcd snapshot): confirm with --yes (there is no terminal to ask on)")
        typer.echo(f"run {run_id}: {run.cluster} at {soak['version']} emulating {soak['emulated']}, soak until "
                   f"{soak['until']}", err=True)
        for point in points:
            typer.echo(f"  point of no return: {point.kind}: {point.detail}", err=True)
        typer.confirm("Finalize (after this a rollback restores the etcd snapshot and loses later writes)?",
                      abort=True, err=True)
    run_and_render(ctx, output, len(_plan.steps),
                   lambda report, stop: finalize.finalize(ctx.obj, run_id, report=report, stop=stop))
