"""Mirror pods: how the API shows a node's static pods, written by its kubelet straight to etcd.

A mirror pod is ``<name>-<node>`` in the manifest's namespace, owned by its Node, and carries the
manifest's hash (``kubernetes.io/config.hash``): kubeadm waits for that hash to change after it
moves a new manifest in.
"""

from __future__ import annotations

import copy
import hashlib
import json

from upgrader.sandbox.apiserver import errors, objects, resources
from upgrader.sandbox.apiserver.storage import Obj, Store, now, store_of
from upgrader.sandbox.apiserver.strategies import default_pod_spec
from upgrader.sandbox.etcd.kv import EtcdKV

_ATTEMPTS = 10  # the garbage collector may delete a mirror pod under our feet: try again


def upsert_mirror_pod(
    kv: EtcdKV | Store, *, node_name: str, manifest: Obj, config_hash: str | None = None, ready: bool = True,
    prefix: str = "/registry", started: str | None = None,
) -> Obj:
    """Mirror a static pod manifest as the kubelet does: ``<name>-<node>`` in the manifest's namespace.

    A changed manifest (another ``config_hash``) replaces the mirror pod with a new one (new uid),
    which is what kubeadm waits for; the same hash only refreshes readiness and, when the kubelet
    restarted the pod (its manifest moved out and back), its containers' ``startedAt`` (``started``).
    """
    store = store_of(kv, prefix)
    config_hash = config_hash or hashlib.md5(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    namespace = manifest.get("metadata", {}).get("namespace") or "kube-system"
    name = f"{manifest['metadata']['name']}-{node_name}"
    node = store.get(resources.NODES, None, node_name)  # NotFound: the kubelet must register its node first
    for _ in range(_ATTEMPTS):
        existing = store.try_get(resources.PODS, namespace, name)
        try:
            if existing is not None:
                if (existing["metadata"].get("annotations") or {}).get(objects.MIRROR_ANNOTATION) == config_hash:
                    return _refresh(store, existing, ready, started)
                store.delete(resources.PODS, namespace, name, uid=existing["metadata"]["uid"])
            pod = _mirror_pod(manifest, node, name=name, namespace=namespace, config_hash=config_hash)
            pod["status"] = objects.running_status(pod, node, ready=ready, host_network=True, started=started)
            return store.create(resources.PODS, pod)
        except errors.ApiError as e:
            if e.code not in (404, 409):
                raise
    raise errors.conflict(resources.PODS, name)


def _mirror_pod(manifest: Obj, node: Obj, *, name: str, namespace: str, config_hash: str) -> Obj:
    pod = copy.deepcopy(manifest)
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if v is not None and k != "creationTimestamp"}
    meta |= {"name": name, "namespace": namespace, "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": node["metadata"]["name"], "uid": node["metadata"]["uid"],
         "controller": True}]}
    meta["annotations"] = {**(meta.get("annotations") or {}), "kubernetes.io/config.hash": config_hash,
                           objects.MIRROR_ANNOTATION: config_hash, "kubernetes.io/config.seen": now(),
                           "kubernetes.io/config.source": "file"}
    pod["metadata"] = meta
    spec = default_pod_spec(pod.setdefault("spec", {}))
    spec["nodeName"] = node["metadata"]["name"]
    spec.setdefault("tolerations", [{"operator": "Exists", "effect": "NoExecute"}])
    return pod


def _refresh(store: Store, pod: Obj, ready: bool, started: str | None) -> Obj:
    def flip(obj: Obj) -> Obj | None:
        moved = started is not None and objects.set_started(obj, started)
        return obj if objects.set_pod_ready(obj, ready) or moved else None

    return store.guaranteed_update(resources.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], flip)


def remove_mirror_pod(kv: EtcdKV | Store, *, node_name: str, component: str, namespace: str = "kube-system",
                      prefix: str = "/registry") -> None:
    """The manifest is gone: the kubelet deletes its mirror pod (already gone is fine)."""
    store = store_of(kv, prefix)
    try:
        store.delete(resources.PODS, namespace, f"{component}-{node_name}")
    except errors.ApiError as e:
        if e.code != 404:
            raise
