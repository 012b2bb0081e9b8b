"""What an inventory tells beyond versions: node facts, the kubeadm ClusterConfiguration, etcd's members.

Every field here is optional in a document (older inventories and hand-written ``--state`` files
have none of them) and validated when present. Observation failures are recorded, not raised: a
node whose transport failed gets ``packages: {"status": "transport_error", "error": ...}``, an
etcd nobody could reach ``etcd: {"error": ...}``.

:func:`stable_view` is what the fingerprint hashes of these facts: what the API says of the cluster
and its nodes (what planning reads), never what moves on its own between two looks at an unchanged
cluster. etcd's members and the nodes' packages are recorded but not fingerprinted: they are seen
through other channels (etcd's client port, the node transport) whose reachability changes on its
own, and no plan is made from them, so a glitch there never makes a plan look stale (see
``Inventory.fingerprint``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from upgrader.domain import inventory_fields as f
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version
from upgrader.errors import InvalidInventoryError

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
PACKAGE_MANAGERS = ("apt", "dnf", "yum")
MINOR = re.compile(r"v[0-9]{1,3}\.[0-9]{1,3}", re.ASCII)
_MEMBER_ID = re.compile(r"[0-9a-f]{1,16}", re.ASCII)


class PackageStatus(StrEnum):
    OBSERVED = "observed"
    NOT_OBSERVED = "not_observed"  # the cluster has no node transport configured
    TRANSPORT_ERROR = "transport_error"  # the node could not be reached or a command failed


@dataclass(frozen=True, slots=True)
class Taint:
    key: str
    effect: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class PackageRepo:
    """The Kubernetes package repository a node's package manager uses, e.g. pkgs.k8s.io's v1.31."""

    url: str
    file: str
    minor: str | None = None  # "v1.31" for a pkgs.k8s.io per-minor repository, else None


@dataclass(frozen=True, slots=True)
class PackageState:
    status: PackageStatus
    manager: str | None = None  # apt, dnf, yum; None when none was found (or not observed)
    repo: PackageRepo | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class KubeadmConfig:
    """The kubeadm-config ConfigMap's ClusterConfiguration, or why it could not be read."""

    kubernetes_version: Version | None = None
    etcd: str | None = None  # "local" or "external"
    etcd_endpoints: tuple[str, ...] = ()  # external etcd's endpoints
    image_repository: str | None = None
    control_plane_endpoint: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EtcdMemberInfo:
    id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    leader: bool | None = None
    healthy: bool | None = None
    db_size: int | None = None
    revision: int | None = None
    version: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class EtcdState:
    members: tuple[EtcdMemberInfo, ...] | None = None
    error: str | None = None


# -- to JSON --------------------------------------------------------------------------------------

def taint_to_dict(t: Taint) -> dict[str, Any]:
    return {"key": t.key, "value": t.value, "effect": t.effect}


def packages_to_dict(p: PackageState) -> dict[str, Any]:
    doc: dict[str, Any] = {"status": str(p.status)}
    if p.status is PackageStatus.OBSERVED:
        doc["manager"] = p.manager
        doc["repo"] = None if p.repo is None else {"url": p.repo.url, "minor": p.repo.minor, "file": p.repo.file}
    if p.error is not None:
        doc["error"] = p.error
    return doc


def kubeadm_config_to_dict(k: KubeadmConfig) -> dict[str, Any]:
    if k.error is not None:
        return {"error": k.error}
    etcd: dict[str, Any] = {"mode": k.etcd}
    if k.etcd == "external":
        etcd["endpoints"] = list(k.etcd_endpoints)
    return {"kubernetes_version": str(k.kubernetes_version), "etcd": etcd, "image_repository": k.image_repository,
            "control_plane_endpoint": k.control_plane_endpoint}


def member_to_dict(m: EtcdMemberInfo) -> dict[str, Any]:
    return {"id": m.id, "name": m.name, "peer_urls": list(m.peer_urls), "client_urls": list(m.client_urls),
            "leader": m.leader, "healthy": m.healthy, "db_size": m.db_size, "revision": m.revision,
            "version": m.version, "error": m.error}


def etcd_to_dict(e: EtcdState) -> dict[str, Any]:
    if e.error is not None:
        return {"error": e.error}
    return {"members": [member_to_dict(m) for m in e.members or ()]}


# -- the fingerprint's view -----------------------------------------------------------------------

def stable_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The inventory document as the fingerprint sees it (see the module's docstring).

    Documents without the new fields give the same view (and so the same fingerprint) as before them.
    """
    view = {k: v for k, v in doc.items() if k not in ("observed_at", "fingerprint", "etcd", "kubeadm_config")}
    if "kubeadm_config" in doc:
        k = doc["kubeadm_config"]
        view["kubeadm_config"] = "unobserved" if "error" in k else k
    nodes = []
    for n in doc["nodes"]:
        node = {k: v for k, v in n.items() if k != "packages"}
        if "taints" in node:
            node["taints"] = sorted(node["taints"], key=lambda t: (t["key"], t["effect"], t["value"]))
        nodes.append(node)
    view["nodes"] = nodes
    return view


# -- from JSON ------------------------------------------------------------------------------------

def parse_taints(raw: object, where: str) -> tuple[Taint, ...]:
    if not isinstance(raw, list):
        raise InvalidInventoryError(f"{where}: expected a list of taints, got {excerpt(raw)}")
    taints = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        obj = f.mapping(item, at)
        f.no_unknown(obj, {"key", "value", "effect"}, at + ".")
        effect = obj.get("effect")
        if effect not in TAINT_EFFECTS:
            raise InvalidInventoryError(f"{at}.effect: expected one of {', '.join(TAINT_EFFECTS)}, "
                                        f"got {excerpt(effect)}")
        value = obj.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 253):
            raise InvalidInventoryError(f"{at}.value: expected a string of at most 253 characters, "
                                        f"got {excerpt(value)}")
        taints.append(Taint(key=f.string(obj, "key", f"{at}.key", limit=316), effect=str(effect), value=value or ""))
    return tuple(taints)


def parse_ip(raw: object, where: str) -> str:
    if not isinstance(raw, str) or len(raw) > 64:
        raise InvalidInventoryError(f"{where}: expected an IP address, got {excerpt(raw)}")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise InvalidInventoryError(f"{where}: {excerpt(raw)} is not an IP address") from None


def parse_packages(raw: object, where: str) -> PackageState:
    obj = f.mapping(raw, where)
    f.no_unknown(obj, {"status", "manager", "repo", "error"}, where + ".")
    try:
        status = PackageStatus(str(obj.get("status")))
    except ValueError:
        raise InvalidInventoryError(f"{where}.status: expected one of {', '.join(PackageStatus)}, "
                                    f"got {excerpt(obj.get('status'))}") from None
    error = f.optional_string(obj, "error", f"{where}.error")
    if status is PackageStatus.TRANSPORT_ERROR and error is None:
        raise InvalidInventoryError(f"{where}.error: a transport_error says what failed")
    if status is not PackageStatus.OBSERVED:
        for key in ("manager", "repo"):
            if obj.get(key) is not None:
                raise InvalidInventoryError(f"{where}.{key}: only an observed node has one (status is {status})")
        return PackageState(status=status, error=error)
    manager = obj.get("manager")
    if manager is not None and manager not in PACKAGE_MANAGERS:
        raise InvalidInventoryError(f"{where}.manager: expected one of {', '.join(PACKAGE_MANAGERS)} or null, "
                                    f"got {excerpt(manager)}")
    repo = None
    if obj.get("repo") is not None:
        r = f.mapping(obj["repo"], f"{where}.repo")
        f.no_unknown(r, {"url", "minor", "file"}, f"{where}.repo.")
        minor = r.get("minor")
        if minor is not None and (not isinstance(minor, str) or not MINOR.fullmatch(minor)):
            raise InvalidInventoryError(f"{where}.repo.minor: expected a minor such as v1.31, got {excerpt(minor)}")
        repo = PackageRepo(url=f.string(r, "url", f"{where}.repo.url"), file=f.string(r, "file", f"{where}.repo.file"),
                           minor=minor)
    return PackageState(status=status, manager=manager, repo=repo, error=error)


def parse_kubeadm_config(raw: object, where: str = "kubeadm_config") -> KubeadmConfig:
    obj = f.mapping(raw, where)
    if "error" in obj:
        f.no_unknown(obj, {"error"}, where + ".")
        return KubeadmConfig(error=f.string(obj, "error", f"{where}.error"))
    f.no_unknown(obj, {"kubernetes_version", "etcd", "image_repository", "control_plane_endpoint"}, where + ".")
    etcd = f.mapping(obj.get("etcd"), f"{where}.etcd")
    mode = etcd.get("mode")
    if mode == "local":
        f.no_unknown(etcd, {"mode"}, f"{where}.etcd.")
        endpoints: tuple[str, ...] = ()
    elif mode == "external":
        f.no_unknown(etcd, {"mode", "endpoints"}, f"{where}.etcd.")
        endpoints = f.string_list(etcd, "endpoints", f"{where}.etcd.endpoints")
    else:
        raise InvalidInventoryError(f"{where}.etcd.mode: expected local or external, got {excerpt(mode)}")
    return KubeadmConfig(
        kubernetes_version=f.version(obj.get("kubernetes_version"), f"{where}.kubernetes_version"),
        etcd=mode, etcd_endpoints=endpoints,
        image_repository=f.optional_string(obj, "image_repository", f"{where}.image_repository"),
        control_plane_endpoint=f.optional_string(obj, "control_plane_endpoint", f"{where}.control_plane_endpoint"),
    )


_MEMBER_FIELDS = {"id", "name", "peer_urls", "client_urls", "leader", "healthy", "db_size", "revision", "version",
                  "error"}


def parse_etcd(raw: object, where: str = "etcd") -> EtcdState:
    obj = f.mapping(raw, where)
    if "error" in obj:
        f.no_unknown(obj, {"error"}, where + ".")
        return EtcdState(error=f.string(obj, "error", f"{where}.error"))
    f.no_unknown(obj, {"members"}, where + ".")
    raw_members = obj.get("members")
    if not isinstance(raw_members, list) or len(raw_members) > 64:
        raise InvalidInventoryError(f"{where}.members: expected a list of at most 64 members, "
                                    f"got {excerpt(raw_members)}")
    members = []
    for i, item in enumerate(raw_members):
        at = f"{where}.members[{i}]"
        m = f.mapping(item, at)
        f.no_unknown(m, _MEMBER_FIELDS, at + ".")
        member_id = m.get("id")
        if not isinstance(member_id, str) or not _MEMBER_ID.fullmatch(member_id):
            raise InvalidInventoryError(f"{at}.id: expected a member id in hex, got {excerpt(member_id)}")
        name = m.get("name")  # a member added but not started yet has no name
        if not isinstance(name, str) or len(name) > 253:
            raise InvalidInventoryError(f"{at}.name: expected a string, got {excerpt(name)}")
        members.append(EtcdMemberInfo(
            id=member_id, name=name,
            peer_urls=f.string_list(m, "peer_urls", f"{at}.peer_urls"),
            client_urls=f.string_list(m, "client_urls", f"{at}.client_urls"),
            leader=f.optional_boolean(m, "leader", f"{at}.leader"),
            healthy=f.optional_boolean(m, "healthy", f"{at}.healthy"),
            db_size=f.optional_count(m, "db_size", f"{at}.db_size"),
            revision=f.optional_count(m, "revision", f"{at}.revision"),
            version=f.optional_string(m, "version", f"{at}.version", limit=64),
            error=f.optional_string(m, "error", f"{at}.error"),
        ))
    ids = [m.id for m in members]
    if len(set(ids)) != len(ids):
        raise InvalidInventoryError(f"{where}.members: duplicate member id")
    return EtcdState(members=tuple(members))
