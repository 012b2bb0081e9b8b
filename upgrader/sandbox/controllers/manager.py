"""The sandbox's kube-controller-manager (and the scheduler and kubelet work pods need), much reduced.

Why directly on etcd (through :class:`Store`) rather than over HTTP: the controllers must keep
workloads alive whichever API server is down, restarting or "unready" (a fault the rehearsals inject
on purpose), and Store gives them the same compare-and-swap semantics as API writes, so they race
with ``kubectl`` exactly like a real controller would (a lost race is retried on the next pass).

One pass (:func:`reconcile_once`), in order:
- node lifecycle: pods on a NotReady node stop being Ready (and become Ready again), pods bound to a
  node that no longer exists are deleted;
- garbage collection: ReplicaSets and pods whose controlling owner is gone are deleted;
- Deployments -> ReplicaSets -> pods, and DaemonSets -> one pod per eligible node;
- Pending pods (created through the API, or by a controller while no node fitted): placed by
  :mod:`.scheduling` and started ("scheduler" + "kubelet");
- PodDisruptionBudget status persisted (the API also computes it on every read).
:func:`run_controllers` repeats passes until its stop event is set.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable

from upgrader.sandbox.apiserver import errors, eviction, objects, resources
from upgrader.sandbox.apiserver.storage import Obj, Store, store_of
from upgrader.sandbox.controllers import scheduling, workloads
from upgrader.sandbox.controllers.scheduling import World
from upgrader.sandbox.etcd.errors import EtcdError
from upgrader.sandbox.etcd.kv import EtcdKV

_OWNER_TYPES = {"ReplicaSet": resources.REPLICASETS, "Deployment": resources.DEPLOYMENTS,
                "DaemonSet": resources.DAEMONSETS, "Node": resources.NODES}


def reconcile_once(kv: EtcdKV | Store, *, prefix: str = "/registry") -> None:
    """One pass of every controller over the whole cluster."""
    store = store_of(kv, prefix)
    nodes, _ = store.list(resources.NODES)
    pods, _ = store.list(resources.PODS)
    world = World(nodes, pods)
    _node_lifecycle(store, world)
    _collect_garbage(store, world)
    deployments, _ = store.list(resources.DEPLOYMENTS)
    replicasets, _ = store.list(resources.REPLICASETS)
    for d in deployments:
        workloads.reconcile_deployment(store, world, d, replicasets)
    for rs in replicasets:
        workloads.reconcile_replicaset(store, world, rs)
    for d in deployments:
        workloads.deployment_status(store, world, d, replicasets)
    for ds in store.list(resources.DAEMONSETS)[0]:
        workloads.reconcile_daemonset(store, world, ds)
    _start_loose_pods(store, world)
    for pdb in store.list(resources.PDBS)[0]:
        status = eviction.compute_status(store, pdb)
        old = pdb.get("status") or {}
        if {k: v for k, v in status.items() if k != "conditions"} != {k: v for k, v in old.items()
                                                                       if k != "conditions"}:
            workloads.write_status(store, resources.PDBS, pdb, status)


def _update_pod(store: Store, pod: Obj, mutate: Callable[[Obj], Obj | None]) -> Obj | None:
    """The pod as written (or as it stands, when ``mutate`` changed nothing); None if it is gone."""
    try:
        return store.guaranteed_update(resources.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], mutate)
    except errors.ApiError as e:
        if e.code != 404:
            raise
    return None


def _node_lifecycle(store: Store, world: World) -> None:
    for pod in list(world.pods):
        name = pod["spec"].get("nodeName")
        if not name or objects.is_mirror_pod(pod):
            continue
        node = world.node(name)
        if node is None:
            workloads.delete_pod(store, world, pod)
            continue
        ready = objects.is_node_ready(node)
        if (pod.get("status") or {}).get("phase") == "Running" and objects.is_pod_ready(pod) != ready:
            def flip(obj: Obj, ready: bool = ready) -> Obj | None:
                return obj if objects.set_pod_ready(obj, ready) else None

            updated = _update_pod(store, pod, flip)
            if updated is not None:
                world.replace(pod, updated)


def _collect_garbage(store: Store, world: World) -> None:
    """Background cascading deletion: dependents of a deleted controller go too."""
    uids: dict[str, set[str]] = {}
    for kind, rt in _OWNER_TYPES.items():
        uids[kind] = {o["metadata"]["uid"] for o in (world.nodes if rt is resources.NODES else store.list(rt)[0])}
    for rs in store.list(resources.REPLICASETS)[0]:
        ref = objects.controller_of(rs)
        if ref and ref["kind"] in uids and ref["uid"] not in uids[ref["kind"]]:
            try:
                store.delete(resources.REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except errors.ApiError as e:
                if e.code != 404:
                    raise
            uids["ReplicaSet"].discard(rs["metadata"]["uid"])
    for pod in list(world.pods):
        ref = objects.controller_of(pod)
        if ref and ref["kind"] in uids and ref["uid"] not in uids[ref["kind"]]:
            workloads.delete_pod(store, world, pod)


def _start_loose_pods(store: Store, world: World) -> None:
    """Pending pods (created through the API, or by a controller while no node fitted): place and start them."""
    for pod in list(world.pods):
        status = pod.get("status") or {}
        if status.get("phase") != "Pending" or objects.is_mirror_pod(pod) or objects.is_deleting(pod):
            continue
        spec = pod["spec"]
        if not spec.get("nodeName") and spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            continue  # another scheduler's pod
        owner = objects.controller_of(pod) or {}
        node = scheduling.pick_node(world, spec, owner_uid=owner.get("uid"))
        if node is None:
            if not spec.get("nodeName"):
                _note_unschedulable(store, world, pod, scheduling.unschedulable_message(world, spec))
            continue

        def start(obj: Obj, node: Obj = node) -> Obj | None:
            if (obj.get("status") or {}).get("phase") != "Pending":
                return None
            obj["spec"]["nodeName"] = node["metadata"]["name"]
            obj["status"] = objects.running_status(obj, node)
            return obj

        started = _update_pod(store, pod, start)
        if started is not None:
            world.replace(pod, started)  # the next pod of this pass sees where this one went


def _note_unschedulable(store: Store, world: World, pod: Obj, message: str) -> None:
    """PodScheduled=False with the scheduler's reason, written only when the reason changes."""
    def note(obj: Obj) -> Obj | None:
        scheduled = objects.condition(obj, "PodScheduled") or {}
        if (obj.get("status") or {}).get("phase") != "Pending" or scheduled.get("message") == message:
            return None
        obj["status"] = objects.pending_status(obj, unschedulable=message)
        return obj

    noted = _update_pod(store, pod, note)
    if noted is not None:
        world.replace(pod, noted)


def run_controllers(
    kv: EtcdKV | Store, stop: threading.Event, *, interval: float = 0.5, prefix: str = "/registry"
) -> None:
    """Reconcile every ``interval`` seconds until ``stop`` is set; etcd outages are waited out."""
    store = store_of(kv, prefix)
    while not stop.is_set():
        try:
            reconcile_once(store)
        except EtcdError:
            pass  # etcd is down or restoring: try again next pass
        except Exception:  # a bug must not kill the sandbox's controllers silently
            traceback.print_exc(file=sys.stderr)
        stop.wait(interval)


def start_controllers(
    kv: EtcdKV | Store, *, interval: float = 0.5, prefix: str = "/registry"
) -> tuple[threading.Thread, threading.Event]:
    """Run the controllers on a daemon thread; set the returned event (and join the thread) to stop."""
    stop = threading.Event()
    thread = threading.Thread(target=run_controllers, args=(kv, stop), kwargs={"interval": interval,
                              "prefix": prefix}, name="sandbox-controllers", daemon=True)
    thread.start()
    return thread, stop
