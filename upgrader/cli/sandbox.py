"""`upgrader sandbox ...`: the local rehearsal cluster (real etcd, a Kubernetes API, simulated nodes)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table
from upgrader.domain.text import excerpt
from upgrader.errors import UsageError

app = typer.Typer(help="A local kubeadm-like rehearsal cluster on real etcd.", no_args_is_help=True)

_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)(ms|s|m|h)?", re.ASCII)


MAX_DURATION = 7 * 24 * 3600.0  # a week: longer waits are typos, and overflow timers


def parse_duration(text: str) -> float:
    """5s, 2m, 300 (seconds), 500ms -> seconds."""
    m = _DURATION.fullmatch(text.strip())
    if not m:
        raise UsageError(f"invalid duration {excerpt(text)}: expected e.g. 30s, 5m or 500ms")
    seconds = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
    if seconds > MAX_DURATION:
        raise UsageError(f"duration {excerpt(text)} is over a week: give at most 168h")
    return seconds


def version_text(row: dict[str, Any]) -> str:
    """A `sandbox list` row's version, saying when it is only the last one known."""
    if row["version_source"] == "apiserver":
        return str(row["version"])
    if row["version_source"] == "last-known":
        return f"{row['version']} (last known)"
    return "unknown"


@app.command("up")
def up(
    ctx: typer.Context,
    name: str = typer.Argument("demo", help="Sandbox (and ledger cluster) name."),
    version: str = typer.Option("v1.30.6", "--version", help="Kubernetes version to start at (v1.24+)."),
    control_planes: int = typer.Option(3, "--control-planes", help="Control-plane nodes, 1 to 7 (an etcd member "
                                       "and an API server each, ~90 MiB; etcd advises at most 7 members)."),
    workers: int = typer.Option(3, "--workers", help="Worker nodes, 0 to 60 (a simulated kubelet each, "
                                 "~0.7 MiB and ~0.7% of a core idle)."),
    faults: Optional[list[str]] = typer.Option(None, "--faults", "--fault", help="KIND[:NODE][@VERSION], repeatable."),  # noqa: UP045
    directory: Optional[Path] = typer.Option(None, "--dir", help="Where its files live (default: $XDG_DATA_HOME/upgrader/sandboxes/NAME)."),  # noqa: UP045, E501
    api_port: Optional[int] = typer.Option(None, "--api-port", help="Load balancer (controlPlaneEndpoint) port."),  # noqa: UP045
    kubeadm_timeout: str = typer.Option("5m", "--kubeadm-timeout", help="kubeadm's wait for a new static pod."),
    kubelet_restart: str = typer.Option("1s", "--kubelet-restart", help="How long a restarted kubelet is NotReady."),
    wait: str = typer.Option("3m", "--wait", help="How long to wait for the sandbox to become healthy."),
    register: bool = typer.Option(True, "--register/--no-register", help="Register it in the ledger."),
    isolation: str = typer.Option("namespace", "--isolation", help="How node commands are kept off this machine: "
                                  "namespace (their own mount namespace) or best-effort (path rewriting, a guard "
                                  "against mistakes only)."),
    os_name: str = typer.Option("debian", "--os", help="The nodes' OS, so their package manager: debian (apt, "
                                "dpkg, kubernetes.list) or rhel (dnf, rpm, kubernetes.repo)."),
    node_etcd_tools: bool = typer.Option(False, "--node-etcd-tools/--no-node-etcd-tools", help="Put etcdctl on "
                                         "the nodes' PATH (this machine's, pointed at the sandbox's members). "
                                         "Without it, as on a kubeadm node, the etcd tools come from the etcd "
                                         "image through ctr."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Start a sandbox (or resume a stopped one as it is) and wait until it is healthy."""
    from upgrader.services import sandbox

    def given(param: str) -> bool:
        """Typed by the user: a stopped sandbox resumes as created, so only these are checked against it.

        By name: typer may bring its own click, whose ParameterSource is not click's.
        """
        source = ctx.get_parameter_source(param)
        return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")

    req = sandbox.UpRequest(
        name=name, version=version if given("version") else None,
        control_planes=control_planes if given("control_planes") else None,
        workers=workers if given("workers") else None, faults=list(faults or []), dir=directory, api_port=api_port,
        kubeadm_timeout=parse_duration(kubeadm_timeout) if given("kubeadm_timeout") else None,
        kubelet_restart=parse_duration(kubelet_restart) if given("kubelet_restart") else None,
        wait=parse_duration(wait), isolation=isolation if given("isolation") else None,
        os=os_name if given("os_name") else None,
        node_etcd_tools=node_etcd_tools if given("node_etcd_tools") else None,
    )
    result = sandbox.up(ctx.obj, req, register=register)
    cfg = result.config
    if output is Output.JSON:
        emit_json({"name": cfg.name, "resumed": result.resumed, "dir": str(cfg.dir), "server": cfg.server,
                   "kubeconfig": str(result.kubeconfig), "version": result.version,
                   "created_version": cfg.version, "nodes": cfg.nodes, "isolation": cfg.isolation,
                   "os": cfg.os, "node_etcd_tools": cfg.node_etcd_tools, "seconds": round(result.seconds, 2)})
        return
    verb = "resumed" if result.resumed else "up"
    typer.echo(f"sandbox {cfg.name} {verb} in {result.seconds:.1f}s: {len(cfg.control_planes)} control planes, "
               f"{len(cfg.workers)} workers at {result.version}, {cfg.os} nodes")
    typer.echo(f"  API:        {cfg.server}\n  kubeconfig: {result.kubeconfig}\n"
               f"  try:        kubectl --kubeconfig {result.kubeconfig} get nodes -o wide")
    if cfg.isolation != "namespace":
        typer.echo(f"  isolation:  {cfg.isolation}: node commands run on this machine with their paths rewritten, "
                   "which only guards against mistakes")


@app.command("down")
def down(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Sandbox name."),
    keep: bool = typer.Option(False, "--keep", help="Keep its files (etcd data, node roots) to resume later."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Stop everything a sandbox started, remove its files unless --keep, and unregister it."""
    from upgrader.services import sandbox

    result = sandbox.down(ctx.obj, name=name, keep=keep)
    if output is Output.JSON:
        emit_json({"name": name, "found": result.dir is not None, "kept": result.kept,
                   "unregistered": result.unregistered})
    elif result.dir is None:
        typer.echo(f"no sandbox named {name} (nothing to stop)")
    else:
        typer.echo(f"sandbox {name} stopped" + (f"; files kept in {result.dir}" if keep else "; files removed"))


@app.command("status")
def status(name: str = typer.Argument(..., help="Sandbox name."), output: Output = OUTPUT_OPTION) -> None:
    """Processes, ports, node versions and etcd members of a sandbox."""
    from upgrader.services import sandbox

    doc = sandbox.status(name=name)
    if output is Output.JSON:
        emit_json(doc)
        return
    at = doc["api_version"] or (f"{doc['last_known_version']} (last known)" if doc["last_known_version"] else "-")
    typer.echo(f"sandbox {doc['name']}: {doc['status']} (supervisor pid {doc['supervisor_pid'] or '-'}), "
               f"API {doc['server']} at {at}, readyz {'ok' if doc['ready'] else 'failing'}, {doc['os']} nodes")
    if doc["faults"]:
        typer.echo(f"faults: {', '.join(doc['faults'])}")
    if doc["nodes"]:
        rows = [(n["name"], "Ready" if n["ready"] else "NotReady", "" if n["schedulable"] else "cordoned",
                 n["kubelet_version"]) for n in doc["nodes"]]
        typer.echo("\n" + table(["node", "status", "scheduling", "kubelet"], rows))
    if doc["orphans"]:
        name = doc["name"]
        typer.echo(f"\nits supervisor is gone, but these processes of it still run: `upgrader sandbox down {name}` "
                   f"stops them (--keep keeps its files), `upgrader sandbox up {name}` resumes it")
        typer.echo(table(["process", "pid", "command"], [(o["process"], o["pid"], _short(o["command"]))
                                                          for o in doc["orphans"]]))
    if doc["processes"]:
        procs = [(p, e["pid"], "alive" if e["alive"] else "dead") for p, e in sorted(doc["processes"].items())]
        typer.echo("\n" + table(["process", "pid", "state"], procs))
    if doc["etcd_members"]:
        rows = [(m["name"], m["id"], ",".join(m["client_urls"]), "healthy" if m["healthy"] else "unhealthy")
                for m in doc["etcd_members"]]
        typer.echo("\n" + table(["etcd member", "id", "client url", "health"], rows))


def _short(command: str, width: int = 60) -> str:
    return command if len(command) <= width else command[: width - 3] + "..."


@app.command("list")
def list_(output: Output = OUTPUT_OPTION) -> None:
    """Sandboxes on this machine, at the version their API server reports (last known when stopped)."""
    from upgrader.services import sandbox

    rows = sandbox.list_sandboxes()
    if output is Output.JSON:
        emit_json(rows)
    elif not rows:
        typer.echo("no sandboxes (start one with `upgrader sandbox up demo`)")
    else:
        typer.echo(table(["name", "status", "version", "control planes", "workers", "server"],
                         [(r["name"], r["status"], version_text(r), r["control_planes"], r["workers"],
                           r["server"]) for r in rows]))


@app.command("fault")
def fault(
    name: str = typer.Argument(..., help="Sandbox name."),
    spec: Optional[str] = typer.Argument(None, help="KIND[:NODE][@VERSION]."),  # noqa: UP045
    clear: bool = typer.Option(False, "--clear", help="Remove SPEC (or every fault without SPEC)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Inject a fault into a running sandbox (a stopped one gets it at its next `up`), or --clear one."""
    from upgrader.services import sandbox

    result = sandbox.clear_faults(name=name, spec=spec) if clear else sandbox.inject_fault(name=name, spec=spec)
    if output is Output.JSON:
        emit_json({"name": name, "faults": result.faults, "pending": result.pending})
        return
    typer.echo(f"faults on {name}: {', '.join(result.faults) or 'none'}")
    if result.pending:
        typer.echo(f"sandbox {name} is stopped: {', '.join(result.pending)} takes effect at the next "
                   f"`upgrader sandbox up {name}`")


_DAYS = re.compile(r"([0-9]{1,4})(d|h)", re.ASCII)


def parse_days(text: str) -> float:
    """10d, 36h -> seconds (certificate lifetimes are counted in days)."""
    m = _DAYS.fullmatch(text.strip())
    if not m:
        raise UsageError(f"invalid duration {excerpt(text)}: expected days or hours, e.g. 10d or 36h")
    return float(m.group(1)) * (86400 if m.group(2) == "d" else 3600)


@app.command("certs")
def certs(
    name: str = typer.Argument(..., help="Sandbox name."),
    expire_in: str = typer.Option(..., "--expire-in", help="When the certificates expire from now: 10d, 36h, "
                                  "0d (expired now); at most 365d."),
    node: Optional[str] = typer.Option(None, "--node", help="Only this control-plane node (default: all)."),  # noqa: UP045
    output: Output = OUTPUT_OPTION,
) -> None:
    """Age a sandbox's kubeadm certificates so they expire soon, to rehearse `upgrader certs renew`.

    Rewrites when each control-plane node's certificates were issued, as `kubeadm certs
    check-expiration` reports them (the certificate authorities are left alone). The running static
    pods keep the certificates they started with until the kubelet restarts them: `crictl ps` and
    the mirror pods' containerStatuses startedAt show when that happened.
    """
    from upgrader.services import sandbox

    done = sandbox.age_certs(name=name, expire_in=parse_days(expire_in), node=node)
    if output is Output.JSON:
        emit_json(done)
        return
    typer.echo(f"certificates of {', '.join(done['nodes'])} in sandbox {name} now expire at {done['expires']}")


@app.command("exec", context_settings={"allow_interspersed_args": False})
def exec_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Sandbox name."),
    node: str = typer.Argument(..., help="Node name, e.g. cp-1."),
    command: list[str] = typer.Argument(..., help="Command and arguments (after --)."),
    timeout: str = typer.Option("10m", "--timeout", help="Give up after this long (also accepted after NODE)."),
) -> None:
    """Run a command on a sandbox node, as `ssh NODE -- COMMAND` would: output and exit code pass through."""
    from upgrader.services import sandbox

    argv = list(command)
    while argv and argv[0].startswith("-") and argv[0] != "--":  # options between NODE and `--`
        option = argv.pop(0)
        if option.startswith("--timeout="):
            timeout = option.split("=", 1)[1]
        elif option == "--timeout" and argv and argv[0] != "--":
            timeout = argv.pop(0)
        elif option == "--timeout":
            raise UsageError("--timeout needs a value, e.g. --timeout 30s")
        else:
            raise UsageError(f"unknown option {option} for sandbox exec: put the command after --, e.g. "
                             f"upgrader sandbox exec {name} {node} --timeout 30s -- COMMAND [ARG...]")
    argv = argv[1:] if argv and argv[0] == "--" else argv
    if not argv:
        raise UsageError("name a command to run: upgrader sandbox exec NAME NODE -- COMMAND [ARG...]")
    result = sandbox.exec_on_node(ctx.obj, name=name, node=node, argv=argv, timeout=parse_duration(timeout))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.stdout.flush()
    raise typer.Exit(result.exit_code)
