"""The steps of a two-step hop (KEP-4330 compatibility versions): step one, the soak, finalize.

Step one installs the new kube-apiserver, kube-controller-manager and kube-scheduler with
``--emulated-version`` at the old minor. kubeadm does not expose emulation (kubernetes/kubeadm#3263),
so the flag goes into kubeadm-config's ClusterConfiguration ``extraArgs`` *before* kubeadm runs (it
renders them into the manifests, and every later kubeadm run keeps them) and into the manifests
themselves when the kubeadm at hand did not render them. A hop that moves etcd's minor runs kubeadm
with ``--etcd-upgrade=false``: etcd keeps its minor during the soak, so a rollback then only swaps
binaries and manifests back. The emulation is verified on ``/version`` (emulationMinor, v1.33+).

The soak pauses the run (:class:`SoakPendingError`) until ``upgrader finalize`` ends it. Finalize is
the point of no return, recorded as an event before it acts: etcd's minimum patch is checked, the
flag is removed from kubeadm-config (so no later upgrade silently keeps emulating an old minor),
kubeadm runs again with etcd upgrades on, the flag leaves the manifests, and ``/version`` must show
the emulation at the new minor.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import yaml

from upgrader.domain.emulation import EtcdVersion, etcd_blockers, parse_emulation_range, why_not_two_step
from upgrader.domain.plans import Action, Hop, Step
from upgrader.domain.versions import Minor, Version
from upgrader.engine import gates, kubeadm_lock
from upgrader.engine.context import RunContext, SoakPendingError, last_lines
from upgrader.engine.emulation_config import (
    CONFIG_KEYS,
    FLAG,
    EmulationError,
    config_flags,
    config_with_flag,
    flag_value,
    manifest_flag,
    manifest_with_flag,
)
from upgrader.errors import FileMissingError
from upgrader.nodes import commands
from upgrader.nodes.component_help import read_help

ETCD_MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
_IMAGE_TAG = re.compile(r"^\s*-?\s*image:\s*['\"]?\S+?:([^\s'\"@]+)['\"]?\s*$", re.MULTILINE)
_ETCD_IMAGE = re.compile(r"^\S+/etcd:(\S+)$", re.MULTILINE)


MANIFESTS = {c: f"/etc/kubernetes/manifests/{c}.yaml" for c in gates.CONTROL_PLANE}


def control_planes(ctx: RunContext) -> list[str]:
    """The plan's control-plane nodes: its serial node steps (as engine.steps counts them)."""
    return sorted({s.node for s in ctx.plan.steps if s.node and s.batch is None})


# -- what the node and the API say ----------------------------------------------------------------

def _hop(ctx: RunContext, step: Step) -> tuple[Hop, Minor]:
    assert step.hop is not None, f"step {step.n} ({step.action}) belongs to no hop"
    hop = ctx.plan.hops[step.hop]
    if hop.emulate is None:
        raise EmulationError(f"step {step.n}: hop {step.hop + 1} is not a two-step hop")
    return hop, hop.emulate


def _config_text(ctx: RunContext) -> str:
    data = ctx.api.get_configmap("kube-system", "kubeadm-config")
    if data is None or "ClusterConfiguration" not in data:
        raise EmulationError("kube-system/kubeadm-config has no ClusterConfiguration to carry --emulated-version")
    return data["ClusterConfiguration"]


def write_config_flag(ctx: RunContext, value: str | None) -> bool:
    """kubeadm-config's extraArgs at ``value`` for the three components; whether it had to change."""
    text = _config_text(ctx)
    if set(config_flags(text).values()) == {value}:
        return False
    ctx.api.patch_configmap("kube-system", "kubeadm-config", {"ClusterConfiguration": config_with_flag(text, value)})
    return True


def ensure_manifests(ctx: RunContext, node: str, value: str | None) -> list[str]:
    """The node's three manifests carrying exactly ``value`` (kubeadm may have rendered it already);
    the components whose manifest upgrader had to rewrite (the kubelet restarts them)."""
    changed = []
    for component in CONFIG_KEYS:
        path = MANIFESTS[component]
        text = ctx.read(node, path).decode()
        if manifest_flag(text) != value:
            ctx.write(node, path, manifest_with_flag(text, value).encode(), 0o600)
            changed.append(component)
    return changed


def manifests_flag_is(ctx: RunContext, node: str, value: str | None, version: Version) -> bool:
    for component in CONFIG_KEYS:
        try:
            text = ctx.read(node, MANIFESTS[component]).decode(errors="replace")
        except FileMissingError:
            return False
        if manifest_flag(text) != value or set(_IMAGE_TAG.findall(text)) != {str(version)}:
            return False
    return True


def check_range(ctx: RunContext, node: str, version: Version, old: Minor) -> dict[str, str]:
    """Each binary's own ``--help`` on this node must still allow emulating ``old``: a refusal here
    changes nothing (the plan's reading may be stale, or was made on another node)."""
    config = yaml.safe_load(_config_text(ctx)) or {}
    repository = config.get("imageRepository") if isinstance(config, dict) else None
    ranges = {}
    for component in CONFIG_KEYS:
        text = read_help(ctx.node(node), component=component, version=version,
                         repository=str(repository) if repository else None, timeout=ctx.options.command_timeout)
        found = parse_emulation_range(text)
        why = why_not_two_step(old, version.line, found)
        if why is not None:
            raise EmulationError(f"{component} {version} on {node}: {why}; nothing was changed (plan again "
                                 "without --two-step to upgrade in one step)")
        ranges[component] = str(found)
    return ranges


def etcd_tag(ctx: RunContext, node: str) -> str | None:
    try:
        text = ctx.read(node, ETCD_MANIFEST).decode(errors="replace")
    except FileMissingError:
        return None  # external etcd: not kubeadm's to move
    tags = _IMAGE_TAG.findall(text)
    return tags[0] if tags else None


def desired_etcd(ctx: RunContext, node: str, version: Version) -> str | None:
    """The etcd image tag the node's (new) kubeadm pairs with ``version`` (DOMAIN.md: ask the binary)."""
    listed = ctx.run(node, ["kubeadm", "config", "images", "list", "--kubernetes-version", str(version)])
    found = _ETCD_IMAGE.search(listed.stdout)
    return found.group(1) if found else None


def emulation_reading(ctx: RunContext, version: Version, emulated: Minor) -> gates.Reading:
    info = ctx.api.server_version()
    git, minor = info.get("gitVersion"), info.get("emulationMinor")
    seen = f"/version: gitVersion {git}, emulation {info.get('emulationMajor')}.{minor}"
    ok = git == str(version) and str(minor) == str(emulated.minor) and str(info.get("emulationMajor")) == str(
        emulated.major)
    return gates.Reading(ok, seen if ok else f"{seen} (want {version} emulating {emulated})")


def wait_emulation(ctx: RunContext, version: Version, emulated: Minor) -> dict[str, Any]:
    return gates.wait_for(ctx, f"/version at {version} emulating {emulated}",
                          [lambda: emulation_reading(ctx, version, emulated), gates.readyz(ctx.api)])


# -- step one -----------------------------------------------------------------------------------

def _kubeadm_args(hop: Hop) -> list[str]:
    return ["--etcd-upgrade=false"] if hop.hold_etcd else []


def _emulated_apply(ctx: RunContext, step: Step) -> dict[str, Any]:
    hop, old = _hop(ctx, step)
    node, version = step.node or "", hop.version
    ranges = check_range(ctx, node, version, old)
    etcd_before = etcd_tag(ctx, node)
    config_changed = write_config_flag(ctx, flag_value(old))
    result = kubeadm_lock.run(ctx, node, [*commands.kubeadm_apply(version), *_kubeadm_args(hop)])
    rewritten = ensure_manifests(ctx, node, flag_value(old))
    return {"ranges": ranges, "kubeadm_config": {FLAG: flag_value(old), "changed": config_changed},
            "manifests_rewritten": rewritten, "etcd": {"before": etcd_before, "after": etcd_tag(ctx, node),
                                                       "held": hop.hold_etcd},
            "output": last_lines(result.stdout, 20)}


def _emulated_node(ctx: RunContext, step: Step) -> dict[str, Any]:
    hop, old = _hop(ctx, step)
    node = step.node or ""
    if set(config_flags(_config_text(ctx)).values()) != {flag_value(old)}:
        raise EmulationError("kubeadm-config no longer carries --emulated-version="
                             f"{flag_value(old)}: someone changed it during the hop")
    etcd_before = etcd_tag(ctx, node)
    result = kubeadm_lock.run(ctx, node, [*commands.kubeadm_node(), *_kubeadm_args(hop)])
    rewritten = ensure_manifests(ctx, node, flag_value(old))
    return {"manifests_rewritten": rewritten, "etcd": {"before": etcd_before, "after": etcd_tag(ctx, node),
                                                       "held": hop.hold_etcd},
            "output": last_lines(result.stdout, 20)}


def _emulated_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    hop, old = _hop(ctx, step)
    kubeadm_lock.wait(ctx, step.node or "")
    if not manifests_flag_is(ctx, step.node or "", flag_value(old), hop.version):
        return None
    if set(config_flags(_config_text(ctx)).values()) != {flag_value(old)}:
        return None
    return {"manifests": str(hop.version), FLAG: flag_value(old)}


# -- the soak -----------------------------------------------------------------------------------

def soak_started(ctx: RunContext, step: Step) -> tuple[Any, bool]:
    """When the soak began: when step one's last step finished (stable across resumes); and whether this
    is the soak step's first attempt (a resume of a soaking run soaks on without a new event)."""
    with ctx.unit_of_work() as uow:
        run = uow.repo.get_run(ctx.run_id)
    before = [s.finished_at for s in run.steps if s.n < step.n and s.finished_at is not None]
    first = all(s.attempts <= 1 for s in run.steps if s.n == step.n)
    return (max(before) if before else ctx.clock.now()), first


def _soak(ctx: RunContext, step: Step) -> dict[str, Any]:
    hop, old = _hop(ctx, step)
    started, first = soak_started(ctx, step)
    until = started + timedelta(seconds=ctx.plan.soak_seconds or 0)
    pending = {"step": step.n, "hop": step.hop or 0, "version": str(hop.version), "emulated": str(old),
               "started": started.isoformat(), "until": until.isoformat(), "hold_etcd": hop.hold_etcd}
    if ctx.finalize_step != step.n:
        verified = wait_emulation(ctx, hop.version, old)
        if first:
            ctx.hooks.event("soak-started", {"step": step.n, "version": str(hop.version), "emulated": str(old),
                                             "until": until.isoformat(), "verified": verified["checks"]})
        raise SoakPendingError(**pending)
    finalize = next((s for s in ctx.plan.steps if s.hop == step.hop and s.action is Action.FINALIZE_EMULATED_VERSION),
                    None)
    if finalize is not None:
        try:  # refused before the soak ends: the run stays soaking, nothing changed
            etcd_prerequisites(ctx, finalize)
        except EmulationError as e:
            raise SoakPendingError(**pending, finalize_refused=e.message) from None
    now = ctx.clock.now()
    ended = {"started": started.isoformat(), "until": until.isoformat(), "ended": now.isoformat(),
             "ended_by": "finalize", "early": now < until}
    ctx.hooks.event("soak-ended", {"step": step.n, **ended})
    return ended


def _never(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return None


# -- finalize: the point of no return ------------------------------------------------------------

def etcd_prerequisites(ctx: RunContext, step: Step) -> dict[str, Any]:
    """For a hop that held etcd: every member's version and the one kubeadm wants; EmulationError when
    a member is below etcd's minimum patch for the minor move (nothing changed yet)."""
    hop, _ = _hop(ctx, step)
    if not hop.hold_etcd:
        return {}
    first = step.node or ""
    desired_tag = desired_etcd(ctx, first, hop.version)
    desired = EtcdVersion.from_tag(desired_tag or "")
    if desired is None:
        raise EmulationError(f"kubeadm on {first} names no etcd image for {hop.version}")
    members = {n: etcd_tag(ctx, n) for n in control_planes(ctx)}
    stacked = {n: EtcdVersion.from_tag(t) if t else None for n, t in members.items() if t is not None}
    blockers = etcd_blockers(stacked, desired)
    if blockers:
        raise EmulationError("etcd cannot move yet, nothing was changed: " + "; ".join(blockers)
                             + " (move etcd to that patch first, then `upgrader finalize` again)")
    return {"members": members, "desired": desired_tag}


def _finalize(ctx: RunContext, step: Step) -> dict[str, Any]:
    hop, old = _hop(ctx, step)
    etcd = etcd_prerequisites(ctx, step)
    kinds = [p.to_dict() for p in ctx.plan.points_of_no_return if p.step == step.n]
    ctx.hooks.event("point-of-no-return", {"step": step.n, "hop": step.hop, "version": str(hop.version),
                                           "emulation": {"from": str(old), "to": str(hop.minor)},
                                           "etcd": etcd, "points": kinds})
    write_config_flag(ctx, None)
    first, others = step.node or "", [n for n in control_planes(ctx) if n != step.node]
    outputs: dict[str, Any] = {"etcd": etcd, "nodes": {}}
    result = kubeadm_lock.run(ctx, first, commands.kubeadm_apply(hop.version))
    outputs["nodes"][first] = {"rewritten": ensure_manifests(ctx, first, None), "etcd": etcd_tag(ctx, first),
                               "output": last_lines(result.stdout, 8)}
    for node in others:
        result = kubeadm_lock.run(ctx, node, commands.kubeadm_node())
        outputs["nodes"][node] = {"rewritten": ensure_manifests(ctx, node, None), "etcd": etcd_tag(ctx, node),
                                  "output": last_lines(result.stdout, 8)}
    wanted = etcd.get("desired")
    stuck = [n for n, o in outputs["nodes"].items() if wanted and o["etcd"] is not None and o["etcd"] != wanted]
    if stuck:
        raise EmulationError(f"etcd on {', '.join(stuck)} is not at {wanted} after kubeadm ran")
    return outputs | {"verified": wait_emulation(ctx, hop.version, hop.minor)["checks"]}


def _finalize_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    hop, _ = _hop(ctx, step)
    for node in control_planes(ctx):
        kubeadm_lock.wait(ctx, node)
        if not manifests_flag_is(ctx, node, None, hop.version):
            return None
    if set(config_flags(_config_text(ctx)).values()) != {None}:
        return None
    if hop.hold_etcd:
        wanted = desired_etcd(ctx, step.node or "", hop.version)
        if any(etcd_tag(ctx, n) not in (None, wanted) for n in control_planes(ctx)):
            return None
    if not emulation_reading(ctx, hop.version, hop.minor).ok:
        return None
    return {"emulation": str(hop.minor)}


HANDLED = {
    Action.EMULATED_UPGRADE_APPLY: (_emulated_apply, _emulated_observe),
    Action.EMULATED_UPGRADE_NODE: (_emulated_node, _emulated_observe),
    Action.SOAK: (_soak, _never),
    Action.FINALIZE_EMULATED_VERSION: (_finalize, _finalize_observe),
}


def describe(ctx: RunContext, step: Step) -> list[str]:
    hop = ctx.plan.hops[step.hop] if step.hop is not None else None
    old = flag_value(hop.emulate) if hop else None
    etcd = " --etcd-upgrade=false" if hop and hop.hold_etcd else ""
    if step.action is Action.EMULATED_UPGRADE_APPLY:
        return [f"ctr: kube-apiserver/-controller-manager/-scheduler {step.version} --help must allow {old}",
                f"PATCH kube-system/kubeadm-config: extraArgs {FLAG}={old} (apiServer, controllerManager, scheduler)",
                " ".join(commands.kubeadm_apply(step.version or Version(0, 0, 0))) + etcd,
                f"manifests carry --{FLAG}={old}"]
    if step.action is Action.EMULATED_UPGRADE_NODE:
        return [" ".join(commands.kubeadm_node()) + etcd, f"manifests carry --{FLAG}={old}"]
    if step.action is Action.SOAK:
        return [f"GET /version until it shows {step.version} emulating {old}",
                f"pause the run for the soak ({(ctx.plan.soak_seconds or 0) / 3600:g}h); "
                "`upgrader finalize RUN` ends it"]
    return ["event point-of-no-return", *(["etcd members at the minimum patch for the minor move"]
                                           if hop and hop.hold_etcd else []),
            f"PATCH kube-system/kubeadm-config: remove extraArgs {FLAG}",
            " ".join(commands.kubeadm_apply(step.version or Version(0, 0, 0))) + " (etcd moves), "
            "kubeadm upgrade node on the other control-plane nodes",
            f"manifests without --{FLAG}; GET /version until the emulation is {step.version}"]

