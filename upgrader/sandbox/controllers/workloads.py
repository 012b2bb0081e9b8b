"""Deployment, ReplicaSet and DaemonSet controllers, with scheduling and "kubelet" start folded in.

The sandbox has no separate scheduler or container runtime, so a controller that creates a pod also
places it (:mod:`.scheduling`: ``spec.nodeName``) and reports it Running and Ready at once; a pod no
node fits is created Pending and placed by a later pass. Deployments own a ReplicaSet
``<name>-<pod-template-hash>`` that owns the pods, as in a real cluster (kubectl and PDB logic follow
those ownerReferences). A changed template switches to a new ReplicaSet at once (no surge).
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from upgrader.sandbox.apiserver import errors, objects, resources
from upgrader.sandbox.apiserver.selectors import selector_matches
from upgrader.sandbox.apiserver.storage import Obj, Store, now
from upgrader.sandbox.controllers.scheduling import World, pick_node, unschedulable_message

# Taints every DaemonSet pod tolerates (pkg/controller/daemon/util AddOrUpdateDaemonPodTolerations).
DAEMON_TOLERATIONS = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": e} for k, e in (
    ("not-ready", "NoExecute"), ("unreachable", "NoExecute"), ("disk-pressure", "NoSchedule"),
    ("memory-pressure", "NoSchedule"), ("pid-pressure", "NoSchedule"), ("unschedulable", "NoSchedule"))]
# What DefaultTolerationSeconds admission adds to every ordinary pod.
DEFAULT_TOLERATIONS = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 300} for k in ("not-ready", "unreachable")]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def new_pod(
    owner: Obj, template: Obj, world: World, *, extra_labels: dict[str, str], node: Obj | None = None
) -> Obj:
    """A pod of ``owner`` from ``template``, bound to ``node`` (DaemonSets) or to where the scheduler puts it."""
    tmpl = copy.deepcopy(template)
    meta = tmpl.get("metadata") or {}
    spec = tmpl.get("spec") or {}
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": f"{owner['metadata']['name']}-",  # Store picks the name
                             "namespace": owner["metadata"]["namespace"],
                             "labels": {**(meta.get("labels") or {}), **extra_labels},
                             "ownerReferences": [objects.owner_reference(owner)]},
                "spec": spec}
    if meta.get("annotations"):
        pod["metadata"]["annotations"] = meta["annotations"]
    node = node or pick_node(world, spec, owner_uid=owner["metadata"]["uid"])
    if node is None:
        pod["status"] = objects.pending_status(pod, unschedulable=None if spec.get("nodeName") else
                                               unschedulable_message(world, spec))
        return pod
    spec["nodeName"] = node["metadata"]["name"]
    pod["status"] = objects.running_status(pod, node, ready=objects.is_node_ready(node))
    return pod


def _create(store: Store, world: World, pod: Obj) -> None:
    world.pods.append(store.create(resources.PODS, pod))


def delete_pod(store: Store, world: World, pod: Obj) -> None:
    if pod in world.pods:
        world.pods.remove(pod)
    try:
        store.delete(resources.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                     uid=pod["metadata"]["uid"])
    except errors.ApiError as e:
        if e.code not in (404, 409):
            raise


def write_status(store: Store, rt: resources.ResourceType, obj: Obj, status: Obj) -> None:
    """Persist status only when it changed, so an idle cluster's revision stands still."""
    if obj.get("status") == status:
        return

    def put(current: Obj) -> Obj | None:
        if current.get("status") == status:
            return None
        current["status"] = status
        return current

    try:
        store.guaranteed_update(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"], put)
    except errors.ApiError as e:
        if e.code != 404:
            raise


def _condition(old: Obj, kind: str, status: str, reason: str, message: str) -> Obj:
    prev = next((c for c in old.get("conditions") or [] if c.get("type") == kind), None)
    if prev and (prev.get("status"), prev.get("reason"), prev.get("message")) == (status, reason, message):
        return prev
    stamp = now()
    return {"type": kind, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def reconcile_deployment(store: Store, world: World, deploy: Obj, replicasets: list[Obj]) -> None:
    spec = deploy["spec"]
    template = copy.deepcopy(spec["template"])
    h = template_hash(template)
    template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
    uid = deploy["metadata"]["uid"]
    owned: list[Obj] = [rs for rs in replicasets if (objects.controller_of(rs) or {}).get("uid") == uid]
    name = f"{deploy['metadata']['name']}-{h}"
    current: Obj | None = next((rs for rs in owned if rs["metadata"]["name"] == name), None)
    replicas = int(spec.get("replicas", 1))
    if current is None:
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": name, "namespace": deploy["metadata"]["namespace"],
                           "labels": template["metadata"]["labels"],
                           "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                           "deployment.kubernetes.io/revision": str(len(owned) + 1)},
                           "ownerReferences": [objects.owner_reference(deploy)]},
              "spec": {"replicas": replicas,
                       "selector": {"matchLabels": {**spec["selector"].get("matchLabels", {}),
                                                    "pod-template-hash": h}},
                       "template": template},
              "status": {"replicas": 0}}
        current = store.create(resources.REPLICASETS, rs)
        replicasets.append(current)
    for old in owned:
        want = replicas if old is current else 0
        if old["spec"].get("replicas") != want:
            def scale(o: Obj, w: int = want) -> Obj:
                return {**o, "spec": {**o["spec"], "replicas": w}}

            meta = old["metadata"]
            scaled = store.guaranteed_update(resources.REPLICASETS, meta["namespace"], meta["name"], scale)
            replicasets[replicasets.index(old)] = scaled


def deployment_status(store: Store, world: World, deploy: Obj, replicasets: list[Obj]) -> None:
    """Status after the ReplicaSets had their turn (so one pass converges)."""
    uid = deploy["metadata"]["uid"]
    owned = [rs for rs in replicasets if (objects.controller_of(rs) or {}).get("uid") == uid]
    template = copy.deepcopy(deploy["spec"]["template"])
    name = f"{deploy['metadata']['name']}-{template_hash(template)}"
    replicas = int(deploy["spec"].get("replicas", 1))
    pods = [p for rs in owned for p in world.owned(rs)]
    ready = sum(1 for p in pods if objects.is_pod_ready(p))
    updated = sum(len(world.owned(rs)) for rs in owned if rs["metadata"]["name"] == name)
    old = deploy.get("status") or {}
    status: Obj = {"observedGeneration": deploy["metadata"].get("generation", 1), "replicas": len(pods),
                   "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready}
    if len(pods) - ready > 0:
        status["unavailableReplicas"] = len(pods) - ready
    available = ready >= replicas - 1 or replicas == 0
    status["conditions"] = [
        _condition(old, "Available", "True" if available else "False",
                   "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                   "Deployment has minimum availability." if available else
                   "Deployment does not have minimum availability."),
        _condition(old, "Progressing", "True", "NewReplicaSetAvailable",
                   f'ReplicaSet "{name}" has successfully progressed.')]
    for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
        if not status[key]:
            del status[key]  # omitempty, as the real server serialises it
    write_status(store, resources.DEPLOYMENTS, deploy, status)


def reconcile_replicaset(store: Store, world: World, rs: Obj) -> None:
    spec = rs["spec"]
    want = int(spec.get("replicas", 1))
    pods = [p for p in world.owned(rs) if selector_matches(spec.get("selector"), p["metadata"].get("labels"))]
    tolerations = (spec["template"].get("spec") or {}).get("tolerations") or []
    template = copy.deepcopy(spec["template"])
    template.setdefault("spec", {})["tolerations"] = tolerations + [
        t for t in DEFAULT_TOLERATIONS if t not in tolerations]
    for _ in range(want - len(pods)):
        _create(store, world, new_pod(rs, template, world, extra_labels={}))
    if len(pods) > want:
        # like the real controller: unscheduled, then not ready, then the newest go first
        doomed = sorted(pods, key=lambda p: (bool(p["spec"].get("nodeName")), objects.is_pod_ready(p),
                                             p["metadata"].get("creationTimestamp", "")), reverse=False)
        for pod in doomed[: len(pods) - want]:
            delete_pod(store, world, pod)
    owned = world.owned(rs)
    ready = sum(1 for p in owned if objects.is_pod_ready(p))
    status: Obj = {"replicas": len(owned), "fullyLabeledReplicas": len(owned), "readyReplicas": ready,
                   "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
    write_status(store, resources.REPLICASETS, rs, {k: v for k, v in status.items() if v or k == "replicas"})


def reconcile_daemonset(store: Store, world: World, ds: Obj) -> None:
    """One pod per node whose taints the pod tolerates; outdated pods replaced one at a time."""
    template = copy.deepcopy(ds["spec"]["template"])
    tolerations = ((template.get("spec") or {}).get("tolerations") or []) + DAEMON_TOLERATIONS
    template.setdefault("spec", {})["tolerations"] = tolerations
    h = template_hash(ds["spec"]["template"])
    pods = world.owned(ds)
    selector = template["spec"].get("nodeSelector") or {}
    eligible = {n["metadata"]["name"]: n for n in world.nodes
                if all(objects.tolerates(tolerations, t) for t in objects.node_taints(n)
                       if t.get("effect") in ("NoSchedule", "NoExecute"))
                and all((n["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())}
    by_node: dict[str, list[Obj]] = {}
    for p in pods:
        by_node.setdefault(p["spec"].get("nodeName", ""), []).append(p)
    for name, extra in by_node.items():
        for pod in extra[1:] if name in eligible else extra:
            delete_pod(store, world, pod)
    outdated = [p for name, ps in by_node.items() if name in eligible for p in ps[:1]
                if p["metadata"].get("labels", {}).get("controller-revision-hash") != h]
    if outdated and all(objects.is_pod_ready(p) for name, ps in by_node.items() for p in ps[:1]):
        delete_pod(store, world, outdated[0])
        by_node[outdated[0]["spec"]["nodeName"]] = []
    for name, node in eligible.items():
        if not by_node.get(name):
            pod = new_pod(ds, _pinned(template, name), world, node=node,
                          extra_labels={"controller-revision-hash": h,
                                        "pod-template-generation": str(ds["metadata"].get("generation", 1))})
            _create(store, world, pod)
    _daemonset_status(store, world, ds, eligible, h)


def _pinned(template: Obj, node: str) -> Obj:
    """DaemonSet pods carry node affinity to their node (the real controller's way of binding)."""
    t = copy.deepcopy(template)
    t["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
    return t


def _daemonset_status(store: Store, world: World, ds: Obj, eligible: dict[str, Any], h: str) -> None:
    pods = world.owned(ds)
    on_eligible = [p for p in pods if p["spec"].get("nodeName") in eligible]
    ready = sum(1 for p in on_eligible if objects.is_pod_ready(p))
    updated = sum(1 for p in on_eligible if p["metadata"].get("labels", {}).get("controller-revision-hash") == h)
    status: Obj = {"currentNumberScheduled": len(on_eligible), "numberMisscheduled": len(pods) - len(on_eligible),
                   "desiredNumberScheduled": len(eligible), "numberReady": ready,
                   "observedGeneration": ds["metadata"].get("generation", 1), "updatedNumberScheduled": updated,
                   "numberAvailable": ready}
    if len(eligible) - ready > 0:
        status["numberUnavailable"] = len(eligible) - ready
    write_status(store, resources.DAEMONSETS, ds, status)
