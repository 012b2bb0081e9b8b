"""`upgrader schedule ...`: scheduled upgrades from cron (windows, freezes, channels), and the tick."""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table
from upgrader.errors import UsageError

app = typer.Typer(help="Keep clusters current from cron: maintenance windows, freezes, release channels, "
                  "certificate renewal; `schedule tick` is the one command cron runs.", no_args_is_help=True)

CLUSTER = typer.Argument(..., help="A cluster registered with `upgrader cluster add`.")


@app.command("set")
def set_command(
    ctx: typer.Context,
    cluster: str = CLUSTER,
    window: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--window", metavar="'DAYS HH:MM-HH:MM'",
        help="A maintenance window, repeatable: 'sat 02:00-06:00', 'mon-fri 22:00-02:00' (crosses midnight: "
        "ends the next day), 'sat,sun 01:00-05:00', 'daily 03:00-04:00'. Wall time in --tz. Replaces the "
        "windows set before."),
    tz: Optional[str] = typer.Option(None, "--tz", help="IANA time zone of the windows and freezes (default UTC), "  # noqa: UP045
                                     "e.g. Europe/Berlin. DST days have shorter or longer windows."),
    channel: Optional[str] = typer.Option(  # noqa: UP045
        None, "--channel", metavar="patch|minor|pinned",
        help="patch: the newest patch of the current minor (default). minor: the next minor once its newest "
        "patch is older than --min-release-age, else patches. pinned: --target."),
    target: Optional[str] = typer.Option(None, "--target", help="With --channel pinned: vX.Y (its newest patch) "  # noqa: UP045
                                         "or vX.Y.Z."),
    min_release_age: Optional[str] = typer.Option(  # noqa: UP045
        None, "--min-release-age", metavar="AGE", help="For --channel minor: how old the next minor's newest "
        "patch must be (default 14d; e.g. 7d, 36h, 2w)."),
    freeze: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--freeze", metavar="YYYY-MM-DD..YYYY-MM-DD",
        help="No upgrade on these days (inclusive, in --tz), repeatable; replaces the freezes set before. "
        "--freeze none clears them."),
    max_unavailable: Optional[int] = typer.Option(None, "--max-unavailable", min=1, max=10_000,  # noqa: UP045
                                                  help="Workers drained at once (default 1)."),
    auto_rollback: Optional[bool] = typer.Option(  # noqa: UP045
        None, "--auto-rollback/--no-auto-rollback",
        help="Roll back to the hop's snapshot when a step or gate fails (default on)."),
    notify: Optional[str] = typer.Option(None, "--notify", metavar="URL", help="POST each tick's summary of "  # noqa: UP045
                                         "this cluster (JSON) here when something happened; 'none' clears it."),
    cert_horizon: Optional[int] = typer.Option(  # noqa: UP045
        None, "--cert-horizon", min=1, max=365, metavar="DAYS",
        help="Renew kubeadm's certificates in a window when one expires within this many days (default 30)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Schedule a cluster's upgrades, or change its schedule (only the options given change).

    A new schedule needs at least one --window. Each tick (`upgrader schedule tick`, from cron) then
    upgrades the cluster inside its windows, outside its freezes, to what its channel picks, skipping
    the versions `upgrader cluster skip` banned. A target a scheduled run was rolled back from is not
    retried until the schedule is set again.

    Exit codes: 0 set, 2 bad window, zone, freeze, channel or URL (the part is named).
    """
    from upgrader.services import schedule

    given: dict[str, Any] = {"window": window, "tz": tz, "channel": channel, "target": target,
                             "min_release_age": min_release_age, "freeze": freeze,
                             "max_unavailable": max_unavailable, "auto_rollback": auto_rollback,
                             "notify": notify, "cert_horizon": cert_horizon}
    changes = schedule.parse_changes({k: v for k, v in given.items() if v is not None})
    shown = schedule.set_schedule(ctx.obj, cluster, changes)
    _show(shown.to_dict(), output)


@app.command("show")
def show_command(ctx: typer.Context, cluster: str = CLUSTER, output: Output = OUTPUT_OPTION) -> None:
    """A cluster's schedule: its policy, the window open now or the next one, a freeze in force.

    Exit codes: 0 shown, 2 no such cluster, or it has no schedule.
    """
    from upgrader.services import schedule

    shown = schedule.show_schedule(ctx.obj, cluster)
    if shown is None:
        raise UsageError(f"cluster {cluster} has no schedule (set one with `upgrader schedule set {cluster} "
                         "--window 'sat 02:00-06:00'`)")
    _show(shown.to_dict(), output)


@app.command("clear")
def clear_command(ctx: typer.Context, cluster: str = CLUSTER, output: Output = OUTPUT_OPTION) -> None:
    """Unschedule a cluster (its runs and history stay). Exit codes: 0 cleared or had none, 2 no such cluster."""
    from upgrader.services import schedule

    cleared = schedule.clear_schedule(ctx.obj, cluster)
    if output is Output.JSON:
        emit_json({"cluster": cluster, "cleared": cleared})
    else:
        typer.echo(f"{cluster}: schedule cleared" if cleared else f"{cluster}: had no schedule")


@app.command("list")
def list_command(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """Every scheduled cluster: channel, zone, windows, and where it stands now."""
    from upgrader.services import schedule

    found = schedule.list_schedules(ctx.obj)
    if output is Output.JSON:
        emit_json({"schedules": [s.to_dict() for s in found]})
        return
    rows = []
    for s in found:
        doc = s.to_dict()
        policy = doc["policy"]
        now = "frozen" if doc["frozen_until"] else ("open" if doc["open_window"] else "closed")
        rows.append([s.cluster, _channel(policy), policy["tz"], "; ".join(policy["windows"]), now,
                     (doc["next_window"] or {}).get("start")])
    typer.echo(table(["cluster", "channel", "tz", "windows", "now", "next window"], rows) if rows
               else "no scheduled clusters (see `upgrader schedule set --help`)")


@app.command("tick")
def tick_command(
    ctx: typer.Context,
    cluster: Optional[list[str]] = typer.Option(None, "--cluster", help="Only this cluster (repeatable)."),  # noqa: UP045
    now: Optional[str] = typer.Option(  # noqa: UP045
        None, "--now", metavar="ISO8601", help="Decide windows and freezes as if it were this time "
        "(e.g. 2026-12-05T03:00:00+01:00; default: the clock). Leases and certificates use the clock."),
    catalog_url: Optional[str] = typer.Option(  # noqa: UP045
        None, "--catalog-url", metavar="URL", help="Where the release listing is refreshed from when the stored "
        "one is older than a day (default: $UPGRADER_CATALOG_URL, else https://dl.k8s.io/release)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Do what each scheduled cluster's schedule says now: the one command cron runs (every 5 minutes).

    Outside a window or inside a freeze it does nothing (no API call). Inside a window it resumes the
    cluster's own paused or killed run, or upgrades it to what its channel picks (plan, preflight,
    snapshot, apply), never starting a hop that would not finish before the window ends, or renews
    certificates that expire within the horizon. A cluster another run holds is reported, not waited
    for. Safe to run from several hosts sharing one PostgreSQL ledger.

    Exit codes: 0 nothing to do or all good, 5 a cluster was rolled back, 6 a cluster needs a person,
    7 a cluster was busy, 2 bad input. Most severe wins.
    """
    from upgrader.services import schedule_tick

    when = _parse_now(now) if now is not None else None
    loggers: list[Any] = []

    def working() -> None:  # only a tick with work to do pays for the logging set-up (~0.1 s)
        from upgrader import logs

        logs.configure()  # stderr (JSON lines under cron): stdout carries the summary alone
        loggers.append(logs.get_logger("upgrader.schedule"))

    def report(event: Any) -> None:
        if loggers:
            loggers[0].info("step", run_id=event.run_id, n=event.n, action=event.action, node=event.node,
                            version=event.version, status=event.status, detail=event.detail)

    result = schedule_tick.tick(ctx.obj, clusters=tuple(cluster or ()), now=when, catalog_url=catalog_url,
                                report=report, working=working)
    if output is Output.JSON:
        emit_json(result.to_dict())
    else:
        rows = [[c.cluster, c.action, c.run_id, c.detail] for c in result.clusters]
        typer.echo(table(["cluster", "action", "run", "detail"], rows) if rows else "no scheduled clusters")
        if result.catalog and result.catalog.get("warning"):
            typer.echo(f"warning: {result.catalog['warning']}", err=True)
        for sent in result.notified:
            if not sent["ok"]:
                typer.echo(f"warning: webhook for {', '.join(sent['clusters'])}: {sent['error']}", err=True)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _parse_now(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--now {text[:40]!r}: expected an ISO 8601 time such as 2026-12-05T03:00:00Z") from None
    if when.tzinfo is None:
        raise UsageError(f"--now {text[:40]!r}: give the offset (Z or +01:00): a time without one is ambiguous")
    return when.astimezone(UTC)


def _upgrader() -> str:
    """This upgrader's console script, by its absolute path (cron's PATH is short)."""
    found = shutil.which("upgrader") or str(Path(sys.executable).with_name("upgrader"))
    return str(Path(found).absolute())


EVERY = typer.Option(5, "--every", min=1, max=60, metavar="MINUTES",
                     help="Minutes between ticks: a divisor of 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60).")


@app.command("cron-line")
def cron_line_command(
    every: int = EVERY,
    log: Optional[str] = typer.Option(None, "--log", metavar="FILE", help="Append each tick's JSON summary "  # noqa: UP045
                                      "here (default: cron mails it)."),
) -> None:
    """Print crontab lines that run the tick (add them with `crontab -e`; root's crontab on the
    orchestrator host). The ledger comes from UPGRADER_DB in cron's environment: for a PostgreSQL
    URL with a password, prefer the systemd units and their root-only EnvironmentFile."""
    from upgrader.domain.schedule_units import cron_line

    typer.echo(cron_line(upgrader=_upgrader(), every_minutes=every, log=log), nl=False)


@app.command("systemd")
def systemd_command(
    every: int = EVERY,
    env_file: Optional[str] = typer.Option(  # noqa: UP045
        None, "--env-file", metavar="FILE", help="An EnvironmentFile (root-only, 0600) with UPGRADER_DB=... "
        "for a PostgreSQL ledger, e.g. /etc/upgrader/env."),
) -> None:
    """Print a systemd service and timer that run the tick. Save each under /etc/systemd/system/ with
    the name shown, then `systemctl daemon-reload && systemctl enable --now upgrader-tick.timer`."""
    from upgrader.domain.schedule_units import systemd_units

    for name, text in systemd_units(upgrader=_upgrader(), every_minutes=every, env_file=env_file).items():
        typer.echo(f"# --- {name}\n{text}")


@app.command("cronjob")
def cronjob_command(
    image: str = typer.Option(..., "--image", help="A container image with upgrader installed."),
    namespace: str = typer.Option("upgrader", "--namespace", help="Namespace of the CronJob."),
    name: str = typer.Option("upgrader-tick", "--name", help="Name of the CronJob."),
    secret: str = typer.Option("upgrader-db", "--secret", help="Secret holding the PostgreSQL URL."),
    secret_key: str = typer.Option("url", "--secret-key", help="Key of the URL in that Secret."),
    snapshot_claim: str = typer.Option(
        "upgrader-snapshots", "--snapshot-claim", help="PersistentVolumeClaim for the snapshot store: a rollback "
        "needs the files after the pod is gone."),
    mount: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--mount", metavar="SECRET=DIR", help="Mount a Secret read-only at DIR (kubeconfigs, an SSH "
        "directory), repeatable. Register clusters with kubeconfig paths under such a DIR."),
    every: int = EVERY,
) -> None:
    """Print a Kubernetes CronJob that runs ticks from a management cluster, the ledger's PostgreSQL URL
    read from a Secret (`kubectl create secret generic upgrader-db --from-literal=url=postgresql://...`).
    The image's entrypoint must be `upgrader`. concurrencyPolicy Forbid: while one tick drives a long
    upgrade, the next starts after it (use cron on hosts when many clusters share windows)."""
    import yaml

    from upgrader.domain.schedule_cronjob import cronjob_object

    mounts = {}
    for item in mount or ():
        secret_name, sep, directory = item.partition("=")
        if not sep or not secret_name or not directory:
            raise UsageError(f"--mount {item[:60]!r}: expected SECRET=DIR, e.g. kubeconfigs=/etc/upgrader/kube")
        mounts[secret_name] = directory
    doc = cronjob_object(name=name, namespace=namespace, image=image, schedule=f"*/{every} * * * *" if every < 60
                         else "0 * * * *", secret=secret, secret_key=secret_key, snapshot_claim=snapshot_claim,
                         secret_mounts=mounts)
    typer.echo(yaml.safe_dump(doc, sort_keys=False), nl=False)


def _channel(policy: dict[str, Any]) -> str:
    return f"pinned {policy.get('target')}" if policy.get("channel") == "pinned" else str(policy.get("channel"))


def _show(doc: dict[str, Any], output: Output) -> None:
    if output is Output.JSON:
        emit_json(doc)
        return
    policy = doc["policy"]
    lines = [f"cluster {doc['cluster']}: channel {_channel(policy)}, zone {policy['tz']}"]
    lines += [f"  window: {w}" for w in policy["windows"]]
    lines += [f"  freeze: {f}" for f in policy.get("freezes", [])]
    lines.append(f"  max unavailable {policy.get('max_unavailable')}, auto-rollback "
                 f"{'on' if policy.get('auto_rollback') else 'off'}, certificates renewed within "
                 f"{policy.get('cert_horizon_days')} days" + (", notify on" if policy.get("notify") else ""))
    if doc["frozen_until"]:
        lines.append(f"  now: frozen until {doc['frozen_until']}")
    elif doc["open_window"]:
        lines.append(f"  now: in a window until {doc['open_window']['end']}")
    if doc["next_window"]:
        lines.append(f"  next window: {doc['next_window']['start']} - {doc['next_window']['end']}")
    typer.echo("\n".join(lines))
