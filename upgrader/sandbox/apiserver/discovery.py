"""API discovery, legacy and aggregated, from the resource table in :mod:`resources`.

kubectl 1.32 first asks ``/api`` and ``/apis`` for aggregated discovery
(``Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``); we answer it
with that Content-Type, so one round trip describes everything. A client that does not ask gets the
legacy ``APIVersions``/``APIGroupList`` documents and walks ``/api/v1``, ``/apis/<g>/<v>``, as the
python client does.
"""

from __future__ import annotations

from typing import Any

from upgrader.sandbox.apiserver.resources import GROUPS, ResourceType, in_group_version

Obj = dict[str, Any]
DISCOVERY_GROUP = "apidiscovery.k8s.io"


def wanted_aggregated(accept: str) -> str | None:
    """The aggregated-discovery version the Accept header asks for first (v2 or v2beta1), if any."""
    for clause in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in clause.split(";")[1:] if "=" in p)
        group, kind, version = params.get("g"), params.get("as"), params.get("v")
        if (group, kind) == (DISCOVERY_GROUP, "APIGroupDiscoveryList") and version in ("v2", "v2beta1"):
            return version
    return None


def aggregated_content_type(version: str) -> str:
    return f"application/json;g={DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"


def _gv(group: str, version: str) -> Obj:
    return {"groupVersion": f"{group}/{version}" if group else version, "version": version}


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": list(GROUPS[""]),
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_group(group: str) -> Obj:
    versions = GROUPS[group]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [_gv(group, v) for v in versions],
            "preferredVersion": _gv(group, versions[0])}


def api_group_list() -> Obj:
    groups = [api_group(g) for g in GROUPS if g]
    for g in groups:
        del g["kind"], g["apiVersion"]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _legacy_resource(rt: ResourceType) -> list[Obj]:
    main: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced, "kind": rt.kind,
                 "verbs": list(rt.verbs)}
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    out = [main]
    for sub in rt.subresources:
        entry: Obj = {"name": f"{rt.plural}/{sub.name}", "singularName": "", "namespaced": rt.namespaced}
        if sub.group:
            entry["group"], entry["version"] = sub.group, sub.version
        entry["kind"], entry["verbs"] = sub.kind, list(sub.verbs)
        out.append(entry)
    return out


def resource_list(group: str, version: str) -> Obj | None:
    if version not in GROUPS.get(group, ()):
        return None
    body: Obj = {"kind": "APIResourceList"}
    if group:
        body["apiVersion"] = "v1"
    body["groupVersion"] = f"{group}/{version}" if group else version
    body["resources"] = [entry for rt in in_group_version(group, version) for entry in _legacy_resource(rt)]
    return body


def _aggregated_resource(rt: ResourceType) -> Obj:
    entry: Obj = {"resource": rt.plural,
                  "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                  "scope": "Namespaced" if rt.namespaced else "Cluster", "singularResource": rt.singular,
                  "verbs": list(rt.verbs)}
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["subresources"] = [
        {"subresource": s.name,
         "responseKind": {"group": s.group or rt.group, "version": s.version or rt.version, "kind": s.kind},
         "verbs": list(s.verbs)}
        for s in rt.subresources]
    return entry


def aggregated(version: str, *, legacy: bool) -> Obj:
    """/api (legacy=True: the core group) or /apis (every named group) as an APIGroupDiscoveryList."""
    items = []
    for group, versions in GROUPS.items():
        if (group == "") != legacy:
            continue
        items.append({"metadata": {"name": group, "creationTimestamp": None} if group else
                      {"creationTimestamp": None},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_aggregated_resource(rt) for rt in in_group_version(group, v)]}
                                   for v in versions]})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"{DISCOVERY_GROUP}/{version}", "metadata": {},
            "items": items}


def root(head: str, accept: str, *, server_address: str) -> tuple[Obj, str | None]:
    """What ``/api`` (head "api") or ``/apis`` answers: aggregated when Accept asks for it, else legacy.

    The content type is None for the legacy documents (plain JSON).
    """
    wanted = wanted_aggregated(accept)
    if wanted is not None:
        return aggregated(wanted, legacy=head == "api"), aggregated_content_type(wanted)
    if head == "api":
        return api_versions(server_address), None
    return api_group_list(), None
