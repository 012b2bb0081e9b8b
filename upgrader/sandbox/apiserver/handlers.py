"""The REST verbs on resources: get, list, create, update, patch, delete, and the subresources.

Each handler takes a parsed :class:`Request` and returns ``(http_code, body)``; errors are raised as
:class:`~upgrader.sandbox.apiserver.errors.ApiError`. HTTP plumbing and watch live in :mod:`server`,
content negotiation (Tables) in :mod:`negotiation`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import yaml

from upgrader.sandbox.apiserver import errors, eviction, resources, strategies
from upgrader.sandbox.apiserver.patch import apply_patch
from upgrader.sandbox.apiserver.resources import ResourceType
from upgrader.sandbox.apiserver.selectors import field_matcher, label_matcher
from upgrader.sandbox.apiserver.storage import Obj, Store


@dataclass(slots=True)
class Request:
    method: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    query: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""
    content_type: str = "application/json"

    def param(self, key: str, default: str = "") -> str:
        return self.query.get(key, [default])[0]

    def json_body(self) -> Obj:
        """The request object; JSON or YAML. Protobuf (what ``kubectl create <generator>`` sends) is
        refused with 415: decoding it needs every type's field numbers, which this server does not carry."""
        ctype = self.content_type.split(";")[0].strip().lower()
        if ctype not in ("", "application/json", "application/yaml", "*/*"):
            raise errors.unsupported_media_type(ctype, ["application/json", "application/yaml"])
        try:
            obj = yaml.safe_load(self.body) if ctype == "application/yaml" else json.loads(self.body or b"{}")
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding request body: {e}") from e
        if not isinstance(obj, dict):
            raise errors.bad_request("the request body must be a JSON object")
        return obj


def _for_read(store: Store, rt: ResourceType, obj: Obj) -> Obj:
    return eviction.with_live_status(store, obj) if rt is resources.PDBS else obj


def get(store: Store, req: Request) -> tuple[int, Obj]:
    obj = _for_read(store, req.rt, store.get(req.rt, req.namespace, req.name or ""))
    if req.subresource == "scale":
        return 200, _scale(obj)
    return 200, obj


def list_objects(store: Store, req: Request) -> tuple[list[Obj], int]:
    """Objects of the collection that pass ``labelSelector`` and ``fieldSelector``, and the list revision."""
    labels = label_matcher(req.param("labelSelector"))
    fields = field_matcher(req.rt.plural, req.param("fieldSelector"))
    objs, revision = store.list(req.rt, req.namespace)
    return [_for_read(store, req.rt, o) for o in objs if labels(o) and fields(o)], revision


def list_response(rt: ResourceType, items: list[Obj], revision: int) -> Obj:
    # list items carry no kind/apiVersion, like the real server's JSON
    bare = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
    return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": {"resourceVersion": str(revision)},
            "items": bare}


def _check_namespace(store: Store, namespace: str | None) -> None:
    if namespace and store.try_get(resources.NAMESPACES, None, namespace) is None:
        raise errors.not_found(resources.NAMESPACES, namespace)


def create(store: Store, req: Request) -> tuple[int, Obj]:
    obj = req.json_body()
    meta = obj.setdefault("metadata", {})
    if req.rt.namespaced:
        if meta.get("namespace") and meta["namespace"] != req.namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent "
                                     "on the request")
        meta["namespace"] = req.namespace
        _check_namespace(store, req.namespace)
    else:
        meta.pop("namespace", None)
    prepared = strategies.prepare_create(req.rt, obj)
    if _dry_run(req):
        return 201, prepared
    return 201, _for_read(store, req.rt, store.create(req.rt, prepared))


def _dry_run(req: Request) -> bool:
    return req.param("dryRun") == "All"


def _check_identity(req: Request, obj: Obj) -> None:
    meta = obj.setdefault("metadata", {})
    if meta.get("name") and meta["name"] != req.name:
        raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL "
                                 f"({req.name})")
    if req.rt.namespaced and meta.get("namespace") not in (None, "", req.namespace):
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
    meta["name"] = req.name
    if req.rt.namespaced:
        meta["namespace"] = req.namespace


def update(store: Store, req: Request) -> tuple[int, Obj]:
    """PUT: replace; a resourceVersion in the body must still be current (else 409 Conflict)."""
    if req.subresource == "scale":
        return _update_scale(store, req, req.json_body())
    new = req.json_body()
    _check_identity(req, new)
    old = store.get(req.rt, req.namespace, req.name or "")
    if req.subresource == "finalize":
        prepared = copy.deepcopy(old)
        prepared["spec"] = new.get("spec", {})
    else:
        prepared = strategies.prepare_update(req.rt, new, old, subresource=req.subresource)
    if _dry_run(req):
        return 200, prepared
    rv = new["metadata"].get("resourceVersion") or None
    return 200, _for_read(store, req.rt, store.update(req.rt, prepared, expected_rv=rv))


def patch(store: Store, req: Request) -> tuple[int, Obj]:
    """PATCH: re-applied on the latest object until the write wins, unless the patch pins a resourceVersion."""
    result: dict[str, Obj] = {}

    def mutate(current: Obj) -> Obj:
        patched = apply_patch(req.content_type, current, req.body)
        pinned = (patched.get("metadata") or {}).get("resourceVersion")
        if pinned and pinned != current["metadata"]["resourceVersion"]:
            raise errors.conflict(req.rt, req.name or "")
        if req.subresource == "scale":
            scaled = copy.deepcopy(current)
            replicas = apply_patch(req.content_type, _scale(current), req.body).get("spec", {}).get("replicas")
            scaled["spec"]["replicas"] = replicas
            result["prepared"] = scaled
            return scaled
        _check_identity(req, patched)
        result["prepared"] = strategies.prepare_update(req.rt, patched, current, subresource=req.subresource)
        return result["prepared"]

    if _dry_run(req):
        return 200, mutate(store.get(req.rt, req.namespace, req.name or ""))
    obj = store.guaranteed_update(req.rt, req.namespace, req.name or "", mutate)
    return 200, _scale(obj) if req.subresource == "scale" else _for_read(store, req.rt, obj)


def delete(store: Store, req: Request) -> tuple[int, Obj]:
    options = _delete_options(req)
    pre = options.get("preconditions") or {}
    if _dry_run(req) or "All" in (options.get("dryRun") or []):
        return 200, store.get(req.rt, req.namespace, req.name or "")
    obj = store.delete(req.rt, req.namespace, req.name or "", uid=pre.get("uid"),
                       resource_version=pre.get("resourceVersion"))
    if req.rt is resources.NAMESPACES:
        store.delete_namespace_contents(req.name or "")
    if req.rt in (resources.PODS, resources.SERVICES) or obj["metadata"].get("deletionTimestamp"):
        return 200, obj  # these registries return the deleted object (ReturnDeletedObject)
    details: Obj = {"name": req.name, "kind": req.rt.plural, "uid": obj["metadata"].get("uid")}
    if req.rt.group:
        details["group"] = req.rt.group
    return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _delete_options(req: Request) -> Obj:
    """DeleteOptions; a protobuf body (typed Go clients, e.g. ``drain --disable-eviction``) counts as none:
    the sandbox deletes at once anyway, so only preconditions are lost."""
    if not req.body.strip() or "protobuf" in req.content_type:
        return {}
    return req.json_body()


def delete_collection(store: Store, req: Request) -> tuple[int, Obj]:
    items, revision = list_objects(store, req)
    deleted = []
    for obj in items:
        try:
            deleted.append(store.delete(req.rt, obj["metadata"].get("namespace"), obj["metadata"]["name"]))
        except errors.ApiError as e:
            if e.code != 404:
                raise
    return 200, list_response(req.rt, deleted, revision)


def evict(store: Store, req: Request) -> tuple[int, Obj]:
    return 201, eviction.evict(store, req.namespace or "", req.name or "", req.json_body(), dry_run=_dry_run(req))


def _scale(obj: Obj) -> Obj:
    m = obj["metadata"]
    labels = obj.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in m},
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in labels.items())}}


def _update_scale(store: Store, req: Request, scale: Obj) -> tuple[int, Obj]:
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise errors.invalid(req.rt, req.name or "", [("spec.replicas", f"Invalid value: {replicas}: must be "
                                                       "greater than or equal to 0")])

    def mutate(current: Obj) -> Obj:
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(req.rt, req.name or "")
        current["spec"]["replicas"] = replicas
        return current

    return 200, _scale(store.guaranteed_update(req.rt, req.namespace, req.name or "", mutate))
