"""What etcdctl and etcdutl print, read without running anything (pure, so it is tested on recorded texts).

The rules, each from the tools' source (etcd-io/etcd pkg/cobrautl/help.go, etcdctl/ctlv3/command/,
etcdutl/etcdutl/) and checked against etcdctl 3.4.23:

- A command exists when its own help names it: the line under ``USAGE:`` (etcdctl's template) or
  ``Usage:`` (cobra's, which etcdutl uses) reads ``TOOL snapshot status ...``. etcd 3.6's etcdctl has
  no ``snapshot status``; asked for it, cobra prints the help of ``snapshot`` and exits 0, whose usage
  line is ``etcdctl snapshot <subcommand> [flags]``. The exit code says nothing.
- A flag exists when the help lists it as ``--bump-revision``.
- ``TOOL version`` prints ``etcdctl version: 3.4.23`` (or ``etcdutl version: 3.6.5``).
- JSON: ``member list -w json`` (ids are uint64 numbers), ``endpoint status -w json`` (a list of
  ``{"Endpoint", "Status": {"header": {"member_id", "revision"}, "version", "dbSize", "leader"}}``),
  ``endpoint health -w json`` (a list of ``{"endpoint", "health", "error"?}``), ``snapshot status -w
  json`` (``{"hash", "revision", "totalKey", "totalSize", "version"?}``).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from upgrader.ports import KeyListing, SnapshotStatus

_VERSION = re.compile(r"^\s*(etcdctl|etcdutl) version:\s*v?(\d+\.\d+\.\d+\S*)\s*$", re.MULTILINE)
_USAGE_HEADER = re.compile(r"^\s*(USAGE|Usage):\s*$")
OUTPUT_LIMIT = 300  # characters of a tool's own words that an error message carries


def parse_version(text: str, tool: str) -> str | None:
    """``3.4.23`` from ``etcdctl version: 3.4.23``; None when the text does not say."""
    for match in _VERSION.finditer(text):
        if match.group(1) == tool:
            return match.group(2)
    return None


def major_minor(version: str) -> tuple[int, int] | None:
    """(3, 5) of ``3.5.16``, ``v3.5.16`` or ``3.5.16-0`` (an etcd image tag); None when it is not one."""
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?$", version.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def usage_names(help_text: str, tool: str, command: str) -> bool:
    """True when the help's usage line is that of ``TOOL COMMAND`` (e.g. ``etcdctl snapshot status``)."""
    lines = help_text.splitlines()
    wanted = [tool, *command.split()]
    for i, line in enumerate(lines):
        if not _USAGE_HEADER.match(line):
            continue
        for following in lines[i + 1:]:
            if following.strip():
                words = following.split()
                if words[:len(wanted)] == wanted:
                    return True
                break
    return False


def lists_flags(help_text: str, *flags: str) -> bool:
    """True when the help lists every one of the flags (``--bump-revision``)."""
    return all(re.search(rf"(^|\s){re.escape(flag)}(?=[=\s\[]|$)", help_text, re.MULTILINE) for flag in flags)


def last_line(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The tool's last meaningful line (``Error: ...``), cut short; a Go panic gives its panic line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:  # a crash prints pages of goroutines: the panic line is what matters
        if line.startswith(("panic:", "fatal error:")):
            return _cut(line, limit)
    meaningful = [line for line in lines if not line.startswith("{\"level\"")]
    chosen = meaningful[-1] if meaningful else (lines[-1] if lines else "")
    if chosen.startswith("{\"level\""):
        try:
            entry = json.loads(chosen)
            chosen = str(entry.get("error") or entry.get("msg") or chosen)
        except ValueError:
            pass
    return _cut(chosen, limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{what}: not JSON ({e})") from e


@dataclass(frozen=True, slots=True)
class ListedMember:
    id: str
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]


def parse_member_list(text: str) -> list[ListedMember]:
    """The members of ``member list -w json``; ValueError when it is not that document."""
    doc = _json(text, "member list")
    if not isinstance(doc, dict) or not isinstance(doc.get("members"), list):
        raise ValueError("member list: no members in the answer")
    members = []
    for m in doc["members"]:
        if not isinstance(m, dict) or not isinstance(m.get("ID"), int):
            raise ValueError("member list: a member without a numeric ID")
        members.append(ListedMember(id=format(m["ID"], "x"), name=str(m.get("name") or ""),
                                    peer_urls=_urls(m.get("peerURLs")), client_urls=_urls(m.get("clientURLs"))))
    return members


def _urls(value: object) -> tuple[str, ...]:
    return tuple(str(u) for u in value) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    endpoint: str
    member_id: str
    leader_id: str
    revision: int | None
    db_size: int | None
    version: str | None


def parse_endpoint_status(text: str) -> list[EndpointStatus]:
    """The answers of ``endpoint status -w json`` (endpoints that did not answer are absent)."""
    doc = _json(text, "endpoint status")
    if not isinstance(doc, list):
        raise ValueError("endpoint status: not a list")
    found = []
    for entry in doc:
        status = entry.get("Status") if isinstance(entry, dict) else None
        if not isinstance(status, dict):
            continue
        header = status.get("header")
        if not isinstance(header, dict):
            header = {}
        member, leader = header.get("member_id"), status.get("leader")
        found.append(EndpointStatus(
            endpoint=str(entry.get("Endpoint") or ""),
            member_id=format(member, "x") if isinstance(member, int) else "",
            leader_id=format(leader, "x") if isinstance(leader, int) else "",
            revision=_int(header.get("revision")), db_size=_int(status.get("dbSize")),
            version=str(status["version"]) if status.get("version") else None))
    return found


def parse_endpoint_health(text: str) -> dict[str, tuple[bool, str | None]]:
    """endpoint -> (healthy, error) from ``endpoint health -w json``."""
    doc = _json(text, "endpoint health")
    if not isinstance(doc, list):
        raise ValueError("endpoint health: not a list")
    return {str(e.get("endpoint") or ""): (e.get("health") is True, str(e["error"]) if e.get("error") else None)
            for e in doc if isinstance(e, dict)}


def parse_snapshot_status(text: str) -> SnapshotStatus:
    """``snapshot status -w json``; ValueError when a field is missing."""
    doc = _json(text, "snapshot status")
    if not isinstance(doc, dict):
        raise ValueError("snapshot status: not an object")
    values = {k: _int(doc.get(k)) for k in ("hash", "revision", "totalKey", "totalSize")}
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise ValueError(f"snapshot status: no {', '.join(missing)} in the answer")
    return SnapshotStatus(hash=values["hash"] or 0, revision=values["revision"] or 0,
                          total_keys=values["totalKey"] or 0, total_size=values["totalSize"] or 0,
                          version=str(doc["version"]) if doc.get("version") else None)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_key_listing(text: str) -> KeyListing:
    """``get "" --prefix --keys-only -w json``: the header's revision and each key (base64 in the JSON)
    with its mod_revision; ValueError when it is not that document. An empty etcd has no ``kvs``."""
    doc = _json(text, "key listing")
    header = doc.get("header") if isinstance(doc, dict) else None
    revision = _int(header.get("revision")) if isinstance(header, dict) else None
    if revision is None:
        raise ValueError("key listing: no revision in the answer's header")
    keys: dict[str, int] = {}
    for kv in doc.get("kvs") or []:
        mod = _int(kv.get("mod_revision")) if isinstance(kv, dict) else None
        raw = kv.get("key") if isinstance(kv, dict) else None
        if mod is None or not isinstance(raw, str):
            raise ValueError("key listing: an entry without a key or a mod_revision")
        try:
            key = base64.b64decode(raw, validate=True).decode("utf-8", errors="backslashreplace")
        except ValueError as e:
            raise ValueError("key listing: a key that is not base64") from e
        keys[key] = mod
    return KeyListing(revision=revision, keys=keys)


def parse_hashkv(text: str) -> int:
    """The hash of ``endpoint hashkv -w json`` (one endpoint); ValueError when there is none."""
    doc = _json(text, "endpoint hashkv")
    first = doc[0] if isinstance(doc, list) and doc else None
    found = first.get("HashKV") if isinstance(first, dict) else None
    value = _int(found.get("hash")) if isinstance(found, dict) else None
    if value is None:
        raise ValueError("endpoint hashkv: no hash in the answer")
    return value
