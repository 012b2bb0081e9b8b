"""Real etcd members for the sandbox, and a tiny KV client over etcd's JSON gateway.

The sandbox runs the Debian ``etcd`` binary (3.4) as real processes so that snapshots, restores
and dead members behave exactly as in production. Everything listens on 127.0.0.1 over plain
http; data directories are chosen by the caller (never /var/lib/etcd).

Starting a member (:func:`spawn_member`) and waiting for it (:func:`wait_healthy`) are separate
steps because a member of a multi-member cluster is healthy only once a quorum of its peers runs:
a cluster whose members all stopped comes back by spawning each member, then waiting for them all.
The processes are :mod:`upgrader.sandbox.procs` children, stopped by pid like the sandbox's others.

:class:`EtcdKV` talks to etcd's gRPC-gateway (``/v3/kv/*``) with urllib, so the sandbox needs no
gRPC dependency. It fails over between endpoints, which is what lets the sandbox API server keep
working while one member is dead.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from upgrader.sandbox import procs

ETCD_BINARY = "etcd"
DEFAULT_TOKEN = "upgrader-sandbox"
CLUSTER_STATES = ("new", "existing")
_LOOPBACK = "127.0.0.1"


class EtcdError(Exception):
    """etcd failed."""


class EtcdStartError(EtcdError):
    """An etcd member did not start or did not become healthy."""


class EtcdUnavailableError(EtcdError):
    """No etcd endpoint answered."""


@dataclass(frozen=True, slots=True)
class EtcdMember:
    """One running (or stopped, pid None) etcd member; the name is its node's name."""

    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    pid: int | None = None


@dataclass(frozen=True, slots=True)
class MemberHealth:
    name: str
    healthy: bool
    error: str = ""


def free_ports(count: int) -> list[int]:
    """Ports the kernel says are free now; the caller retries if one is taken before use."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((_LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def initial_cluster(members: Sequence[EtcdMember]) -> str:
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def start_etcd_cluster(
    data_dirs: Mapping[str, Path], *, token: str = DEFAULT_TOKEN, timeout: float = 30.0, attempts: int = 3
) -> list[EtcdMember]:
    """Start a new cluster on free ports, one member per name (``{"cp-1": dir, ...}``); wait until healthy.

    A free port may be taken before etcd binds it; then the whole cluster is started again on fresh
    ports (the peer URLs are baked into a new cluster's membership).
    """
    last: Exception | None = None
    for _ in range(attempts):
        ports = free_ports(2 * len(data_dirs))
        members = [
            EtcdMember(name, f"http://{_LOOPBACK}:{ports[2 * i]}", f"http://{_LOOPBACK}:{ports[2 * i + 1]}",
                       Path(d))
            for i, (name, d) in enumerate(data_dirs.items())
        ]
        try:
            return start_new_cluster(members, token=token, timeout=timeout)
        except EtcdStartError as e:
            if "address already in use" not in str(e):
                raise
            last = e
    raise EtcdStartError(f"etcd cluster did not start after {attempts} attempts: {last}")


def start_new_cluster(
    members: Sequence[EtcdMember], *, token: str = DEFAULT_TOKEN, timeout: float = 30.0
) -> list[EtcdMember]:
    """Start a new cluster on the members' own URLs (fixed ports); a failed start leaves empty data dirs."""
    started: list[EtcdMember] = []
    fresh = [m.data_dir for m in members if not m.data_dir.exists() or not any(m.data_dir.iterdir())]
    try:
        for m in members:
            started.append(spawn_member(m, peers=members, state="new", token=token))
        wait_healthy(started, timeout=timeout)
        return started
    except BaseException:
        stop_cluster(started)
        for d in fresh:  # a half-born cluster cannot be resumed; data we did not create is never touched
            _wipe(d)
        raise


def start_member(
    member: EtcdMember, *, peers: Sequence[EtcdMember], token: str = DEFAULT_TOKEN, timeout: float = 30.0
) -> EtcdMember:
    """(Re)start one member from its existing data dir and wait until it is healthy.

    Only for a member whose cluster keeps (or regains with it) a quorum: a single-member cluster,
    or one member of a cluster whose other members run. To restart several stopped members,
    :func:`spawn_member` each and then :func:`wait_healthy` them all. It must come back on the same
    URLs: they are recorded in the cluster membership. ``peers`` is the whole membership including
    this member. A member that does not become healthy is stopped again.
    """
    started = spawn_member(member, peers=peers, state="existing", token=token)
    try:
        _wait_member(started, timeout=timeout)
    except EtcdStartError:
        stop_member(started)
        raise
    return started


def spawn_member(
    member: EtcdMember, *, peers: Sequence[EtcdMember] | str, state: str, token: str = DEFAULT_TOKEN,
    options: Mapping[str, str] | None = None, log: Path | None = None,
) -> EtcdMember:
    """Start one member's etcd process and return at once (with its pid), healthy or not.

    ``peers`` is the whole membership including this member, or etcd's ``--initial-cluster`` text;
    ``state`` is "new" for a member of a cluster being created, "existing" otherwise (etcd ignores
    both, and the token, once its data dir holds a WAL). ``options`` are further etcd flags without
    the dashes (``{"snapshot-count": "10000"}``); they win over the ones derived from ``member``.
    The output goes to ``log`` (default: :func:`log_path`). The data dir is created, mode 0700.
    """
    if state not in CLUSTER_STATES:
        raise ValueError(f"initial cluster state must be one of {', '.join(CLUSTER_STATES)}, not {state!r}")
    flags = {
        "name": member.name, "data-dir": str(member.data_dir),
        "listen-client-urls": member.client_url, "advertise-client-urls": member.client_url,
        "listen-peer-urls": member.peer_url, "initial-advertise-peer-urls": member.peer_url,
        "initial-cluster": peers if isinstance(peers, str) else initial_cluster(peers),
        "initial-cluster-state": state, "initial-cluster-token": token,
        "logger": "zap", "log-outputs": "stderr", **(options or {}),
    }
    member.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(member.data_dir, 0o700)
    pid = procs.spawn([ETCD_BINARY, *(f"--{k}={v}" for k, v in flags.items())], log=log or log_path(member))
    return replace(member, pid=pid)


def log_path(member: EtcdMember) -> Path:
    """etcd's log sits beside (not inside) the data dir: a snapshot restore replaces the dir."""
    return member.data_dir.with_name(member.data_dir.name + ".log")


def _wipe(data_dir: Path) -> None:
    for p in sorted(data_dir.rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()


def _log_tail(member: EtcdMember) -> str:
    try:
        return log_path(member).read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log beside its data dir)"


def _wait_member(member: EtcdMember, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if member.pid is not None and not procs.alive(member.pid):
            raise EtcdStartError(f"etcd member {member.name} exited: {_log_tail(member)}")
        if member_health(member).healthy:
            return
        time.sleep(0.1)
    raise EtcdStartError(f"etcd member {member.name} not healthy after {timeout:.0f}s")


def wait_healthy(members: Sequence[EtcdMember], *, timeout: float = 30.0) -> None:
    for m in members:
        _wait_member(m, timeout=timeout)


def member_health(member: EtcdMember, *, timeout: float = 1.0) -> MemberHealth:
    """etcd's own /health: true only with a leader and no alarms (what `etcdctl endpoint health` uses)."""
    try:
        with urllib.request.urlopen(member.client_url + "/health", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError) as e:
        return MemberHealth(member.name, False, str(e))
    healthy = body.get("health") == "true"
    return MemberHealth(member.name, healthy, "" if healthy else body.get("reason", "unhealthy"))


def stop_member(member: EtcdMember | int, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; a pid already gone is fine."""
    stop_cluster([member], timeout=timeout)


def stop_cluster(members: Sequence[EtcdMember | int], *, timeout: float = 10.0) -> None:
    """Stop the followers together, then the leader.

    A leader that gets SIGTERM hands leadership to a connected peer and waits up to 7 s for it; with
    its peers just stopped that wait is wasted, so the last leader gets a short grace before SIGKILL
    (safe: etcd's WAL is fsynced before any write is acknowledged).
    """
    leader = _leader(m for m in members if isinstance(m, EtcdMember))
    followers = [m for m in members if m is not leader]
    procs.stop_all([m if isinstance(m, int) else m.pid for m in followers], timeout=timeout)
    if leader is not None:
        procs.stop_all([leader.pid], timeout=min(timeout, 1.5) if followers else timeout)


def _leader(members: Iterable[EtcdMember]) -> EtcdMember | None:
    for m in members:
        if not procs.alive(m.pid):
            continue
        try:
            req = urllib.request.Request(m.client_url + "/v3/maintenance/status", data=b"{}", method="POST")
            with urllib.request.urlopen(req, timeout=1) as resp:
                header = json.loads(resp.read())
        except (OSError, ValueError):
            continue
        if header.get("leader") and header["leader"] == header.get("header", {}).get("member_id"):
            return m
    return None


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def prefix_range_end(prefix: str) -> str:
    """etcd's range_end for "every key starting with prefix" (last byte + 1)."""
    raw = prefix.encode()
    return _b64(raw[:-1] + bytes([raw[-1] + 1]))


def kv_from_json(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(base64.b64decode(raw["key"]).decode(), base64.b64decode(raw.get("value", "")),
                    int(raw.get("create_revision", 0)), int(raw.get("mod_revision", 0)))


class EtcdKV:
    """get / list / create / compare-and-swap update / delete over etcd 3.4's JSON gateway.

    Writes that lose a compare return None instead of raising: a conflict is an answer, not a
    failure. Only a dead cluster raises (:class:`EtcdUnavailableError`).
    """

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("EtcdKV needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._preferred = 0

    def _call(self, path: str, body: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        errors = []
        n = len(self.endpoints)
        for i in range(n):  # start with the last endpoint that answered
            idx = (self._preferred + i) % n
            req = urllib.request.Request(self.endpoints[idx] + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                    out = json.loads(resp.read())
            except urllib.error.HTTPError as e:  # a member without quorum answers 503: try another one
                errors.append(f"{self.endpoints[idx]}: HTTP {e.code} {e.read()[:200]!r}")
                continue
            except (OSError, ValueError) as e:
                errors.append(f"{self.endpoints[idx]}: {e}")
                continue
            self._preferred = idx
            return out
        raise EtcdUnavailableError("no etcd endpoint answered: " + "; ".join(errors))

    def get(self, key: str) -> KeyValue | None:
        kvs = self._call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return kv_from_json(kvs[0]) if kvs else None

    def list_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under prefix, in key order, and the store revision the list was read at."""
        out = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": prefix_range_end(prefix)})
        return [kv_from_json(k) for k in out.get("kvs", [])], int(out["header"]["revision"])

    def revision(self, *, timeout: float | None = None) -> int:
        out = self._call("/v3/kv/range", {"key": _b64("/"), "limit": 1, "keys_only": True}, timeout=timeout)
        return int(out["header"]["revision"])

    def put(self, key: str, value: bytes) -> int:
        return int(self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})["header"]["revision"])

    def _txn(self, key: str, compare: dict[str, Any], success: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        body = {"compare": [{"key": _b64(key), "result": "EQUAL", **compare}], "success": [success],
                "failure": [{"request_range": {"key": _b64(key)}}]}
        out = self._call("/v3/kv/txn", body)
        return bool(out.get("succeeded", False)), out

    def create(self, key: str, value: bytes) -> int | None:
        """Put only if the key does not exist; the new revision, or None if it exists."""
        ok, out = self._txn(key, {"target": "CREATE", "create_revision": "0"},
                            {"request_put": {"key": _b64(key), "value": _b64(value)}})
        return int(out["header"]["revision"]) if ok else None

    def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> int | None:
        """Put only if nobody wrote the key since ``expected_mod_revision``; None on conflict."""
        ok, out = self._txn(key, {"target": "MOD", "mod_revision": str(expected_mod_revision)},
                            {"request_put": {"key": _b64(key), "value": _b64(value)}})
        return int(out["header"]["revision"]) if ok else None

    def delete(self, key: str, *, expected_mod_revision: int | None = None) -> bool:
        """Delete (only if unchanged since ``expected_mod_revision`` when given); False if not deleted."""
        if expected_mod_revision is None:
            out = self._call("/v3/kv/deleterange", {"key": _b64(key)})
            return int(out.get("deleted", 0)) > 0
        ok, _ = self._txn(key, {"target": "MOD", "mod_revision": str(expected_mod_revision)},
                          {"request_delete_range": {"key": _b64(key)}})
        return ok

    def delete_prefix(self, prefix: str) -> int:
        out = self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": prefix_range_end(prefix)})
        return int(out.get("deleted", 0))
