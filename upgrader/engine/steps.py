"""One handler per plan action: what it does on the node and the API, what it would do (``--dry-run``),
and how ``resume`` tells whether an interrupted attempt already took effect.

The node side follows DOMAIN.md's procedure exactly: the pkgs.k8s.io repository moves to the hop's
minor, the package is unheld, installed at the repository's exact build and held again (apt), or
installed with ``--disableexcludes=kubernetes`` (dnf/yum, whose hold is the repository's exclude line);
``kubeadm upgrade apply vX --yes`` on the first control-plane node, ``kubeadm upgrade node`` on the
others; drain; kubelet and kubectl, ``systemctl daemon-reload``, ``systemctl restart kubelet``; uncordon.

``observe`` returns the outputs to record when the step's effect is already there (the package is at
the version and held, the manifests moved, the node is Ready at the version), else None and the step runs again:
every action here is idempotent, so running it twice is safe, only slower.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from upgrader.domain.plans import Action, Step
from upgrader.domain.versions import Minor, Version
from upgrader.engine import drain, emulation, gates, kubeadm_lock
from upgrader.engine.context import RunContext, StopRequestedError, last_lines
from upgrader.errors import FileMissingError, UpgraderError
from upgrader.nodes import commands, packages

MANIFESTS = {c: f"/etc/kubernetes/manifests/{c}.yaml" for c in gates.CONTROL_PLANE}
_IMAGE = re.compile(r"^\s*-?\s*image:\s*['\"]?\S+:(v[0-9]+\.[0-9]+\.[0-9]+)['\"]?\s*$", re.MULTILINE | re.ASCII)
_KUBERNETES_VERSION = re.compile(r"^\s*kubernetesVersion:\s*['\"]?(v[0-9.]+)['\"]?\s*$", re.MULTILINE | re.ASCII)


class StepError(UpgraderError):
    """The step cannot do what it must on this node (no repository to retarget, a build not offered)."""

    exit_code = 6


@dataclass(frozen=True, slots=True)
class Handler:
    act: Callable[[RunContext, Step], dict[str, Any]]
    observe: Callable[[RunContext, Step], dict[str, Any] | None]
    describe: Callable[[RunContext, Step], list[str]]


def _never(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return None


def _version(step: Step) -> Version:
    assert step.version is not None, f"step {step.n} ({step.action}) has no version"
    return step.version


def _node(step: Step) -> str:
    assert step.node is not None, f"step {step.n} ({step.action}) has no node"
    return step.node


def control_planes(ctx: RunContext) -> list[str]:
    """The plan's control-plane nodes: its serial node steps (workers only ever move in batches)."""
    return sorted({s.node for s in ctx.plan.steps if s.node and s.batch is None})


def hop_version(ctx: RunContext, step: Step) -> Version:
    """The version the step's hop takes the control plane to."""
    if step.hop is None:
        return _version(step)
    return ctx.plan.hops[step.hop].version


# -- packages ---------------------------------------------------------------------------------------

def _probe(ctx: RunContext, node: str) -> packages.NodePackages:
    """The node's package manager and repository, asked with the step's command timeout: the probe's own
    10 s (meant for inventory) failed applies on a busy machine, where ten nodes start commands at once."""
    return packages.probe(ctx.node(node), timeout=ctx.options.command_timeout)


def manager(ctx: RunContext, node: str) -> str:
    """The node's package manager (and, remembered with it, its Kubernetes repository file), probed once."""
    found = ctx.managers.get(node)
    if found is None:
        probed = _probe(ctx, node)
        if probed.manager is None:
            raise StepError(f"node {node} has neither apt-get nor dnf/yum: upgrader cannot install packages there")
        ctx.repo_files[node] = probed.repo.file if probed.repo is not None else None
        found = ctx.managers[node] = probed.manager
    return found


def _repo_file(ctx: RunContext, node: str, pm: str) -> str:
    if pm != commands.APT:
        return commands.YUM_REPO
    path = ctx.repo_files.get(node)
    if path is None:
        raise StepError(f"node {node} has no Kubernetes apt repository in /etc/apt/sources.list.d to point at "
                        "the next minor (pkgs.k8s.io repositories are per minor)")
    return path


def ensure_repo(ctx: RunContext, node: str, minor: Minor) -> dict[str, Any]:
    """Point the node's pkgs.k8s.io repository at ``minor`` (a no-op when it is there already)."""
    pm = manager(ctx, node)
    path = _repo_file(ctx, node, pm)
    try:
        text = ctx.read(node, path).decode()
    except FileMissingError:
        raise StepError(f"node {node} has no {path}: upgrader cannot point its repository at {minor}") from None
    moved = commands.retarget_repo(text, minor)
    if moved is None:
        raise StepError(f"{path} on {node} names no pkgs.k8s.io per-minor repository to move to {minor} "
                        "(a mirror: point it at the new minor yourself, then resume)")
    if moved != text:
        ctx.write(node, path, moved.encode(), 0o644)
    return {"manager": pm, "repo": path, "minor": str(minor), "changed": moved != text}


def install(ctx: RunContext, node: str, names: list[str], version: Version) -> dict[str, Any]:
    out = ensure_repo(ctx, node, version.line)
    pm = out["manager"]
    ctx.run(node, commands.refresh(pm))
    builds: dict[str, str] = {}
    for name in names:
        listed = commands.parse_builds(pm, name, ctx.run(node, commands.list_builds(pm, name)).stdout)
        build = commands.pick_build(listed, version)
        if build is None:
            raise StepError(f"{name} {version} is not offered by the repository on {node} "
                            f"(it offers {', '.join(listed[-3:]) or 'nothing'})")
        builds[name] = build
    for argv in commands.install(pm, builds):
        ctx.run(node, argv)
    for name, build in builds.items():
        now = installed(ctx, node, name)
        if now != build:
            raise StepError(f"{name} on {node} is at {now or 'nothing'} after installing {build}")
    return out | {"packages": builds}


def installed(ctx: RunContext, node: str, name: str) -> str | None:
    result = ctx.run(node, commands.installed_build(manager(ctx, node), name), check=False)
    text = result.stdout.strip()
    return text if result.ok and text else None


def _at(ctx: RunContext, node: str, names: list[str], version: Version) -> dict[str, str] | None:
    """The installed builds when every package is at ``version`` and held again; else None (act again:
    a process that died between the install and ``apt-mark hold`` left them free to move)."""
    found = {name: installed(ctx, node, name) for name in names}
    if not all(b is not None and commands.upstream_of(b) == str(version) for b in found.values()):
        return None
    listing = commands.held(manager(ctx, node))  # None for dnf/yum: the repository's exclude line holds them
    if listing is not None:
        result = ctx.run(node, listing, check=False)
        if not result.ok or not set(names) <= set(result.stdout.split()):
            return None
    return {k: v for k, v in found.items() if v is not None}


def _describe_install(ctx: RunContext, node: str, names: list[str], version: Version) -> list[str]:
    try:
        pm = manager(ctx, node)
    except UpgraderError as e:
        return [f"(package manager unknown: {e.message})"]
    builds = {n: f"{version.major}.{version.minor}.{version.patch}-*" for n in names}
    return [f"point the pkgs.k8s.io repository at {version.line}", " ".join(commands.refresh(pm)),
            *(" ".join(a) for a in commands.install(pm, builds))]


# -- handlers ---------------------------------------------------------------------------------------

def _preflight(ctx: RunContext, step: Step) -> dict[str, Any]:
    with ctx.counting("node"):  # reads of every node and of the API, as `upgrader preflight` makes them
        return ctx.hooks.preflight()


def _snapshot(ctx: RunContext, step: Step) -> dict[str, Any]:
    target = hop_version(ctx, step)
    pulled = []
    for node in control_planes(ctx):  # a registry problem stops the run before anything changed
        ctx.run(node, commands.images_pull(target))
        pulled.append(node)
    with ctx.counting("node"):  # an etcd member streaming its snapshot, checked and stored
        made = ctx.hooks.snapshot(step)
    return {"images_pulled": {"version": str(target), "nodes": pulled}} | made


def _describe_snapshot(ctx: RunContext, step: Step) -> list[str]:
    target = hop_version(ctx, step)
    return [*(f"{node}: {' '.join(commands.images_pull(target))}" for node in control_planes(ctx)),
            f"etcd snapshot save from a healthy member, verified, stored 0600 (known-good at {step.version})"]


def _kubeadm(ctx: RunContext, step: Step) -> dict[str, Any]:
    return install(ctx, _node(step), ["kubeadm"], _version(step))


def _kubeadm_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    found = _at(ctx, _node(step), ["kubeadm"], _version(step))
    return {"packages": found} if found else None


def _manifests_at(ctx: RunContext, node: str, version: Version) -> bool:
    for path in MANIFESTS.values():
        try:
            text = ctx.read(node, path).decode(errors="replace")
        except FileMissingError:
            return False
        if set(_IMAGE.findall(text)) != {str(version)}:
            return False
    return True


def _upgrade_apply(ctx: RunContext, step: Step) -> dict[str, Any]:
    result = kubeadm_lock.run(ctx, _node(step), commands.kubeadm_apply(_version(step)))
    return {"output": last_lines(result.stdout, 20)}


def _upgrade_apply_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    """Done when this node's manifests moved and kubeadm got as far as uploading its new configuration
    (judged once the interrupted attempt's kubeadm, which may still run, has ended)."""
    version = _version(step)
    kubeadm_lock.wait(ctx, _node(step))
    if not _manifests_at(ctx, _node(step), version):
        return None
    config = (ctx.api.get_configmap("kube-system", "kubeadm-config") or {}).get("ClusterConfiguration", "")
    found = _KUBERNETES_VERSION.search(config)
    return {"manifests": str(version)} if found and found.group(1) == str(version) else None


def _upgrade_node(ctx: RunContext, step: Step) -> dict[str, Any]:
    result = kubeadm_lock.run(ctx, _node(step), commands.kubeadm_node())
    return {"output": last_lines(result.stdout, 20)}


def _upgrade_node_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    if step.node not in control_planes(ctx):
        return None  # on a worker it only rewrites the kubelet config: running it again is cheap
    kubeadm_lock.wait(ctx, _node(step))
    return {"manifests": str(step.version)} if _manifests_at(ctx, _node(step), _version(step)) else None


def _drain(ctx: RunContext, step: Step) -> dict[str, Any]:
    try:
        outcome = drain.drain(ctx.api, ctx.waiting_clock, _node(step), run_id=ctx.run_id,
                              timeout=ctx.options.drain_timeout, force=ctx.options.force_drain,
                              should_stop=ctx.stop.is_set, retry_seconds=ctx.options.evict_retry)
    except KeyboardInterrupt:
        if not ctx.stop.is_set():
            raise
        # The drain stops at its safe points by raising KeyboardInterrupt; for the run that is the
        # operator's stop like any other: the step is recorded, the run interrupted, resume printed.
        raise StopRequestedError from None
    if outcome.force_deleted:  # an override of the budgets: on the audit trail, not only in the step
        ctx.hooks.event("pods-force-deleted",
                        {"node": step.node, "step": step.n, "pods": list(outcome.force_deleted)})
    return outcome.to_dict()


def _drain_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return {"drained": True} if drain.drained(ctx.api, _node(step), run_id=ctx.run_id) else None


def _kubelet(ctx: RunContext, step: Step) -> dict[str, Any]:
    node, version = _node(step), _version(step)
    out = install(ctx, node, ["kubelet", "kubectl"], version)
    for argv in commands.restart_kubelet():
        ctx.run(node, argv)
    return out | gates.wait_for(ctx, f"{node} Ready at {version}", [gates.nodes_at(ctx.api, [node], version)])


def _kubelet_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node, version = _node(step), _version(step)
    found = _at(ctx, node, ["kubelet", "kubectl"], version)
    if found is None or not gates.nodes_at(ctx.api, [node], version)().ok:
        return None
    return {"packages": found}


def _uncordon(ctx: RunContext, step: Step) -> dict[str, Any]:
    return {"uncordoned": drain.uncordon(ctx.api, _node(step), run_id=ctx.run_id)}


def _gate(ctx: RunContext, step: Step) -> dict[str, Any]:
    version = _version(step)
    if step.node is not None:  # a control-plane node after kubeadm moved it
        probes = [gates.readyz(ctx.api), gates.mirror_pods_at(ctx.api, [step.node], version), gates.etcd(ctx),
                  gates.all_nodes_ready(ctx.api)]
        return gates.wait_for(ctx, f"control plane on {step.node} at {version}", probes)
    batch = sorted({s.node for s in ctx.plan.steps if s.batch == step.batch and s.node})
    probes = [gates.readyz(ctx.api), gates.nodes_at(ctx.api, batch, version), gates.all_nodes_ready(ctx.api)]
    return gates.wait_for(ctx, f"batch {step.batch} Ready at {version}", probes)


def _postflight(ctx: RunContext, step: Step) -> dict[str, Any]:
    version = _version(step)
    everyone = [n["metadata"]["name"] for n in ctx.api.list_nodes()]
    probes = [gates.readyz(ctx.api), gates.nodes_at(ctx.api, everyone, version),
              gates.mirror_pods_at(ctx.api, control_planes(ctx), version), gates.etcd(ctx)]
    return gates.wait_for(ctx, f"cluster at {version}", probes)


def _describe_gate(ctx: RunContext, step: Step) -> list[str]:
    what = {Action.HEALTH_GATE: "GET /readyz, nodes, control-plane pods; etcd endpoint health",
            Action.POSTFLIGHT: "GET /readyz, nodes (all at the target), control-plane pods; etcd endpoint health"}
    return [f"{what[step.action]} until {ctx.options.gate_passes} good readings in a row "
            f"(at most {ctx.options.gate_timeout:g}s)"]


def _locked(ctx: RunContext, argv: list[str]) -> str:
    return " ".join(commands.kubeadm_locked(argv, ctx.options.command_timeout))


HANDLERS: dict[Action, Handler] = {
    Action.PREFLIGHT: Handler(_preflight, _never, lambda c, s: ["preflight checks (read-only)"]),
    Action.SNAPSHOT: Handler(_snapshot, _never, _describe_snapshot),
    Action.UPGRADE_KUBEADM: Handler(_kubeadm, _kubeadm_observe,
                                    lambda c, s: _describe_install(c, _node(s), ["kubeadm"], _version(s))),
    Action.KUBEADM_UPGRADE_APPLY: Handler(_upgrade_apply, _upgrade_apply_observe,
                                          lambda c, s: [_locked(c, commands.kubeadm_apply(_version(s)))]),
    Action.KUBEADM_UPGRADE_NODE: Handler(_upgrade_node, _upgrade_node_observe,
                                         lambda c, s: [_locked(c, commands.kubeadm_node())]),
    Action.DRAIN: Handler(_drain, _drain_observe, lambda c, s: [
        f"PATCH node {s.node}: spec.unschedulable=true, annotation {drain.CORDON_ANNOTATION}={c.run_id or 'RUN_ID'}",
        f"POST eviction of every pod on {s.node} but DaemonSet and mirror pods, 429 retried every "
        f"{c.options.evict_retry:g}s for at most {c.options.drain_timeout:g}s"
        + (", then DELETE what is left (--force-drain)" if c.options.force_drain else "")]),
    Action.UPGRADE_KUBELET: Handler(_kubelet, _kubelet_observe, lambda c, s: [
        *_describe_install(c, _node(s), ["kubelet", "kubectl"], _version(s)),
        *(" ".join(a) for a in commands.restart_kubelet()), f"wait for {s.node} Ready at {s.version}"]),
    Action.UNCORDON: Handler(_uncordon, _never, lambda c, s: [
        f"PATCH node {s.node}: spec.unschedulable=false, remove {drain.CORDON_ANNOTATION} "
        "(only if it names this run)"]),
    Action.HEALTH_GATE: Handler(_gate, _never, _describe_gate),
    Action.POSTFLIGHT: Handler(_postflight, _never, _describe_gate),
    **{action: Handler(act, observe, emulation.describe) for action, (act, observe) in emulation.HANDLED.items()},
}

# The handlers of a rollback (engine/rollback.py, rollback_soak.py), of a certificate renewal
# (engine/certificates.py) and of the control-plane runbooks (engine/runbook_*.py) register themselves
# in HANDLERS; imported last, so that module finds everything above already defined whichever of them
# is imported first.
from upgrader.engine import certificates as _certificates  # noqa: E402,F401
from upgrader.engine import custom_steps as _custom_steps  # noqa: E402,F401
from upgrader.engine import rollback as _rollback  # noqa: E402,F401
from upgrader.engine import rollback_soak as _rollback_soak  # noqa: E402,F401
from upgrader.engine import runbook_etcd as _runbook_etcd  # noqa: E402,F401
from upgrader.engine import runbook_manifests as _runbook_manifests  # noqa: E402,F401
from upgrader.engine import runbook_nodes as _runbook_nodes  # noqa: E402,F401
from upgrader.engine import runbook_steps as _runbook_steps  # noqa: E402,F401
