"""`upgrader node exec`, and the --ssh-* options `cluster add|set` share (how nodes are reached)."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table
from upgrader.cli.sandbox import parse_duration

app = typer.Typer(help="Reach a registered cluster's nodes (over ssh, the sandbox, or this machine).",
                  no_args_is_help=True)

# The options `cluster add` and `cluster set` share (typer reads them from the signature).
TRANSPORT = typer.Option(None, "--transport", metavar="ssh|local",
                         help="How nodes are reached: ssh (the default), or local (upgrader runs on the node).")
SSH_USER = typer.Option(None, "--ssh-user", help="Log in as this user (sudo -n is used unless it is root).")
SSH_PORT = typer.Option(None, "--ssh-port", min=1, max=65535, help="SSH port (default: ssh's, usually 22).")
SSH_IDENTITY = typer.Option(None, "--ssh-identity", metavar="PATH", help="Private key file to log in with.")
SSH_JUMP = typer.Option(None, "--ssh-jump", metavar="[USER@]HOST[:PORT]",
                        help="Bastion to go through (ssh -J; its host key is checked by your ssh config).")
SSH_OPTION = typer.Option(None, "--ssh-option", metavar="KEY=VALUE",
                          help="Extra ssh -o option, repeatable; KEY= removes one. Only connection tuning is "
                          "accepted (ServerAliveInterval, ConnectTimeout, Ciphers, KexAlgorithms, MACs, "
                          "IdentitiesOnly, ...; a refusal lists them all); the rest belongs in your ssh config.")
ETCD_TOOLS = typer.Option(None, "--etcd-tools", metavar="host|node",
                          help="Where etcdctl runs: host (this machine, the default) or node (the first "
                          "control-plane node's own etcdctl, for a host without it; snapshots are checked on "
                          "the node and streamed back).")
SSH_KNOWN_HOSTS = typer.Option(None, "--ssh-known-hosts", metavar="PATH",
                               help="known_hosts file to check node keys against (default: yours).")


def _path(value: str) -> str:
    """Identity and known_hosts paths are kept absolute (or ~-relative, for a shared ledger)."""
    return value if value.startswith(("~", "/")) else os.path.abspath(value)


def ssh_changes(*, user: str | None, port: int | None, identity: str | None, jump: str | None,
                options: list[str] | None, known_hosts: str | None = None,
                etcd_tools: str | None = None) -> dict[str, Any]:
    from upgrader.domain.node_access import parse_option, validate_etcd_tools

    changes: dict[str, Any] = {}
    if etcd_tools is not None:
        changes["etcd_tools"] = validate_etcd_tools(etcd_tools)
    for key, value in (("user", user), ("port", port), ("jump", jump)):
        if value is not None:
            changes[key] = value
    if identity is not None:
        changes["identity"] = _path(identity)
    if known_hosts is not None:
        changes["known_hosts"] = _path(known_hosts)
    if options:
        changes["options"] = dict(parse_option(o) for o in options)
    return changes


def render_access(access: Any) -> list[str]:
    """`cluster show`'s lines about node access."""
    settings = access.settings
    if access.kind == "sandbox":
        return [f"{'nodes via:':12} sandbox ({settings.get('dir')})"]
    if access.kind == "local":
        return [f"{'nodes via:':12} this machine (local, root {settings.get('root', '/')})"]
    shown = [f"{k}={settings[k]}" for k in ("user", "port", "identity", "jump", "known_hosts") if k in settings]
    shown += [f"-o {k}={v}" for k, v in (settings.get("options") or {}).items()]
    lines = [f"{'nodes via:':12} ssh {' '.join(shown) if shown else '(ssh defaults)'}",
             f"{'etcd tools:':12} " + ("on the first control-plane node (node)" if settings.get("etcd_tools") == "node"
                                      else "this machine's (host)")]
    if access.nodes:
        rows = [(n["node"], n["address"], n["address_from"], n["user"], n["port"], n["jump"],
                 " ".join(f"{k}={v}" for k, v in n["options"].items()) or None) for n in access.nodes]
        lines.append(table(["node", "address", "from", "user", "port", "jump", "options"], rows))
    return lines


@app.command("exec")
def exec_(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A registered cluster."),
    node: str = typer.Argument(..., help="One of its nodes, e.g. cp-1."),
    command: list[str] = typer.Argument(..., help="The command and its arguments, after --."),
    timeout: str = typer.Option("60s", "--timeout", help="Give up after this long (30s, 5m): exit 124."),
    accept_new_host_keys: bool = typer.Option(
        False, "--accept-new-host-keys",
        help="Trust the node's SSH host key if none is known yet (recorded as an event). A changed key is "
        "still refused."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Run one command on a node, through the cluster's transport (ssh, sandbox or local).

    Its output and exit code pass through: `upgrader node exec prod cp-1 -- kubeadm version`.
    An unknown or changed host key (exit 2) and an unreachable node (exit 2, "unreachable") are
    upgrader's errors, never the command's. With -o json: {exit_code, stdout, stderr}.
    """
    from upgrader.services import nodes

    app = ctx.obj
    app.accept_new_host_keys = accept_new_host_keys
    result = nodes.exec_on_node(app, cluster=cluster, node=node, argv=list(command),
                                timeout=parse_duration(timeout))
    if output is Output.JSON:
        emit_json({"exit_code": result.exit_code, "stdout": result.stdout, "stderr": result.stderr})
    else:
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.stdout.flush()
    raise typer.Exit(result.exit_code)

