"""`upgrader cluster ...`: register clusters and keep their skip lists."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from upgrader.cli.node import (
    ETCD_TOOLS,
    SSH_IDENTITY,
    SSH_JUMP,
    SSH_KNOWN_HOSTS,
    SSH_OPTION,
    SSH_PORT,
    SSH_USER,
    TRANSPORT,
    render_access,
    ssh_changes,
)
from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json, table

app = typer.Typer(help="Register clusters, how their nodes are reached, and the versions they must never be "
                  "upgraded to.", no_args_is_help=True)


PLAYBOOKS = typer.Option(
    None, "--playbooks", metavar="DIR", help="The upgrade playbooks this cluster's plans expand: a copy with added "
    "command or check steps (validated now; roles it lacks come from the shipped ones). See `upgrader playbook`.")


def _record_dict(record: Any) -> dict[str, Any]:
    return {
        "name": record.name,
        "kubeconfig": record.kubeconfig,
        "context": record.context,
        "transport": record.transport,
        "playbooks_dir": record.playbooks_dir,
        "created_at": record.created_at.isoformat(),
        "skipped_versions": [
            {"version": s.version, "reason": s.reason, "by": s.created_by, "at": s.created_at.isoformat()}
            for s in record.skips
        ],
    }


@app.command("add")
def add(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A name for the cluster: lowercase letters, digits, '-'."),
    kubeconfig: Path = typer.Option(..., "--kubeconfig", help="Kubeconfig that reaches the cluster's API."),
    context: Optional[str] = typer.Option(None, "--context", help="Context to use (default: current-context)."),  # noqa: UP045
    transport: Optional[str] = TRANSPORT,  # noqa: UP045
    ssh_user: Optional[str] = SSH_USER,  # noqa: UP045
    ssh_port: Optional[int] = SSH_PORT,  # noqa: UP045
    ssh_identity: Optional[str] = SSH_IDENTITY,  # noqa: UP045
    ssh_jump: Optional[str] = SSH_JUMP,  # noqa: UP045
    ssh_option: Optional[list[str]] = SSH_OPTION,  # noqa: UP045
    ssh_known_hosts: Optional[str] = SSH_KNOWN_HOSTS,  # noqa: UP045
    etcd_tools: Optional[str] = ETCD_TOOLS,  # noqa: UP045
    playbooks: Optional[str] = PLAYBOOKS,  # noqa: UP045
    output: Output = OUTPUT_OPTION,
) -> None:
    """Register a cluster. The file and context are checked; the cluster need not be reachable.

    Its nodes are reached over ssh (your ssh config applies; host keys are checked strictly) at
    their InternalIP, unless `cluster node-address` says otherwise; `cluster set` changes it."""
    from upgrader.services import clusters, nodes

    changes = ssh_changes(user=ssh_user, port=ssh_port, identity=ssh_identity, jump=ssh_jump, options=ssh_option,
                          known_hosts=ssh_known_hosts, etcd_tools=etcd_tools)
    settings = nodes.transport_settings(transport, changes)
    if playbooks is not None:  # refused before anything is written
        from upgrader.services.playbooks import load_playbooks, playbook_dir

        load_playbooks(playbook_dir(playbooks))
    record = clusters.register_cluster(ctx.obj, name=name, kubeconfig=kubeconfig, context=context,
                                       transport=settings)
    if playbooks is not None:
        record = clusters.set_playbooks(ctx.obj, name=name, directory=playbooks)
    if output is Output.JSON:
        emit_json(_record_dict(record))
    else:
        typer.echo(f"cluster {record.name} added (kubeconfig {record.kubeconfig}, context {record.context})")


@app.command("list")
def list_(ctx: typer.Context, output: Output = OUTPUT_OPTION) -> None:
    """List registered clusters."""
    from upgrader.services import clusters

    records = clusters.list_clusters(ctx.obj)
    if output is Output.JSON:
        emit_json([_record_dict(r) for r in records])
        return
    if not records:
        typer.echo("no clusters registered (add one with `upgrader cluster add NAME --kubeconfig PATH`)")
        return
    rows = [(r.name, r.context, len(r.skips), r.kubeconfig) for r in records]
    typer.echo(table(["name", "context", "skipped", "kubeconfig"], rows))


@app.command("show")
def show(ctx: typer.Context, name: str, output: Output = OUTPUT_OPTION) -> None:
    """Show a cluster and its skip list."""
    from upgrader.services import clusters, nodes

    record = clusters.show_cluster(ctx.obj, name=name)
    access = nodes.node_access(ctx.obj, record)
    if output is Output.JSON:
        emit_json(_record_dict(record) | {"node_access": access.as_dict()})
        return
    doc = _record_dict(record)
    for key in ("name", "kubeconfig", "context", "created_at"):
        typer.echo(f"{key + ':':12} {doc[key]}")
    typer.echo(f"{'playbooks:':12} {record.playbooks_dir or 'shipped'}")
    for line in render_access(access):
        typer.echo(line)
    if record.skips:
        typer.echo("skipped versions:")
        typer.echo(table(["version", "reason", "by", "at"], [(s.version, s.reason, s.created_by, s.created_at)
                                                          for s in record.skips]))
    else:
        typer.echo("skipped versions: none")


@app.command("set")
def set_(
    ctx: typer.Context,
    name: str,
    node: Optional[str] = typer.Option(None, "--node", help="Change only this node's settings (an override)."),  # noqa: UP045
    transport: Optional[str] = TRANSPORT,  # noqa: UP045
    ssh_user: Optional[str] = SSH_USER,  # noqa: UP045
    ssh_port: Optional[int] = SSH_PORT,  # noqa: UP045
    ssh_identity: Optional[str] = SSH_IDENTITY,  # noqa: UP045
    ssh_jump: Optional[str] = SSH_JUMP,  # noqa: UP045
    ssh_option: Optional[list[str]] = SSH_OPTION,  # noqa: UP045
    ssh_known_hosts: Optional[str] = SSH_KNOWN_HOSTS,  # noqa: UP045
    etcd_tools: Optional[str] = ETCD_TOOLS,  # noqa: UP045
    playbooks: Optional[str] = PLAYBOOKS,  # noqa: UP045
    shipped_playbooks: bool = typer.Option(
        False, "--shipped-playbooks", help="Forget --playbooks: plan with the shipped playbooks again."),
    unset: Optional[list[str]] = typer.Option(  # noqa: UP045
        None, "--unset", metavar="FIELD",
        help="Forget a setting, repeatable: user, port, identity, jump, options, known_hosts, etcd_tools; with "
        "--node also "
        "address, or node (all of the node's overrides)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Change how the cluster's nodes are reached (recorded as an event).

    `upgrader cluster set prod --ssh-user ops --ssh-jump bastion.example.com`;
    `upgrader cluster set prod --node cp-1 --ssh-port 2222`; `upgrader cluster set prod --unset jump`;
    `upgrader cluster set prod --etcd-tools node` (etcdctl runs on the first control-plane node);
    `upgrader cluster set prod --playbooks ./my-playbooks` (plans expand that copy)."""
    from upgrader.services import clusters, nodes

    if playbooks is not None and shipped_playbooks:
        raise typer.BadParameter("--playbooks and --shipped-playbooks contradict each other")
    access = (node, transport, ssh_user, ssh_port, ssh_identity, ssh_jump, ssh_option, ssh_known_hosts, etcd_tools,
              unset)
    if playbooks is not None or shipped_playbooks:
        record = clusters.set_playbooks(ctx.obj, name=name, directory=None if shipped_playbooks else playbooks)
        if all(v is None or v == [] or v == () for v in access):
            if output is Output.JSON:
                emit_json(_record_dict(record))
            else:
                typer.echo(f"cluster {record.name}: plans expand "
                           + (f"the playbooks in {record.playbooks_dir}" if record.playbooks_dir
                              else "the shipped playbooks"))
            return

    if ssh_known_hosts is not None and node is not None:
        raise typer.BadParameter("--ssh-known-hosts is set for the whole cluster, not per node")
    if etcd_tools is not None and node is not None:
        from upgrader.errors import UsageError

        raise UsageError("--etcd-tools is set for the whole cluster, not per node")
    changes = ssh_changes(user=ssh_user, port=ssh_port, identity=ssh_identity, jump=ssh_jump, options=ssh_option,
                          known_hosts=ssh_known_hosts, etcd_tools=etcd_tools)
    record = nodes.configure(ctx.obj, cluster=name, node=node, kind=transport, changes=changes,
                             unset=tuple(unset or ()))
    _show_access(ctx, record, output)


@app.command("node-address")
def node_address(
    ctx: typer.Context,
    name: str,
    node: str = typer.Argument(..., help="The node, as the cluster names it."),
    address: Optional[str] = typer.Argument(None, help="Host name or IP to reach it at (ssh)."),  # noqa: UP045
    clear: bool = typer.Option(False, "--clear", help="Forget the address: use the node's InternalIP again."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Reach NODE at ADDRESS instead of its InternalIP (from the latest inventory) or its name."""
    from upgrader.services import nodes

    if (address is None) == (not clear):
        raise typer.BadParameter("give an ADDRESS, or --clear to forget the one set")
    record = nodes.set_node_address(ctx.obj, cluster=name, node=node, address=None if clear else address)
    _show_access(ctx, record, output)


def _show_access(ctx: typer.Context, record: Any, output: Output) -> None:
    from upgrader.services import nodes

    access = nodes.node_access(ctx.obj, record)
    if output is Output.JSON:
        emit_json(_record_dict(record) | {"node_access": access.as_dict()})
        return
    typer.echo(f"cluster {record.name}: node access updated")
    for line in render_access(access):
        typer.echo(line)


@app.command("remove")
def remove(ctx: typer.Context, name: str) -> None:
    """Forget a cluster. Its audit events stay in the ledger; the cluster itself is not touched."""
    from upgrader.services import clusters

    clusters.unregister_cluster(ctx.obj, name=name)
    typer.echo(f"cluster {name} removed")


@app.command("skip")
def skip(
    ctx: typer.Context,
    name: str,
    version: str = typer.Argument(..., help="The exact version never to upgrade to, e.g. v1.31.2."),
    reason: str = typer.Option(..., "--reason", help="Why (a CVE, a regression): shown in every plan."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Never plan through VERSION on this cluster (a bad patch, a CVE, a known regression)."""
    from upgrader.services import clusters

    result = clusters.skip_version(ctx.obj, cluster=name, version=version, reason=reason)
    if output is Output.JSON:
        emit_json(_record_dict(result.record) | {"skipped": str(result.version), "replaced_reason": result.replaced})
        return
    typer.echo(f"{name}: plans will skip {result.version}")
    if result.replaced is not None:
        typer.echo(f"{name}: {result.version} was already skipped; its reason was {result.replaced!r}, now it is "
                   f"{reason.strip()!r}")


@app.command("unskip")
def unskip(ctx: typer.Context, name: str, version: str) -> None:
    """Allow VERSION again."""
    from upgrader.services import clusters

    parsed, removed = clusters.unskip_version(ctx.obj, cluster=name, version=version)
    typer.echo(f"{name}: {parsed} is allowed again" if removed else f"{name}: {parsed} was not skipped")
