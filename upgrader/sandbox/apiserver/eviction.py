"""PodDisruptionBudget status and the ``pods/eviction`` subresource.

PDB status is computed from the pods whenever it is read (as if the disruption controller had just
run), so the answer is right even when no controller is running. Only ``status.disruptedPods`` is
persisted: an eviction records its pod there with a compare-and-swap on the PDB before deleting, so
two concurrent evictions (``kubectl drain`` evicts a node's pods in parallel) cannot both spend the
last allowed disruption. This mirrors pkg/registry/core/pod/storage/eviction.go.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from upgrader.sandbox.apiserver import errors, objects, resources
from upgrader.sandbox.apiserver.selectors import selector_matches
from upgrader.sandbox.apiserver.storage import Store, now

Obj = dict[str, Any]
PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
# The disruption controller forgets an evicted pod that did not go away after this long.
DISRUPTED_POD_TTL = timedelta(minutes=2)
_RETRIES = 10
_SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def matching_pdbs(store: Store, pod: Obj) -> list[Obj]:
    pdbs, _ = store.list(resources.PDBS, pod["metadata"]["namespace"])
    labels = pod["metadata"].get("labels") or {}
    return [p for p in pdbs if selector_matches(p.get("spec", {}).get("selector"), labels)]


def _expected_scale(store: Store, namespace: str, pods: list[Obj]) -> int:
    """Sum of the desired replicas of the pods' controllers (Deployment through its ReplicaSet)."""
    seen: dict[str, int] = {}
    for pod in pods:
        ref = objects.controller_of(pod)
        if ref is None:
            seen[pod["metadata"]["uid"]] = 1
            continue
        seen[ref["uid"]] = _controller_scale(store, namespace, ref)
    return sum(seen.values())


def _controller_scale(store: Store, namespace: str, ref: Obj) -> int:
    rt = {"ReplicaSet": resources.REPLICASETS, "Deployment": resources.DEPLOYMENTS,
          "DaemonSet": resources.DAEMONSETS}.get(ref["kind"])
    owner = store.try_get(rt, namespace, ref["name"]) if rt else None
    if owner is None:
        return 1
    if rt is resources.REPLICASETS and (parent := objects.controller_of(owner)) and parent["kind"] == "Deployment":
        return _controller_scale(store, namespace, parent)
    if rt is resources.DAEMONSETS:
        return int(owner.get("status", {}).get("desiredNumberScheduled", 0))
    return int(owner.get("spec", {}).get("replicas", 1))


def _disrupted(pdb: Obj, at: datetime) -> dict[str, str]:
    out = {}
    for name, stamp in ((pdb.get("status") or {}).get("disruptedPods") or {}).items():
        when = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if when + DISRUPTED_POD_TTL > at:
            out[name] = stamp
    return out


def compute_status(store: Store, pdb: Obj) -> Obj:
    """The status the disruption controller would write now (pkg/controller/disruption)."""
    ns, spec = pdb["metadata"]["namespace"], pdb.get("spec") or {}
    all_pods, _ = store.list(resources.PODS, ns)
    pods = [p for p in all_pods if selector_matches(spec.get("selector"), p["metadata"].get("labels"))]
    # an evicted pod stays "disrupted" until it is gone (or the entry expires), as in the real controller
    names = {p["metadata"]["name"] for p in all_pods}
    disrupted = {k: v for k, v in _disrupted(pdb, datetime.now(UTC)).items() if k in names}
    healthy = sum(1 for p in pods if objects.is_pod_ready(p) and not objects.is_deleting(p)
                  and p["metadata"]["name"] not in disrupted)
    if "maxUnavailable" in spec:
        expected = _expected_scale(store, ns, pods)
        desired = max(0, expected - objects.int_or_percent(spec["maxUnavailable"], expected, round_up=True))
    elif isinstance(spec.get("minAvailable"), str):
        expected = _expected_scale(store, ns, pods)
        desired = objects.int_or_percent(spec["minAvailable"], expected, round_up=True)
    else:
        expected, desired = len(pods), int(spec.get("minAvailable", 0))
    allowed = max(0, healthy - desired) if expected > 0 else 0
    old = (pdb.get("status") or {}).get("conditions") or []
    cond = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
            "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
            "observedGeneration": pdb["metadata"].get("generation", 1), "lastTransitionTime": now()}
    if old and old[0].get("status") == cond["status"]:
        cond["lastTransitionTime"] = old[0].get("lastTransitionTime", cond["lastTransitionTime"])
    status: Obj = {"observedGeneration": pdb["metadata"].get("generation", 1), "disruptionsAllowed": allowed,
                   "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                   "conditions": [cond]}
    if disrupted:
        status["disruptedPods"] = disrupted
    return status


def with_live_status(store: Store, pdb: Obj) -> Obj:
    pdb = copy.deepcopy(pdb)
    pdb["status"] = compute_status(store, pdb)
    return pdb


def _can_ignore_pdb(pod: Obj) -> bool:
    """Pods that are done, not started yet or already going away do not count against a budget."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or objects.is_deleting(pod)


def evict(store: Store, namespace: str, name: str, eviction: Obj, *, dry_run: bool = False) -> Obj:
    """POST pods/NAME/eviction: delete the pod unless its PodDisruptionBudget forbids it (429)."""
    if (eviction.get("metadata") or {}).get("name") not in (None, "", name):
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = eviction.get("deleteOptions") or {}
    preconditions = options.get("preconditions") or {}
    dry_run = dry_run or "All" in (options.get("dryRun") or [])
    for _ in range(_RETRIES):
        pod = store.get(resources.PODS, namespace, name)
        if not _can_ignore_pdb(pod) and not _spend_budget(store, pod, dry_run=dry_run):
            continue  # lost a race on the PDB: look again
        if dry_run:
            return _SUCCESS
        store.delete(resources.PODS, namespace, name, uid=preconditions.get("uid"),
                     resource_version=preconditions.get("resourceVersion"))
        return _SUCCESS
    raise errors.too_many_requests(PDB_MESSAGE, [])


def _spend_budget(store: Store, pod: Obj, *, dry_run: bool) -> bool:
    """Record the disruption on the pod's PDB; raise 429 when none is allowed, False on a write race."""
    pdbs = matching_pdbs(store, pod)
    if not pdbs:
        return True
    if len(pdbs) > 1:
        raise errors.internal("This pod has more than one PodDisruptionBudget, which the eviction "
                              "subresource does not support.")
    pdb = pdbs[0]
    status = compute_status(store, pdb)
    if not objects.is_pod_ready(pod) and status["currentHealthy"] >= status["desiredHealthy"] > 0:
        return True  # unhealthyPodEvictionPolicy IfHealthyBudget: an unready pod may go while the budget holds
    if status["disruptionsAllowed"] <= 0:
        cause = (f"The disruption budget {pdb['metadata']['name']} needs {status['desiredHealthy']} healthy "
                 f"pods and has {status['currentHealthy']} currently")
        raise errors.too_many_requests(PDB_MESSAGE, [{"reason": "DisruptionBudget", "message": cause}])
    if dry_run:
        return True
    status["disruptionsAllowed"] -= 1
    status["disruptedPods"] = {**status.get("disruptedPods", {}), pod["metadata"]["name"]: now()}
    new = copy.deepcopy(pdb)
    new["status"] = status
    try:
        store.update(resources.PDBS, new, expected_rv=pdb["metadata"]["resourceVersion"])
    except errors.ApiError as e:
        if e.reason == "Conflict":
            return False
        raise
    return True
