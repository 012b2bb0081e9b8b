"""The sandbox's kube-scheduler, reduced to placement rules a rehearsal can tell apart.

A pod with ``spec.nodeName`` is not scheduled at all: it waits for that node's kubelet (the node
must exist and be Ready, and the kubelet admits it only if its ``nodeSelector`` matches), however
the node is cordoned or tainted, as in a real cluster. Every other pod goes through the default
scheduler's filters, in its order and with its words for a node that fails one:
NodeUnschedulable (cordoned), TaintToleration (NoSchedule/NoExecute taints, plus the
``node.kubernetes.io/not-ready`` taint the node lifecycle controller puts on a NotReady node) and
NodeAffinity (``nodeSelector``). Among the nodes left, replicas of one controller spread out (the
default topology spread): fewest pods of the same owner, then fewest pods, then node name, so
placement is deterministic.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from upgrader.sandbox.apiserver import objects
from upgrader.sandbox.apiserver.storage import Obj

NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


@dataclass(slots=True)
class World:
    """One consistent-enough read of the cluster for a reconcile pass; kept current as pods are placed."""

    nodes: list[Obj]
    pods: list[Obj]

    def owned(self, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [p for p in self.pods if (objects.controller_of(p) or {}).get("uid") == uid
                and not objects.is_deleting(p)]

    def node(self, name: str) -> Obj | None:
        return next((n for n in self.nodes if n["metadata"]["name"] == name), None)

    def replace(self, old: Obj, new: Obj) -> None:
        """A pod was written (bound, restarted): later decisions in this pass see the new state."""
        for i, p in enumerate(self.pods):
            if p is old:
                self.pods[i] = new
                return
        self.pods.append(new)


def _active_on(pod: Obj) -> str | None:
    """The node a pod occupies, if it still counts there (bound, not finished, not going away)."""
    if objects.is_deleting(pod) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    name = (pod.get("spec") or {}).get("nodeName")
    return name if isinstance(name, str) and name else None


def selector_fits(node: Obj, spec: Obj) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (spec.get("nodeSelector") or {}).items())


def _format_taint(taint: Obj) -> str:
    return f"{{{taint.get('key', '')}: {taint.get('value', '')}}}"


def unfit_reason(node: Obj, spec: Obj) -> str | None:
    """Why the default scheduler would filter ``node`` out for a pod with ``spec`` (its words), or None."""
    tolerations = spec.get("tolerations") or []
    if (node.get("spec") or {}).get("unschedulable") and not objects.tolerates(tolerations, UNSCHEDULABLE_TAINT):
        return "node(s) were unschedulable"
    taints = objects.node_taints(node) + ([] if objects.is_node_ready(node) else [NOT_READY_TAINT])
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not objects.tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {_format_taint(taint)}"
    if not selector_fits(node, spec):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def pick_node(world: World, spec: Obj, *, owner_uid: str | None = None) -> Obj | None:
    """Where a new pod with ``spec`` runs now, or None while it must stay Pending.

    ``owner_uid`` is the pod's controller (a ReplicaSet): its replicas are spread over the nodes.
    """
    if spec.get("nodeName"):
        node = world.node(spec["nodeName"])
        ready = node is not None and objects.is_node_ready(node) and selector_fits(node, spec)
        return node if ready else None
    fit = [n for n in world.nodes if unfit_reason(n, spec) is None]
    if not fit:
        return None
    total: Counter[str] = Counter()
    siblings: Counter[str] = Counter()
    for pod in world.pods:
        if (name := _active_on(pod)) is None:
            continue
        total[name] += 1
        if owner_uid is not None and (objects.controller_of(pod) or {}).get("uid") == owner_uid:
            siblings[name] += 1

    def load(node: Obj) -> tuple[int, int, str]:
        name = node["metadata"]["name"]
        return siblings[name], total[name], name

    return min(fit, key=load)


def unschedulable_message(world: World, spec: Obj) -> str:
    """The PodScheduled=False message of a pod no node fits, as kube-scheduler v1.30 words it."""
    count = len(world.nodes)
    if not count:
        return "no nodes available to schedule pods"
    reasons = Counter(r for n in world.nodes if (r := unfit_reason(n, spec)) is not None)
    listed = ", ".join(sorted(f"{c} {r}" for r, c in reasons.items()))
    return (f"0/{count} nodes are available: {listed}. preemption: 0/{count} nodes are available: "
            f"{count} Preemption is not helpful for scheduling.")
