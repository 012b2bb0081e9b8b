"""The command line: parse, call a service, render, and turn errors into exit codes (only here).

Heavy imports (the kubernetes client, SQLAlchemy) stay out of this module so that ``--help`` and
``--version`` answer fast; the sub-commands import what they need when they run.
"""

from __future__ import annotations

import gc
import io
import signal
import sys
import threading
from typing import Optional

import typer

from upgrader import __version__
from upgrader.cli import (
    apply,
    certs,
    cluster,
    db,
    finalize,
    node,
    plan,
    plans,
    preflight,
    rollback,
    runbook,
    runs,
    sandbox,
    schedule,
    snapshot,
)
from upgrader.cli import catalog as catalog_cli
from upgrader.errors import UpgraderError
from upgrader.services.wiring import DEFAULT_BUSY_TIMEOUT, AppContext

app = typer.Typer(
    name="upgrader",
    help="Plan, apply and roll back upgrades of kubeadm-built Kubernetes clusters.\n\n"
    "Start with `upgrader cluster add`, then `upgrader plan CLUSTER --to VERSION`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs ~250 ms of imports per call
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(certs.app, name="certs")
app.add_typer(cluster.app, name="cluster")
app.add_typer(db.app, name="db")
app.add_typer(node.app, name="node")
app.add_typer(plans.app, name="plans")
app.add_typer(runbook.app, name="runbook")
app.add_typer(runs.app, name="runs")
app.add_typer(sandbox.app, name="sandbox")
app.add_typer(schedule.app, name="schedule")
app.add_typer(snapshot.app, name="snapshot")
app.add_typer(catalog_cli.app, name="catalog")
app.command("plan")(plan.plan_command)
app.command("inventory")(plan.inventory_command)
app.command("preflight")(preflight.preflight_command)
app.command("apply")(apply.apply_command)
app.command("resume")(apply.resume_command)
app.command("finalize")(finalize.finalize_command)
app.command("history")(runs.history_command)
app.command("rollback")(rollback.rollback_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"upgrader {__version__}")
        raise typer.Exit()


MAX_BUSY_TIMEOUT = 86_400.0  # a day: longer is a mistake, not a wait


def _finite(value: float) -> float:
    if value != value:  # NaN passes click's range check
        raise typer.BadParameter("not a number of seconds")
    return value


@app.callback()
def _root(
    ctx: typer.Context,
    db_url: Optional[str] = typer.Option(  # noqa: UP045 (typer needs Optional on 3.11)
        None, "--db", help="Ledger database URL or SQLite file path. Default: $UPGRADER_DB, "
        "else SQLite at $XDG_DATA_HOME/upgrader/ledger.db.", metavar="URL",
    ),
    busy_timeout: float = typer.Option(
        DEFAULT_BUSY_TIMEOUT, "--busy-timeout", envvar="UPGRADER_BUSY_TIMEOUT", min=0, max=MAX_BUSY_TIMEOUT,
        callback=_finite, metavar="SECONDS", show_default=False,
        help="How long to wait for a ledger another process is writing, then exit 7 "
        f"(default {DEFAULT_BUSY_TIMEOUT:g}).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = AppContext(db=db_url, debug=debug, busy_timeout=busy_timeout)
    ctx.call_on_close(ctx.obj.close)


# Start-up runs without the cyclic garbage collector: loading SQLAlchemy (and the kubernetes client)
# builds ~200,000 objects that live as long as the process, and the collector rescans them over and
# over while they load, ~50 ms of a ~300 ms command. A short command ends before it matters; one
# still running after this many seconds gets the collector back, the start-up objects frozen out of
# its way (the gc.freeze/enable pattern of the gc module's documentation).
GC_BACK_AFTER_SECONDS = 2.0


def _collect_again() -> None:
    gc.freeze()
    gc.enable()


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, `timeout`, a CI runner or systemd giving up) unwinds like Ctrl-C, so every
    ``finally`` runs: private certificate copies, partial snapshot files and SSH masters are removed."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminated)
    gc.disable()
    timer = threading.Timer(GC_BACK_AFTER_SECONDS, _collect_again)
    timer.daemon = True
    timer.start()
    code = _run(argv)
    timer.cancel()
    # Everything is closed by now (the ledger on context close). Skip the interpreter's final
    # collection over the ~200,000 objects SQLAlchemy and the client libraries built: it costs
    # ~90 ms on every short command and frees nothing the process exit does not.
    gc.freeze()
    sys.exit(code)


def _run(argv: list[str] | None) -> int:
    """Run one command; the exit code for its outcome. The only place errors become exit codes, and
    the only place they are printed: every message goes out with its secrets hidden."""
    command = typer.main.get_command(app)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = command.main(args=argv, prog_name="upgrader", standalone_mode=False)
    except UpgraderError as e:
        _error(f"error: {e.message}")
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):  # Ctrl-C, or EOF at a prompt as typer reports it
        typer.echo("interrupted", err=True)
        return 130
    except typer.TyperException as e:
        # typer's public base of every parsing error (unknown option or command, missing argument,
        # bad value): each carries its exit code (2 for usage) and shows itself with the usage text,
        # which may quote the bad value.
        show = getattr(e, "show", None)
        if callable(show):
            shown = io.StringIO()
            show(file=shown)
            _error(shown.getvalue().rstrip("\n"))
        else:
            _error(f"Error: {e.format_message()}")
        return e.exit_code
    except Exception as e:  # a bug: short message, traceback only when asked
        if debug:
            import traceback

            _error(traceback.format_exc().rstrip("\n"))
        else:
            _error(f"error: unexpected {e.__class__.__name__}: {e} (rerun with --debug for a traceback)")
        return 1
    return code if isinstance(code, int) else 0


def _error(text: str) -> None:
    from upgrader.domain.redaction import redact  # here: --help and --version never need it

    typer.echo(redact(text), err=True)
