"""Objects in etcd, the way kube-apiserver keeps them.

Every object is JSON under ``<prefix>/<resource>/<namespace>/<name>`` (cluster-scoped:
``<prefix>/<resource>/<name>``); the prefix is ``/registry`` like ``--etcd-prefix``. The stored JSON
never carries a resourceVersion: it *is* the key's etcd mod_revision, filled in on every read, so a
snapshot restore brings back consistent versions. Writes are compare-and-swap on that revision,
which gives optimistic concurrency across several API servers and the controllers.

The API handlers, the controllers and the seed helpers all write through :class:`Store`, so uid,
creationTimestamp, generation and finalizer handling are the same whoever writes.
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from upgrader.sandbox.apiserver import errors
from upgrader.sandbox.apiserver.resources import ALL, ResourceType
from upgrader.sandbox.etcd.kv import EtcdKV, KeyValue

Obj = dict[str, Any]
# k8s.io/apiserver's name generator alphabet: no vowels (no words), no 0/1/3 (no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_CAS_RETRIES = 20


def now() -> str:
    """Timestamps as the API writes them: RFC 3339, seconds, UTC."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(n: int = 5) -> str:
    return "".join(random.choice(_NAME_ALPHABET) for _ in range(n))


def meta(obj: Obj) -> dict[str, Any]:
    return obj.setdefault("metadata", {})


class Store:
    """Typed CRUD over :class:`EtcdKV` with Kubernetes metadata semantics."""

    def __init__(self, kv: EtcdKV, *, prefix: str = "/registry") -> None:
        self.kv = kv
        self.prefix = prefix.rstrip("/")

    def key(self, rt: ResourceType, namespace: str | None, name: str) -> str:
        if rt.namespaced:
            return f"{self.prefix}/{rt.plural}/{namespace}/{name}"
        return f"{self.prefix}/{rt.plural}/{name}"

    def collection_prefix(self, rt: ResourceType, namespace: str | None) -> str:
        if rt.namespaced and namespace:
            return f"{self.prefix}/{rt.plural}/{namespace}/"
        return f"{self.prefix}/{rt.plural}/"

    @staticmethod
    def decode(kv: KeyValue) -> Obj:
        obj: Obj = json.loads(kv.value)
        meta(obj)["resourceVersion"] = str(kv.mod_revision)
        return obj

    @staticmethod
    def _encode(rt: ResourceType, obj: Obj) -> bytes:
        # kind and apiVersion first, like the real server's JSON (kubectl -o json reads the same)
        stored = {"kind": rt.kind, "apiVersion": rt.api_version,
                  **{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}}
        stored["metadata"] = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
        return json.dumps(stored, separators=(",", ":")).encode()

    def try_get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj | None:
        kv = self.kv.get(self.key(rt, namespace, name))
        return self.decode(kv) if kv else None

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.try_get(rt, namespace, name)
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def list(self, rt: ResourceType, namespace: str | None = None) -> tuple[list[Obj], int]:
        """All objects (of one namespace, or all), in key order, and the revision they were read at."""
        kvs, revision = self.kv.list_prefix(self.collection_prefix(rt, namespace))
        return [self.decode(kv) for kv in kvs], revision

    def create(self, rt: ResourceType, obj: Obj) -> Obj:
        """Store a new object: uid, creationTimestamp, generation set here; name from generateName."""
        obj = copy.deepcopy(obj)
        m = meta(obj)
        m.pop("resourceVersion", None)
        m.pop("deletionTimestamp", None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now()
        if rt.has_generation:
            m["generation"] = 1
        generated = not m.get("name") and bool(m.get("generateName"))
        for _ in range(5 if generated else 1):
            if generated:
                m["name"] = m["generateName"] + random_suffix()
            data = self._encode(rt, obj)
            revision = self.kv.create(self.key(rt, m.get("namespace"), m["name"]), data)
            if revision is not None:
                return self.decode(KeyValue("", data, revision, revision))
        raise errors.already_exists(rt, m["name"])

    def update(self, rt: ResourceType, obj: Obj, *, expected_rv: str | None = None) -> Obj:
        """Replace an object; with ``expected_rv`` only if nobody wrote it since (else 409 Conflict)."""
        m = meta(obj)
        if expected_rv:
            old = self.get(rt, m.get("namespace"), m["name"])
            if old["metadata"]["resourceVersion"] != str(expected_rv):
                raise errors.conflict(rt, m["name"])
            return self._swap(rt, old, obj)

        def replace(old: Obj) -> Obj:
            return obj

        return self.guaranteed_update(rt, m.get("namespace"), m["name"], replace)

    def guaranteed_update(
        self, rt: ResourceType, namespace: str | None, name: str, mutate: Callable[[Obj], Obj | None]
    ) -> Obj:
        """Read, mutate a copy, compare-and-swap; retried on conflict. ``mutate`` returning None = no change."""
        for _ in range(_MAX_CAS_RETRIES):
            old = self.get(rt, namespace, name)
            new = mutate(copy.deepcopy(old))
            if new is None:
                return old
            try:
                return self._swap(rt, old, new)
            except errors.ApiError as e:
                if e.reason != "Conflict":
                    raise
        raise errors.conflict(rt, name)

    def _swap(self, rt: ResourceType, old: Obj, new: Obj) -> Obj:
        new = copy.deepcopy(new)
        om, nm = old["metadata"], meta(new)
        for immutable in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if immutable in om:
                nm[immutable] = om[immutable]
            else:
                nm.pop(immutable, None)
        if rt.has_generation:
            changed = old.get("spec") != new.get("spec")
            nm["generation"] = om.get("generation", 1) + (1 if changed else 0)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        key = self.key(rt, om.get("namespace"), om["name"])
        expected = int(om["resourceVersion"])
        if nm.get("deletionTimestamp") and not nm.get("finalizers"):
            # the last finalizer is gone: the object's pending deletion completes now
            if not self.kv.delete(key, expected_mod_revision=expected):
                raise errors.conflict(rt, om["name"])
            return new
        data = self._encode(rt, new)
        revision = self.kv.update(key, data, expected_mod_revision=expected)
        if revision is None:
            raise errors.conflict(rt, om["name"])
        return self.decode(KeyValue(key, data, revision, revision))

    def delete(
        self, rt: ResourceType, namespace: str | None, name: str, *, uid: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """Delete now, or mark deleting if finalizers remain; returns the object's last state."""
        for _ in range(_MAX_CAS_RETRIES):
            old = self.get(rt, namespace, name)
            m = old["metadata"]
            if uid and m.get("uid") != uid:
                raise errors.conflict(rt, name) from None
            if resource_version and m["resourceVersion"] != resource_version:
                raise errors.conflict(rt, name)
            if m.get("finalizers"):
                if m.get("deletionTimestamp"):
                    return old
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                revision = self.kv.update(self.key(rt, namespace, name), self._encode(rt, new),
                                          expected_mod_revision=int(m["resourceVersion"]))
                if revision is not None:
                    new["metadata"]["resourceVersion"] = str(revision)
                    return new
                continue
            if self.kv.delete(self.key(rt, namespace, name), expected_mod_revision=int(m["resourceVersion"])):
                return old
        raise errors.conflict(rt, name)

    def delete_namespace_contents(self, namespace: str) -> None:
        """What the namespace controller does, done at once: the sandbox has no Terminating phase."""
        for rt in ALL:
            if rt.namespaced:
                self.kv.delete_prefix(self.collection_prefix(rt, namespace))


def store_of(kv: EtcdKV | Store, prefix: str = "/registry") -> Store:
    """``kv`` itself when it is a Store, else a Store over it: the seed helpers and controllers take either."""
    return kv if isinstance(kv, Store) else Store(kv, prefix=prefix)
