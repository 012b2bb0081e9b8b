"""The three PATCH dialects of the Kubernetes API: strategic merge, JSON merge and JSON patch.

``kubectl cordon`` sends ``{"spec":{"unschedulable":true}}`` and ``uncordon``
``{"spec":{"unschedulable":null}}`` as strategic merge patches; the python client sends dict bodies
as strategic merge too. Strategic merge needs each list's merge key, which the real server reads from
Go struct tags; here a table by field name covers the core, apps and policy types we serve.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from upgrader.sandbox.apiserver import errors

STRATEGIC = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
ACCEPTED = [JSON_PATCH, MERGE, APPLY, STRATEGIC]

# patchMergeKey of list fields (k8s.io/api struct tags); "ports" is decided per element below.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath", "conditions": "type",
    "addresses": "type", "ownerReferences": "uid", "imagePullSecrets": "name", "hostAliases": "ip",
    "podIPs": "ip", "hostIPs": "ip", "resourceClaims": "name", "topologySpreadConstraints": "topologyKey",
}
_PRIMITIVE_MERGE = {"finalizers"}


def apply_patch(content_type: str, original: dict[str, Any], body: bytes) -> dict[str, Any]:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype not in (STRATEGIC, MERGE, JSON_PATCH):
        raise errors.unsupported_media_type(ctype, ACCEPTED)
    try:
        patch = json.loads(body or b"null")
    except ValueError as e:
        raise errors.bad_request(f"error decoding patch: {e}") from e
    if ctype == JSON_PATCH:
        return json_patch(original, patch)
    if not isinstance(patch, dict):
        raise errors.bad_request("patch body must be a JSON object")
    if ctype == MERGE:
        return merge_patch(original, patch)
    return strategic_merge(original, patch) or {}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(original: Any, patch: dict[str, Any]) -> Any:
    """Strategic merge of one map; None means the map itself was deleted (``$patch: delete``)."""
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    body = {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "replace":
        return copy.deepcopy(body)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
        elif key == "$retainKeys":
            result = {k: v for k, v in result.items() if k in value or k in body}
    for key, value in body.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            merged = strategic_merge(result[key], value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, dict):
            merged = strategic_merge({}, value)
            if merged is not None:
                result[key] = merged
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        else:
            result[key] = _strip_directives(value)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value if not (isinstance(v, dict) and v.get("$patch") == "delete")]
    return copy.deepcopy(value)


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        first = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in first else "port"
    return _MERGE_KEYS.get(field)


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if field in _PRIMITIVE_MERGE:
        return list(original) + [v for v in patch if v not in original]
    key = _merge_key(field, patch)
    if key is None or not all(isinstance(i, dict) for i in [*original, *patch]):
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return _strip_directives(patch)
    result = copy.deepcopy(original)
    for item in patch:
        if item.get("$patch") == "replace":
            return [_strip_directives(i) for i in patch if "$patch" not in i]
        idx = next((n for n, o in enumerate(result) if o.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append(_strip_directives(item))
        else:
            result[idx] = strategic_merge(result[idx], item)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc


def json_patch(original: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 add/remove/replace/move/copy/test."""
    if not isinstance(ops, list):
        raise errors.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(original)
    try:
        for op in ops:
            doc = _json_patch_op(doc, op)
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise errors.ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                              f"request: {e!r}") from e
    return doc


def _json_patch_op(doc: Any, op: dict[str, Any]) -> Any:
    kind, parts = op["op"], _pointer(op["path"])
    if kind == "test":
        if _walk(doc, parts) != op.get("value"):
            raise ValueError(f"test failed at {op['path']}")
        return doc
    if kind in ("move", "copy"):
        value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _json_patch_op(doc, {"op": "remove", "path": op["from"]})
        return _json_patch_op(doc, {"op": "add", "path": op["path"], "value": value})
    if not parts:
        return copy.deepcopy(op.get("value"))
    parent, last = _walk(doc, parts[:-1]), parts[-1]
    if kind == "remove":
        del parent[int(last) if isinstance(parent, list) else last]
    elif kind == "replace":
        parent[int(last) if isinstance(parent, list) else last] = copy.deepcopy(op["value"])
    elif kind == "add":
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
        else:
            parent[last] = copy.deepcopy(op["value"])
    else:
        raise ValueError(f"unknown json patch op {kind!r}")
    return doc
