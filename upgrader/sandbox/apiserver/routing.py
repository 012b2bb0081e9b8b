"""URL paths to resources, as the real server lays them out.

``/api/v1/nodes/cp-1/status``, ``/api/v1/namespaces/demo/pods/web-x/eviction``,
``/apis/apps/v1/deployments`` (all namespaces) and ``/api/v1/namespaces/demo`` (the namespace
object itself) all resolve here; anything else is the generic 404.
"""

from __future__ import annotations

from dataclasses import dataclass

from upgrader.sandbox.apiserver import errors, resources
from upgrader.sandbox.apiserver.resources import ResourceType


@dataclass(frozen=True, slots=True)
class Route:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def is_collection(self) -> bool:
        return self.name is None


def group_version(segments: list[str]) -> tuple[str, str, list[str]] | None:
    """Split ``api/v1/...`` or ``apis/G/V/...`` into (group, version, rest)."""
    if len(segments) >= 2 and segments[0] == "api":
        return "", segments[1], segments[2:]
    if len(segments) >= 3 and segments[0] == "apis":
        return segments[1], segments[2], segments[3:]
    return None


def resolve(group: str, version: str, rest: list[str]) -> Route:
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace = rest[1]
        sub_of_namespace = len(rest) == 3 and resources.NAMESPACES.subresource(rest[2]) is not None
        if not sub_of_namespace:
            rt = _lookup(group, version, rest[2])
            if not rt.namespaced:
                raise errors.path_not_found()
            return _route(rt, namespace, rest[3:])
    if not rest:
        raise errors.path_not_found()
    rt = _lookup(group, version, rest[0])
    if rt.namespaced and len(rest) > 1:
        raise errors.path_not_found()  # a namespaced object needs /namespaces/NS/ in its path
    return _route(rt, None, rest[1:])


def _lookup(group: str, version: str, plural: str) -> ResourceType:
    rt = resources.lookup(group, version, plural)
    if rt is None:
        raise errors.path_not_found()
    return rt


def _route(rt: ResourceType, namespace: str | None, rest: list[str]) -> Route:
    if len(rest) > 2:
        raise errors.path_not_found()
    name = rest[0] if rest else None
    sub = rest[1] if len(rest) == 2 else None
    if sub is not None and rt.subresource(sub) is None:
        raise errors.path_not_found()
    return Route(rt, namespace, name, sub)


_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def verb(method: str, route: Route, *, watch: bool) -> str:
    """The Kubernetes verb of a request (list/watch/deletecollection on collections)."""
    if route.is_collection:
        if method == "GET":
            return "watch" if watch else "list"
        if method == "DELETE":
            return "deletecollection"
    return _VERBS.get(method, "")


def allowed(route: Route, verb_name: str) -> bool:
    if route.subresource is not None:
        sub = route.rt.subresource(route.subresource)
        return sub is not None and verb_name in sub.verbs
    if route.is_collection and verb_name in ("get", "update", "patch"):
        return False
    if not route.is_collection and verb_name in ("list", "watch", "deletecollection"):
        return False
    if not route.is_collection and verb_name == "create":
        return False
    return verb_name in route.rt.verbs
