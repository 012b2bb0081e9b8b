"""Content negotiation: what a read, or a watch event, answers for the client's Accept header.

``kubectl get`` asks for ``meta.k8s.io`` Tables and prints their cells; metadata-only clients ask for
PartialObjectMetadata(List); the python client asks for plain JSON. The first meta.k8s.io clause of
Accept decides, as on the real server.
"""

from __future__ import annotations

import json
from typing import Any

from upgrader.sandbox.apiserver import eviction, handlers, tables
from upgrader.sandbox.apiserver.storage import Obj, Store

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def table_format(accept: str) -> str | None:
    """``Table``, ``PartialObjectMetadata`` (or its List) if the first meta.k8s.io clause asks for it."""
    for clause in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in clause.split(";")[1:] if "=" in p)
        if params.get("g") == "meta.k8s.io" and params.get("as") in (
                "Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
            return params["as"]
    return None


def read(req: handlers.Request, items: list[Any], rv: str, accept: str, *, single: bool) -> tuple[Any, str]:
    """The body and content type of a get (``single``) or a list, in the form Accept asks for."""
    fmt = table_format(accept)
    if fmt == "Table":
        include = req.param("includeObject", "Metadata")
        return tables.table(req.rt.plural, items, resource_version=rv, include_object=include), TABLE
    if fmt in ("PartialObjectMetadata", "PartialObjectMetadataList"):
        partial = [{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
                   for o in items]
        if single:
            return partial[0], JSON
        return {"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": rv}, "items": partial}, JSON
    if single:
        return items[0], JSON
    return handlers.list_response(req.rt, items, int(rv)), JSON


def watch_event(store: Store, req: handlers.Request, fmt: str | None, kind: str, obj: Obj) -> bytes:
    """One watch event as the JSON line the client reads (its object a Table when it asked for Tables)."""
    if req.rt.plural == "poddisruptionbudgets" and kind != "DELETED":
        obj = eviction.with_live_status(store, obj)
    if fmt == "Table":
        obj = tables.table(req.rt.plural, [obj], resource_version=obj["metadata"]["resourceVersion"],
                           include_object=req.param("includeObject", "Metadata"))
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"
