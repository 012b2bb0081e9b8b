"""Health gates: a set of probes that must all read good several times in a row before a run goes on.

DOMAIN.md "Health signals": ``/readyz``, nodes Ready (at the expected kubelet version), the
control-plane mirror pods Running with the expected image tag, etcd healthy. One good reading is not
enough (a flapping signal passes once in a while: kops #8707), so a gate passes after
``gate_passes`` consecutive good readings ``gate_interval`` apart, and fails after ``gate_timeout``
naming the probes that were still failing. Readings are retried with tenacity, on the run's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import tenacity

from upgrader.domain.versions import Version
from upgrader.engine.context import RunContext, StopRequestedError
from upgrader.errors import UpgraderError
from upgrader.ports import ClusterApi

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


@dataclass(frozen=True, slots=True)
class Reading:
    ok: bool
    message: str


Probe = Callable[[], Reading]


class GateFailedError(UpgraderError):
    """A health gate did not pass in time; the run stopped (exit 6)."""

    exit_code = 6


def wait_for(ctx: RunContext, name: str, probes: list[Probe]) -> dict[str, Any]:
    """Read every probe until all pass ``gate_passes`` times in a row; the outputs to record."""
    opts = ctx.options
    deadline = ctx.clock.monotonic() + opts.gate_timeout
    state: dict[str, Any] = {"passes": 0, "readings": 0, "last": []}

    def reading() -> bool:
        if ctx.stop.is_set():
            raise StopRequestedError
        last = [_read(probe) for probe in probes]
        state["readings"] += 1
        state["last"] = last
        state["passes"] = state["passes"] + 1 if all(r.ok for r in last) else 0
        return bool(state["passes"] >= opts.gate_passes)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda done: not done),
        stop=lambda retry_state: ctx.clock.monotonic() >= deadline,
        wait=tenacity.wait_fixed(opts.gate_interval),
        sleep=ctx.sleep,
        reraise=True,
    )
    try:
        with ctx.counting("wait"):  # its readings too: the whole gate is time spent waiting on the cluster
            retrying(reading)
    except tenacity.RetryError:
        failing = [r.message for r in state["last"] if not r.ok] or ["it never read good "
                                                                     f"{opts.gate_passes} times in a row"]
        raise GateFailedError(f"health gate {name!r} did not pass within {opts.gate_timeout:g}s: "
                              + "; ".join(failing)) from None
    return {"gate": name, "readings": state["readings"], "passes": state["passes"],
            "checks": [r.message for r in state["last"]]}


def _read(probe: Probe) -> Reading:
    try:
        return probe()
    except UpgraderError as e:  # the API restarting under kubeadm is a bad reading, not a crash
        return Reading(False, e.message.splitlines()[0][:300] if e.message else type(e).__name__)


def readyz(api: ClusterApi) -> Probe:
    def probe() -> Reading:
        status, body = api.readyz()
        if status == 200:
            return Reading(True, "/readyz 200")
        failed = [line.strip() for line in body.splitlines() if "failed" in line][:2]
        return Reading(False, f"/readyz {status}" + (f": {'; '.join(failed)}" if failed else ""))
    return probe


def node_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def kubelet_version(node: dict[str, Any]) -> str | None:
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion")
    return version if isinstance(version, str) else None


def nodes_at(api: ClusterApi, names: Iterable[str], version: Version | None) -> Probe:
    """These nodes Ready (and their kubelets at ``version`` when given)."""
    wanted = sorted(set(names))

    def probe() -> Reading:
        found = {n["metadata"]["name"]: n for n in api.list_nodes()}
        bad = []
        for name in wanted:
            node = found.get(name)
            if node is None:
                bad.append(f"{name} missing")
            elif not node_ready(node):
                bad.append(f"{name} NotReady")
            elif version is not None and kubelet_version(node) != str(version):
                bad.append(f"{name} kubelet {kubelet_version(node)}")
        at = f" at {version}" if version else ""
        if bad:
            return Reading(False, f"node(s) not Ready{at}: {', '.join(bad)}")
        return Reading(True, f"{len(wanted)} node(s) Ready{at}")
    return probe


def all_nodes_ready(api: ClusterApi, *, besides: Iterable[str] = ()) -> Probe:
    """Every node but ``besides`` (nodes in flight) is Ready."""
    skip = set(besides)

    def probe() -> Reading:
        nodes = [n for n in api.list_nodes() if n["metadata"]["name"] not in skip]
        bad = sorted(n["metadata"]["name"] for n in nodes if not node_ready(n))
        if bad:
            return Reading(False, f"node(s) NotReady: {', '.join(bad)}")
        return Reading(True, f"{len(nodes)} other node(s) Ready")
    return probe


def mirror_pods_at(api: ClusterApi, nodes: Iterable[str], version: Version | None) -> Probe:
    """The control-plane mirror pods of these nodes Running and ready with image tag ``version`` (any tag
    when None: after a runbook put an older manifest back)."""
    wanted = sorted(set(nodes))

    def probe() -> Reading:
        pods = api.list_control_plane_pods()
        bad = []
        for node in wanted:
            for component in CONTROL_PLANE:
                pod = next((p for p in pods if (p.get("spec") or {}).get("nodeName") == node
                            and (p.get("metadata") or {}).get("labels", {}).get("component") == component), None)
                problem = _mirror_problem(pod, version)
                if problem:
                    bad.append(f"{component} on {node} {problem}")
        if bad:
            return Reading(False, "; ".join(bad[:4]) + (f" (+{len(bad) - 4})" if len(bad) > 4 else ""))
        return Reading(True, f"control plane of {', '.join(wanted)} running" + (f" {version}" if version else ""))
    return probe


def _mirror_problem(pod: dict[str, Any] | None, version: Version | None) -> str | None:
    if pod is None:
        return "has no mirror pod"
    images = [c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []]
    if not images or (version is not None and not all(i.endswith(f":{version}") for i in images)):
        return f"runs {', '.join(images) or 'no image'}"
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if status.get("phase") != "Running" or not ready:
        return f"is {status.get('phase') or 'Pending'}{'' if ready else ', not ready'}"
    return None


def etcd(ctx: RunContext) -> Probe:
    def probe() -> Reading:
        ok, message = ctx.hooks.etcd_health()
        return Reading(ok, message)
    return probe
