"""The handlers of a certificate renewal's steps (domain/certificates.py), registered in steps.HANDLERS.

renew-certificates: ``kubeadm certs renew all`` under the node's kubeadm lock; on resume it is done
when every certificate recorded before the run now expires later.

restart-control-plane: kubeadm's documented restart of static pods. The manifests of the node's
control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd: those present) move to
``/etc/kubernetes/upgrader-certs-RUN/manifests`` (never under the manifests directory, which the
kubelet reads); upgrader waits until the container runtime no longer lists their containers (``crictl
ps``; without crictl, the kubelet's 20 s fileCheckFrequency and a margin); the manifests move back;
then it waits for /readyz and for each component's mirror pod to run a container started after the
one it had. Whatever goes wrong once the manifests moved, they are put back before the step fails;
when even that fails, the error says where they are and the command that puts them back. On resume
the step is done when its marker says so and every manifest is back; else it runs again (a second
restart is harmless), first putting back what an interrupted attempt left aside.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from upgrader.domain.certificates import renewed
from upgrader.domain.node_output import parse_cert_expiration
from upgrader.domain.plans import Action, Step
from upgrader.engine import gates, kubeadm_lock, steps
from upgrader.engine.context import RunContext, last_lines
from upgrader.engine.gates import Reading
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError, UpgraderError
from upgrader.nodes import commands

MANIFESTS_DIR = "/etc/kubernetes/manifests"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
FILE_CHECK_FREQUENCY = 20.0  # the kubelet's default: how often it looks at the manifests directory
STOP_MARGIN = 10.0  # seconds beyond it for the pods' termination, when the runtime cannot be asked
CHECK_TIMEOUT = 60.0


def work_dir(run_id: int) -> str:
    return f"/etc/kubernetes/upgrader-certs-{run_id}"


def _node(step: Step) -> str:
    assert step.node is not None, f"step {step.n} ({step.action}) has no node"
    return step.node


def _before(ctx: RunContext, node: str) -> Mapping[str, str]:
    spec = ctx.document.get("certificates")
    if not isinstance(spec, Mapping):
        raise StepError("this run's plan is not a certificate renewal (its document has no certificates section)")
    return dict((spec.get("before") or {}).get(node) or {})


# -- renew -----------------------------------------------------------------------------------------

def _check(ctx: RunContext, node: str) -> list[Any]:
    result = ctx.run(node, commands.certs_check(), timeout=CHECK_TIMEOUT)
    rows, _missing = parse_cert_expiration(result.stdout)
    if not rows:
        raise StepError(f"`kubeadm certs check-expiration` on {node} listed no certificate: "
                        f"{last_lines(result.stdout or result.stderr, 1)}")
    return rows


def _summary(rows: list[Any]) -> dict[str, Any]:
    leaves = [r for r in rows if not r.authority]
    soonest = min((r.expires for r in leaves), default=None)
    return {"certificates": len(leaves), "soonest": soonest.isoformat() if soonest else None}


def _renew(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    done = kubeadm_lock.run(ctx, node, commands.certs_renew_all())
    rows = _check(ctx, node)
    before = _before(ctx, node)
    if before and not renewed(before, rows) and not _fresh(before, rows):
        raise StepError(f"`kubeadm certs renew all` on {node} exited 0 but check-expiration shows certificates "
                        "that did not move")
    return {"output": last_lines(done.stdout, 3)} | _summary(rows)


def _fresh(before: Mapping[str, str], rows: list[Any]) -> bool:
    """Renewed within the minute of their last issue (check-expiration prints minutes): nothing to compare."""
    after = {r.name: r.expires.isoformat() for r in rows if not r.authority}
    return all(after.get(name) == when for name, when in before.items())


def _renew_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    kubeadm_lock.wait(ctx, node)  # an interrupted attempt's kubeadm may still be writing
    rows = _check(ctx, node)
    return _summary(rows) if renewed(_before(ctx, node), rows) else None


# -- restart the static pods -----------------------------------------------------------------------

def _present(ctx: RunContext, node: str, directory: str) -> list[str]:
    return [c for c in COMPONENTS if ctx.run(node, ["test", "-f", f"{directory}/{c}.yaml"], check=False).ok]


def _started(ctx: RunContext, node: str) -> dict[str, str]:
    """component -> its mirror pod's container startedAt ({} when the API does not answer)."""
    try:
        pods = ctx.api.list_control_plane_pods()
    except UpgraderError:
        return {}
    found = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node:
            continue
        component = ((pod.get("metadata") or {}).get("labels") or {}).get("component")
        at = _started_at(pod)
        if component in COMPONENTS and at:
            found[str(component)] = at
    return found


def _started_at(pod: Mapping[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        running = (status.get("state") or {}).get("running") or {}
        if running.get("startedAt"):
            return str(running["startedAt"])
    return None


def _restart(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    aside = f"{work_dir(ctx.run_id)}/manifests"
    ctx.run(node, ["mkdir", "-p", "-m", "0700", aside])
    ctx.run(node, ["rm", "-f", "--", f"{work_dir(ctx.run_id)}/restarted"])
    before = _started(ctx, node)
    left = _present(ctx, node, aside)  # an interrupted attempt's
    components = [c for c in COMPONENTS if c in set(_present(ctx, node, MANIFESTS_DIR)) | set(left)]
    if not components:
        raise StepError(f"{node} has no control-plane static pod manifest in {MANIFESTS_DIR}")
    try:
        for c in components:
            if c not in left:
                ctx.run(node, ["mv", "-f", "--", f"{MANIFESTS_DIR}/{c}.yaml", f"{aside}/{c}.yaml"])
        stopped = _wait_stopped(ctx, node, components)
    except BaseException as e:
        _put_back(ctx, node, aside, e)
        raise
    _put_back(ctx, node, aside, None)
    probes = [gates.readyz(ctx.api), _restarted(ctx, node, components, before)]
    out = gates.wait_for(ctx, f"control plane of {node} restarted", probes)
    ctx.write(node, f"{work_dir(ctx.run_id)}/restarted", (" ".join(components) + "\n").encode(), 0o600)
    return {"restarted": components, "stopped": stopped, "started_before": before} | out


def _put_back(ctx: RunContext, node: str, aside: str, cause: BaseException | None) -> None:
    """Every manifest left aside back in the manifests directory; when that fails, an error that says
    the control plane of the node is stopped and how to start it."""
    try:
        for c in _present(ctx, node, aside):
            ctx.run(node, ["mv", "-f", "--", f"{aside}/{c}.yaml", f"{MANIFESTS_DIR}/{c}.yaml"])
    except UpgraderError as e:
        why = f" (after: {cause})" if cause is not None else ""
        raise StepError(f"the control plane of {node} is STOPPED: its static pod manifests are in {aside} and "
                        f"could not be put back ({e.message}){why}; put them back with "
                        f"`mv {aside}/*.yaml {MANIFESTS_DIR}/` on {node}, or `upgrader resume`") from e


def _running(ctx: RunContext, node: str) -> set[str] | None:
    """The names of the containers the node's runtime runs; None when crictl cannot tell."""
    result = ctx.run(node, commands.running_containers(), timeout=CHECK_TIMEOUT, check=False)
    if not result.ok:
        return None
    try:
        doc = json.loads(result.stdout)
        return {str(c["metadata"]["name"]) for c in doc.get("containers") or []}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _wait_stopped(ctx: RunContext, node: str, components: list[str]) -> dict[str, Any]:
    deadline = ctx.clock.monotonic() + ctx.options.gate_timeout
    started = ctx.clock.monotonic()
    while True:
        running = _running(ctx, node)
        if running is None:  # no crictl to ask: the kubelet's own period, as kubeadm's docs say
            ctx.sleep(FILE_CHECK_FREQUENCY + STOP_MARGIN)
            return {"waited": "fileCheckFrequency", "seconds": FILE_CHECK_FREQUENCY + STOP_MARGIN}
        still = sorted(set(components) & running)
        if not still:
            return {"waited": "crictl ps", "seconds": round(ctx.clock.monotonic() - started, 1)}
        if ctx.clock.monotonic() >= deadline:
            raise StepError(f"{', '.join(still)} still run on {node} {ctx.options.gate_timeout:g}s after "
                            "their manifests were moved aside")
        ctx.sleep(0.5)


def _restarted(ctx: RunContext, node: str, components: list[str], before: Mapping[str, str]) -> gates.Probe:
    """Each component's mirror pod Running and ready, with a container started after the one it had."""
    def probe() -> Reading:
        pods = {((p.get("metadata") or {}).get("labels") or {}).get("component"): p
                for p in ctx.api.list_control_plane_pods() if (p.get("spec") or {}).get("nodeName") == node}
        bad = []
        for c in components:
            pod = pods.get(c)
            at = _started_at(pod) if pod else None
            if pod is None or at is None:
                bad.append(f"{c} has no running container")
            elif c in before and at <= before[c]:
                bad.append(f"{c} still runs the container started {before[c]}")
            elif not _ready(pod):
                bad.append(f"{c} not ready")
        if bad:
            return Reading(False, f"{node}: " + "; ".join(bad))
        return Reading(True, f"{node}: {', '.join(components)} restarted")
    return probe


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _restart_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    try:
        said = ctx.read(node, f"{work_dir(ctx.run_id)}/restarted").decode(errors="replace").split()
    except FileMissingError:
        return None
    if _present(ctx, node, f"{work_dir(ctx.run_id)}/manifests") or not set(said) <= set(
            _present(ctx, node, MANIFESTS_DIR)):
        return None
    return {"restarted": said}


def _say(*lines: str) -> Any:
    return lambda c, s: [line.format(node=s.node, run=c.run_id or "RUN", dir=MANIFESTS_DIR) for line in lines]


HANDLERS: dict[Action, Handler] = {
    Action.RENEW_CERTIFICATES: Handler(_renew, _renew_observe, _say(
        "flock /etc/kubernetes kubeadm certs renew all   (certificates in /etc/kubernetes/pki and those embedded "
        "in admin.conf, super-admin.conf, controller-manager.conf, scheduler.conf)",
        "kubeadm certs check-expiration: every certificate expires later than before")),
    Action.RESTART_CONTROL_PLANE: Handler(_restart, _restart_observe, _say(
        "mv {dir}/{{kube-apiserver,kube-controller-manager,kube-scheduler,etcd}}.yaml "
        "/etc/kubernetes/upgrader-certs-{run}/manifests/",
        "wait until `crictl ps` no longer lists them (the kubelet looks every 20s)",
        "mv them back to {dir}/; wait for /readyz and each mirror pod running a container started after the "
        "old one")),
}
steps.HANDLERS.update(HANDLERS)
