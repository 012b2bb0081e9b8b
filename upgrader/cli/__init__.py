"""The command line: parse, call a service, render, and turn errors into exit codes (only here).

Heavy imports (the kubernetes client, SQLAlchemy) stay out of this module so that ``--help`` and
``--version`` answer fast; the sub-commands import what they need when they run.
"""

from __future__ import annotations

import sys
from typing import Optional

import click
import typer

from upgrader import __version__
from upgrader.cli import cluster, db, plan, plans, sandbox
from upgrader.config import AppContext
from upgrader.errors import UpgraderError

app = typer.Typer(
    name="upgrader",
    help="Plan, apply and roll back upgrades of kubeadm-built Kubernetes clusters.\n\n"
    "Start with `upgrader cluster add`, then `upgrader plan CLUSTER --to VERSION`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(cluster.app, name="cluster")
app.add_typer(db.app, name="db")
app.add_typer(plans.app, name="plans")
app.add_typer(sandbox.app, name="sandbox")
app.command("plan")(plan.plan_command)
app.command("inventory")(plan.inventory_command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"upgrader {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db_url: Optional[str] = typer.Option(  # noqa: UP045 (typer needs Optional on 3.11)
        None, "--db", help="Ledger database URL or SQLite file path. Default: $UPGRADER_DB, "
        "else SQLite at $XDG_DATA_HOME/upgrader/ledger.db.", metavar="URL",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for unexpected errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = AppContext(db=db_url, debug=debug)
    ctx.call_on_close(ctx.obj.close)


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = command.main(args=argv, prog_name="upgrader", standalone_mode=False)
    except UpgraderError as e:
        typer.echo(f"error: {e.message}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # a bug: short message, traceback only when asked
        if debug:
            raise
        typer.echo(f"error: unexpected {e.__class__.__name__}: {e} (rerun with --debug for a traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
