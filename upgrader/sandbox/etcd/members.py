"""Real etcd members for the sandbox: start, wait for, and stop the ``etcd`` processes.

The sandbox runs the Debian ``etcd`` binary (3.4) as real processes so that snapshots, restores
and dead members behave exactly as in production. Everything listens on 127.0.0.1 over plain
http; data directories are chosen by the caller (never /var/lib/etcd).

Starting a member (:func:`spawn_member`) and waiting for it (:func:`wait_healthy`) are separate
steps because a member of a multi-member cluster is healthy only once a quorum of its peers runs:
a cluster whose members all stopped comes back by spawning each member, then waiting for them all.
The processes are :mod:`upgrader.sandbox.processes` children, stopped by pid like the sandbox's others.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from upgrader.sandbox import processes
from upgrader.sandbox.etcd.errors import EtcdStartError
from upgrader.sandbox.etcd.health import MemberHealth, probe
from upgrader.sandbox.sandbox_config import free_ports

ETCD_BINARY = "etcd"
DEFAULT_TOKEN = "upgrader-sandbox"
CLUSTER_STATES = ("new", "existing")
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class EtcdMember:
    """One running (or stopped, pid None) etcd member; the name is its node's name."""

    name: str
    client_url: str
    peer_url: str
    data_dir: Path
    pid: int | None = None


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
    pid = processes.spawn([ETCD_BINARY, *(f"--{k}={v}" for k, v in flags.items())], log=log or log_path(member))
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
        if member.pid is not None and not processes.alive(member.pid):
            raise EtcdStartError(f"etcd member {member.name} exited: {_log_tail(member)}")
        if member_health(member).healthy:
            return
        time.sleep(0.1)
    raise EtcdStartError(f"etcd member {member.name} not healthy after {timeout:.0f}s")


def wait_healthy(members: Sequence[EtcdMember], *, timeout: float = 30.0) -> None:
    for m in members:
        _wait_member(m, timeout=timeout)


def member_health(member: EtcdMember, *, timeout: float = 1.0) -> MemberHealth:
    """The member's own /health (see :func:`upgrader.sandbox.etcd.health.probe`)."""
    return probe(member.client_url, name=member.name, timeout=timeout)


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
    processes.stop_all([m if isinstance(m, int) else m.pid for m in followers], timeout=timeout)
    if leader is not None:
        processes.stop_all([leader.pid], timeout=min(timeout, 1.5) if followers else timeout)


def _leader(members: Iterable[EtcdMember]) -> EtcdMember | None:
    for m in members:
        if not processes.alive(m.pid):
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
