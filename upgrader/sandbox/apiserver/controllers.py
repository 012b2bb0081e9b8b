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
- ordinary pods created through the API: bound to a node and started ("scheduler" + "kubelet");
- PodDisruptionBudget status persisted (the API also computes it on every read).
:func:`run_controllers` repeats passes until its stop event is set.
"""

from __future__ import annotations

import sys
import threading
import traceback

from upgrader.sandbox.apiserver import errors, eviction, objects, podutil, resources, workloads
from upgrader.sandbox.apiserver.storage import Obj, Store
from upgrader.sandbox.apiserver.workloads import World
from upgrader.sandbox.etcd import EtcdError, EtcdKV

_OWNER_TYPES = {"ReplicaSet": resources.REPLICASETS, "Deployment": resources.DEPLOYMENTS,
                "DaemonSet": resources.DAEMONSETS, "Node": resources.NODES}


def _store(kv: EtcdKV | Store, prefix: str) -> Store:
    return kv if isinstance(kv, Store) else Store(kv, prefix=prefix)


def reconcile_once(kv: EtcdKV | Store, *, prefix: str = "/registry") -> None:
    """One pass of every controller over the whole cluster."""
    store = _store(kv, prefix)
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


def _update_pod(store: Store, pod: Obj, mutate: object) -> None:
    try:
        store.guaranteed_update(resources.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"],
                                mutate)  # type: ignore[arg-type]
    except errors.ApiError as e:
        if e.code != 404:
            raise


def _node_lifecycle(store: Store, world: World) -> None:
    for pod in list(world.pods):
        name = pod["spec"].get("nodeName")
        if not name or podutil.is_mirror_pod(pod):
            continue
        node = world.node(name)
        if node is None:
            workloads.delete_pod(store, world, pod)
            continue
        ready = podutil.is_node_ready(node)
        if (pod.get("status") or {}).get("phase") == "Running" and podutil.is_pod_ready(pod) != ready:
            _update_pod(store, pod, lambda o, r=ready: o if objects.set_pod_ready(o, r) else None)


def _collect_garbage(store: Store, world: World) -> None:
    """Background cascading deletion: dependents of a deleted controller go too."""
    uids: dict[str, set[str]] = {}
    for kind, rt in _OWNER_TYPES.items():
        uids[kind] = {o["metadata"]["uid"] for o in (world.nodes if rt is resources.NODES else store.list(rt)[0])}
    for rs in store.list(resources.REPLICASETS)[0]:
        ref = podutil.controller_of(rs)
        if ref and ref["kind"] in uids and ref["uid"] not in uids[ref["kind"]]:
            try:
                store.delete(resources.REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])
            except errors.ApiError as e:
                if e.code != 404:
                    raise
            uids["ReplicaSet"].discard(rs["metadata"]["uid"])
    for pod in list(world.pods):
        ref = podutil.controller_of(pod)
        if ref and ref["kind"] in uids and ref["uid"] not in uids[ref["kind"]]:
            workloads.delete_pod(store, world, pod)


def _start_loose_pods(store: Store, world: World) -> None:
    """Pods created through the API start Pending: bind them and report them running."""
    for pod in list(world.pods):
        status = pod.get("status") or {}
        if status.get("phase") != "Pending" or podutil.is_mirror_pod(pod) or podutil.is_deleting(pod):
            continue
        if pod["spec"].get("schedulerName", "default-scheduler") != "default-scheduler":
            continue
        node = world.node(pod["spec"]["nodeName"]) if pod["spec"].get("nodeName") else workloads.pick_node(
            world, pod["spec"].get("tolerations") or [], [])
        if node is None or not podutil.is_node_ready(node):
            continue

        def start(obj: Obj, node: Obj = node) -> Obj | None:
            if (obj.get("status") or {}).get("phase") != "Pending":
                return None
            obj["spec"]["nodeName"] = node["metadata"]["name"]
            obj["status"] = objects.running_status(obj, node)
            return obj

        _update_pod(store, pod, start)


def run_controllers(
    kv: EtcdKV | Store, stop: threading.Event, *, interval: float = 0.5, prefix: str = "/registry"
) -> None:
    """Reconcile every ``interval`` seconds until ``stop`` is set; etcd outages are waited out."""
    store = _store(kv, prefix)
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
