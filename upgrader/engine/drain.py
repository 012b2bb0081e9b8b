"""Cordon, drain and uncordon a node through the ClusterApi port, as ``kubectl drain --ignore-daemonsets`` does.

What it guarantees:
- Who cordoned what is recorded on the node: this run sets :data:`CORDON_ANNOTATION` to its run id
  when, and only when, it cordons the node itself. A node someone else cordoned is never annotated,
  and :func:`uncordon` leaves it cordoned (users hate tools that uncordon what they did not cordon).
- Pods leave through the Eviction API, so PodDisruptionBudgets hold: a 429 is asked again every
  ``retry_seconds`` (kubectl's 5 s) until ``timeout``; no pod is deleted without its budget's consent
  unless ``force`` says so at the timeout. DaemonSet pods, mirror (static) pods and finished pods stay.
- The drain ends when the evicted pods are gone from the node, not when their evictions were accepted.
- Time and sleeping come from the Clock port. ``should_stop`` is asked between API calls (safe points:
  the node is cordoned and each eviction was whole), and a stop raises KeyboardInterrupt there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from upgrader import logs
from upgrader.domain.drain_budgets import selector_matches
from upgrader.domain.preflight import CORDON_ANNOTATION, names
from upgrader.errors import DrainError, DrainTimeoutError, NodeNotFoundError
from upgrader.ports import Clock, ClusterApi

log = logs.get_logger(__name__)
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
WAIT_POLL_SECONDS = 1.0  # how often to look whether evicted pods have gone (kubectl looks every second)
Pod = Mapping[str, Any]


class CordonState(StrEnum):
    CORDONED = "cordoned"  # this call cordoned the node and wrote our annotation
    OURS = "ours"  # already cordoned by this run (a resumed drain)
    FOREIGN = "foreign"  # cordoned by someone else: not annotated, never uncordoned by us


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """What a drain did, for the step's outputs in the ledger (:meth:`to_dict`)."""

    cordon: CordonState
    evicted: tuple[str, ...] = ()  # namespace/name
    force_deleted: tuple[str, ...] = ()
    skipped_daemonset: int = 0
    skipped_mirror: int = 0
    refusals_429: int = 0
    waited_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"cordon": str(self.cordon), "evicted": list(self.evicted), "force_deleted": list(self.force_deleted),
                "skipped_daemonset": self.skipped_daemonset, "skipped_mirror": self.skipped_mirror,
                "refusals_429": self.refusals_429, "waited_seconds": round(self.waited_seconds, 3)}


def _annotation(node: Pod) -> str | None:
    value = ((node.get("metadata") or {}).get("annotations") or {}).get(CORDON_ANNOTATION)
    return str(value) if value is not None else None


def _node(api: ClusterApi, name: str) -> dict[str, Any]:
    node = api.get_node(name)
    if node is None:
        raise NodeNotFoundError(f"the cluster has no node {name!r}")
    return node


def cordon(api: ClusterApi, node: str, *, run_id: int) -> CordonState:
    """Make the node unschedulable, marked as this run's; say whose cordon it is."""
    found = _node(api, node)
    if (found.get("spec") or {}).get("unschedulable"):
        return CordonState.OURS if _annotation(found) == str(run_id) else CordonState.FOREIGN
    api.patch_node(node, {"spec": {"unschedulable": True},
                          "metadata": {"annotations": {CORDON_ANNOTATION: str(run_id)}}})
    log.info("node_cordoned", node=node, run_id=run_id)
    return CordonState.CORDONED


def uncordon(api: ClusterApi, node: str, *, run_id: int) -> bool:
    """Make the node schedulable again and drop our annotation, only when this run cordoned it; else leave it."""
    if _annotation(_node(api, node)) != str(run_id):
        return False
    api.patch_node(node, {"spec": {"unschedulable": None}, "metadata": {"annotations": {CORDON_ANNOTATION: None}}})
    log.info("node_uncordoned", node=node, run_id=run_id)
    return True


def drained(api: ClusterApi, node: str, *, run_id: int) -> bool:
    """What a resumed run observes: the node is cordoned by this run and no pod a drain moves is left on it."""
    found = _node(api, node)
    if not (found.get("spec") or {}).get("unschedulable") or _annotation(found) != str(run_id):
        return False
    return not _sorted(api.list_node_pods(node)).evictable


@dataclass(slots=True)
class _Pods:
    evictable: list[Pod] = field(default_factory=list)
    daemonset: int = 0
    mirror: int = 0


def _key(pod: Pod) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def _sorted(pods: Iterable[Pod]) -> _Pods:
    """The pods a drain evicts, and how many it leaves because a DaemonSet or the kubelet (mirror) owns them."""
    out = _Pods()
    for pod in pods:
        meta = pod.get("metadata") or {}
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            out.mirror += 1
        elif any(ref.get("kind") == "DaemonSet" for ref in meta.get("ownerReferences") or []):
            out.daemonset += 1
        elif (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            out.evictable.append(pod)
    return out


@dataclass(slots=True)
class _Progress:
    evicted: dict[str, str | None] = field(default_factory=dict)  # namespace/name -> uid of the pod evicted
    refused: dict[str, str] = field(default_factory=dict)  # namespace/name -> the API's last 429 message
    refusals: int = 0

    def pending(self, pods: Sequence[Pod]) -> list[Pod]:
        """Pods not evicted yet (a pod evicted and still terminating is waited for, not evicted again)."""
        return [p for p in pods if _key(p) not in self.evicted
                or self.evicted[_key(p)] != (p.get("metadata") or {}).get("uid")]


def _stop_if_asked(should_stop: Callable[[], bool]) -> None:
    if should_stop():
        raise KeyboardInterrupt


def _evict(api: ClusterApi, pods: Sequence[Pod], progress: _Progress, should_stop: Callable[[], bool]) -> bool:
    """Ask the API to evict each pod; True when a budget refused one (429: ask again later)."""
    refused = False
    for pod in pods:
        _stop_if_asked(should_stop)
        meta = pod.get("metadata") or {}
        status, message = api.evict_pod(str(meta.get("namespace")), str(meta.get("name")))
        if status in (200, 201):
            progress.evicted[_key(pod)] = meta.get("uid")
            progress.refused.pop(_key(pod), None)
            log.info("pod_evicted", pod=_key(pod))
        elif status == 429:
            progress.refusals += 1
            progress.refused[_key(pod)] = message
            refused = True
        elif status != 404:  # 404: gone already, which is what we wanted
            raise DrainError(f"eviction of pod {_key(pod)} failed: the API answered {status} {message}".rstrip())
    return refused


def drain(api: ClusterApi, clock: Clock, node: str, *, run_id: int, timeout: float, force: bool = False,
          should_stop: Callable[[], bool] = lambda: False, retry_seconds: float = 5.0) -> DrainOutcome:
    """Cordon the node, evict its pods and wait until they are gone; see the module's guarantees.

    At ``timeout`` seconds with pods left: DrainTimeoutError naming them and their budgets, or with
    ``force`` those pods are deleted (no grace) and named in the outcome's ``force_deleted``."""
    started = clock.monotonic()
    state = cordon(api, node, run_id=run_id)
    first = _sorted(api.list_node_pods(node))
    progress, left = _Progress(), first.evictable
    while True:
        refused = _evict(api, progress.pending(left), progress, should_stop)
        left = _sorted(api.list_node_pods(node)).evictable
        remaining = started + timeout - clock.monotonic()
        if not left or remaining <= 0:
            break
        _stop_if_asked(should_stop)
        clock.sleep(min(retry_seconds if refused else min(WAIT_POLL_SECONDS, retry_seconds), remaining))
    deleted = _timed_out(api, node, left, progress, force=force, timeout=timeout) if left else ()
    outcome = DrainOutcome(cordon=state, evicted=tuple(sorted(progress.evicted)), force_deleted=deleted,
                           skipped_daemonset=first.daemonset, skipped_mirror=first.mirror,
                           refusals_429=progress.refusals, waited_seconds=clock.monotonic() - started)
    log.info("node_drained", node=node, run_id=run_id, **outcome.to_dict())
    return outcome


def _timed_out(api: ClusterApi, node: str, left: Sequence[Pod], progress: _Progress, *, force: bool,
               timeout: float) -> tuple[str, ...]:
    """The pods still there at the timeout: deleted with ``force`` (their keys), else DrainTimeoutError."""
    if force:
        for pod in left:
            meta = pod.get("metadata") or {}
            api.delete_pod(str(meta.get("namespace")), str(meta.get("name")), grace_seconds=0)
            log.warning("pod_force_deleted", node=node, pod=_key(pod))
        return tuple(sorted(_key(p) for p in left))
    budgets = _budgets(api.list_pdbs(), left)
    texts = [f"{_key(p)} ({_why(p, budgets, progress)})" for p in sorted(left, key=_key)]
    raise DrainTimeoutError(
        f"node {node} was not drained within {timeout:g}s: {len(texts)} pod(s) still on it: {names(texts, 5)}; "
        "the node stays cordoned (--force-drain deletes them)",
        pods=tuple(sorted(_key(p) for p in left)),
        budgets=tuple(sorted({b for found in budgets.values() for b in found})))


def _budgets(pdbs: Sequence[Pod], pods: Sequence[Pod]) -> dict[str, list[str]]:
    """namespace/name of each pod -> the PodDisruptionBudgets (namespace/name) whose selector matches it."""
    found: dict[str, list[str]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        found[_key(pod)] = [_key(b) for b in pdbs if (b.get("metadata") or {}).get("namespace") == meta.get("namespace")
                            and selector_matches((b.get("spec") or {}).get("selector"), meta.get("labels"))]
    return found


def _why(pod: Pod, budgets: Mapping[str, list[str]], progress: _Progress) -> str:
    key = _key(pod)
    if key in progress.evicted:
        return "evicted, still terminating"
    said = [f"PodDisruptionBudget {b}" for b in budgets.get(key, [])]
    if key in progress.refused:
        said.append(f"the API said: {progress.refused[key]}")
    return "; ".join(said) or "not evicted"
