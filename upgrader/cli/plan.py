"""`upgrader plan CLUSTER --to VERSION`: the path a person reads before saying yes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json
from upgrader.domain.plans import Action, HopKind, Plan, Step, WorkerStrategy

if TYPE_CHECKING:  # annotations only: `--help` and `--version` never load the inventory rules
    from upgrader.domain.inventory import Inventory, Node

_UNDO = {
    "none": "-",
    "uncordon": "uncordon",
    "package-downgrade": "reinstall previous package",
    "manifest-swap": "restore kubeadm's manifest backup",
    "etcd-restore": "restore the hop's etcd snapshot",
    "emulated-version": "roll binary back (emulation)",
}


def plan_command(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A cluster registered with `upgrader cluster add`."),
    to: str = typer.Option(..., "--to", help="Target: an exact patch (v1.33.2) or a minor (v1.33 = newest patch)."),
    state: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--state", help="Plan from this inventory JSON (the shape of `upgrader inventory -o json`) "
        "instead of observing the live cluster.",
    ),
    catalog: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--catalog", help="Release catalog replacing the built-in one: one version per line, # comments.",
    ),
    skip: list[str] = typer.Option(
        [], "--skip", help="Also skip this version (repeatable); the cluster's skip list always applies.",
    ),
    workers: WorkerStrategy = typer.Option(
        WorkerStrategy.SKIP_LEVEL, "--workers",
        help="skip-level: upgrade workers as rarely as the skew policy allows; every-minor: follow each hop.",
    ),
    max_unavailable: int = typer.Option(1, "--max-unavailable", help="Workers drained at once, 1 to 10000."),
    two_step: bool = typer.Option(
        False, "--two-step", help="Rollback-safe two-step hops where the new binaries can emulate the old minor "
        "(read from the kube-apiserver image's --help on a control-plane node): new binaries with "
        "--emulated-version at the old minor, a soak, then `upgrader finalize RUN` (the point of no return).",
    ),
    soak: str = typer.Option("6h", "--soak", help="With --two-step: how long each two-step hop soaks "
                             "before finalize is due, e.g. 6h, 90m (at most 168h)."),
    playbooks: Optional[str] = typer.Option(  # noqa: UP045
        None, "--playbooks", metavar="DIR", help="Expand these upgrade playbooks (a copy with added command or check "
        "steps; roles it lacks come from the shipped ones) instead of the cluster's (`cluster set --playbooks`) or "
        "the shipped ones. See `upgrader playbook show`."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Plan an upgrade across several minors, store it in the ledger and print it.

    The control plane moves one minor at a time (kubeadm refuses more), each hop preceded by an etcd
    snapshot. Workers jump several minors where the version-skew policy allows. Versions in the
    cluster's skip list (`upgrader cluster skip`) and given with --skip are never used.

    With --two-step, a hop whose new kube-apiserver can emulate the old minor (KEP-4330) is applied in
    two steps: the new binaries emulate the old minor (etcd keeps its minor) and the run pauses for
    the soak, during which `upgrader rollback` only swaps binaries back; `upgrader finalize RUN`
    raises the emulation (the point of no return) and continues. Points of no return are listed.

    Exit codes: 0 planned (or nothing to do), 2 bad input, 3 no valid plan.
    """
    from upgrader.cli.sandbox import parse_duration
    from upgrader.services import plans

    request = plans.PlanRequest(
        cluster=cluster, target=to, state=state, catalog=catalog, skip=tuple(skip),
        workers=workers, max_unavailable=max_unavailable, two_step=two_step, soak_seconds=parse_duration(soak),
        playbooks=playbooks,
    )
    result = plans.make_plan(ctx.obj, request)
    if output is Output.JSON:
        emit_json({"id": result.plan_id, **result.document})
    elif result.plan_id is None:
        typer.echo(f"nothing to do: {cluster} is already at {result.plan.target}")
    else:
        typer.echo(render_plan(result.plan_id, result.plan))


def render_plan(plan_id: int, plan: Plan) -> str:
    lines = [
        f"plan {plan_id}: {plan.cluster} {plan.source_version} -> {plan.target}",
        f"  workers: {plan.strategy.workers}, at most {plan.strategy.max_unavailable} unavailable at once",
        "  skipped versions honoured: " + (", ".join(map(str, plan.skipped_versions)) or "none"),
        "  control-plane hops: " + (" -> ".join(
            f"{h.version}{' (finish half-done hop)' if h.kind is HopKind.LEVEL else ''}"
            f"{f' (two-step: emulating {h.emulate} during the soak)' if h.emulate else ''}" for h in plan.hops
        ) or "none"),
    ]
    if plan.soak_seconds is not None:
        lines.append(f"  two-step soak: {_hours(plan.soak_seconds)} per two-step hop, then `upgrader finalize RUN`")
    upgrades = plan.worker_upgrades()
    if upgrades:
        counts = sorted({len(v) for v in upgrades.values()})
        lines.append(f"  worker upgrades: {len(upgrades)} workers, {'/'.join(map(str, counts))} upgrade(s) each")
    lines.append("")
    lines += _render_steps(plan)
    if plan.warnings:
        lines.append("")
        lines += [f"warning: {w}" for w in plan.warnings]
    lines.append("")
    lines += render_no_return(plan)
    lines.append("undo: steps marked 'restore the hop's etcd snapshot' lose writes made after that snapshot.")
    lines.append(f"next: review, then `upgrader apply {plan_id}` (`--dry-run` shows every command first).")
    return "\n".join(lines)


def render_no_return(plan: Plan) -> list[str]:
    """The points of no return, one line each: after them going back needs the etcd snapshot."""
    if not plan.points_of_no_return:
        return ["points of no return: none (every step can be undone without restoring etcd)"]
    lines = ["points of no return (after them a rollback restores the etcd snapshot; later writes are lost):"]
    lines += [f"  step {p.step:>4}  {p.kind:<26} {p.detail}" for p in plan.points_of_no_return]
    return lines


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m" if seconds >= 60 else f"{seconds:g}s"


def _render_steps(plan: Plan) -> list[str]:
    lines: list[str] = []
    current_hop: Any = object()
    batch_steps: dict[int, list[Step]] = {}
    for step in plan.steps:
        if step.batch is not None:
            batch_steps.setdefault(step.batch, []).append(step)
    shown: set[int] = set()
    for step in plan.steps:
        if step.batch is None and step.hop != current_hop and step.hop is not None:
            current_hop = step.hop
            hop = plan.hops[step.hop]
            lines.append(f"hop {step.hop + 1}/{len(plan.hops)}: control plane to {hop.version}"
                         + (" (finishing a half-done hop)" if hop.kind is HopKind.LEVEL else ""))
        if step.batch is None:
            lines.append(_step_line(step))
        elif step.batch not in shown:
            shown.add(step.batch)
            lines.append(_batch_line(step.batch, batch_steps[step.batch]))
    return lines


def _step_line(step: Step) -> str:
    node = step.node or "cluster"
    version = str(step.version) if step.version else ""
    undo = _UNDO[str(step.reversibility)]
    note = f"  ({step.note})" if step.note else ""
    return f"  {step.n:>4}  {step.action:<22} {node:<20} {version:<10} undo: {undo}{note}"


def _batch_line(batch: int, steps: list[Step]) -> str:
    nodes = sorted({s.node for s in steps if s.node})
    version = next(s.version for s in steps if s.action is Action.UPGRADE_KUBELET)
    first, last = steps[0].n, steps[-1].n
    shown = ", ".join(nodes[:6]) + (f" and {len(nodes) - 6} more" if len(nodes) > 6 else "")
    kept = [s.node for s in steps if s.action is Action.DRAIN and s.note]
    extra = f"; stays cordoned: {', '.join(n for n in kept if n)}" if kept else ""
    one = [s for s in steps if s.node == steps[0].node] + [s for s in steps if s.node is None]
    actions = ", ".join(dict.fromkeys(str(s.params.get("name") or s.action) if s.params else str(s.action)
                                      for s in one))
    return (f"  {first:>4}-{last:<4} workers batch {batch} to {version}: {shown} "
            f"({actions}; undo: reinstall previous packages{extra})")


def inventory_command(
    ctx: typer.Context,
    cluster: str = typer.Argument(..., help="A cluster registered with `upgrader cluster add`."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Observe the live cluster and record the observation in the ledger.

    Per node: kubelet and control-plane component versions, readiness, cordon, taints, InternalIP,
    OS image, kernel, container runtime and, through the node transport (ssh unless `cluster set`
    says otherwise; nodes in parallel, a few seconds to connect), the package manager and Kubernetes
    package repository (a node that cannot be reached is shown as such). Per cluster:
    kubeadm's ClusterConfiguration, etcd's members and the observation's fingerprint. A node or an
    etcd that cannot be reached is recorded as such; only an unreachable API fails the command.

    `-o json` prints the document `upgrader plan --state` takes, for review or an offline plan.

    Exit codes: 0 observed, 2 bad input or an unreachable API.
    """
    from upgrader.domain.inventory import inventory_to_dict
    from upgrader.services import inventory as inventory_service

    inventory = inventory_service.observe_and_record(ctx.obj, cluster=cluster)
    if output is Output.JSON:
        emit_json(inventory_to_dict(inventory))
        return
    typer.echo(render_inventory(inventory))


def render_inventory(inventory: Inventory) -> str:
    from upgrader.cli.output import table

    rows = []
    for n in inventory.nodes:
        c = n.components
        rows.append((n.name, "control-plane" if n.control_plane else "worker", n.kubelet,
                     c.apiserver if c else None, c.etcd if c else None,
                     "Ready" if n.ready else "NotReady", "cordoned" if n.unschedulable else "",
                     n.internal_ip, _runtime(n.container_runtime), _repo(n),
                     ",".join(f"{t.key}:{t.effect}" for t in n.taints or ()) or None))
    lines = [table(["node", "role", "kubelet", "apiserver", "etcd", "status", "", "internal-ip", "runtime",
                    "packages", "taints"], rows)]
    k = inventory.kubeadm_config
    if k is not None:
        lines.append("")
        lines.append(f"kubeadm-config: {k.error}" if k.error else (
            f"kubeadm-config: {k.kubernetes_version}, etcd {k.etcd}"
            + (f" ({', '.join(k.etcd_endpoints)})" if k.etcd_endpoints else "")
            + f", images from {k.image_repository or '-'}, control-plane endpoint {k.control_plane_endpoint or '-'}"))
    if inventory.etcd is not None:
        lines.append(f"etcd: {inventory.etcd.error}" if inventory.etcd.error else "")
        if not inventory.etcd.error:
            lines[-1:] = [table(["etcd member", "id", "client urls", "leader", "db size", "revision"], [
                (m.name or "(unstarted)", m.id, ",".join(m.client_urls),
                 "leader" if m.leader else ("" if m.leader is not None else None),
                 m.db_size, m.revision) for m in inventory.etcd.members or ()])]
    lines.append("")
    lines.append(f"fingerprint: {inventory.fingerprint}")
    return "\n".join(lines)


def _runtime(runtime: str | None) -> str | None:
    return runtime.replace("://", " ") if runtime else None


def _repo(n: Node) -> str | None:
    p = n.packages
    if p is None:
        return None
    if p.status != "observed":
        return p.status.replace("_", " ")
    where = (p.repo.minor or p.repo.url) if p.repo else "no k8s repo"
    return f"{p.manager or 'unknown'} {where}"
