"""A scratch etcd beside the orchestrator: a snapshot file restored and served on loopback, for a while.

Used to read what a snapshot holds (keys and mod revisions, never values) and to rehearse a
restore without touching any cluster. Guarantees:

- the data lives in a private temp dir (0700; a snapshot holds every Secret) that is removed when
  the context closes, whatever happened;
- the ``etcd`` server is this host's binary, started with a clean environment (no inherited
  ``ETCD_*`` variable can point it elsewhere) on free loopback ports, in its own session, and
  stopped by its pid (SIGTERM, then SIGKILL) when the context closes; nothing is stopped by name;
- it is a one-member cluster with its own name and token, so it can never join a real one;
- if upgrader itself is killed (SIGKILL leaves no ``finally``), the kernel stops the server with it
  (Linux ``PR_SET_PDEATHSIG``), and the next scratch etcd removes the private dirs whose owner is gone;
- the restore is the tool's own (``EtcdctlTool.restore``, capability-probed), so a flipped byte is
  refused there (IntegrityError) and a tool that cannot restore is an EtcdToolError naming what
  to install.

The server must be able to open the restored data: etcd refuses a data dir written by a newer
version, so this host's etcd must be at least the snapshot's etcd minor.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader.errors import EtcdCommandError, EtcdToolError
from upgrader.etcd import parsing
from upgrader.etcd.tool import BUMP_REVISION, EtcdctlTool, host_runner
from upgrader.ports import EtcdToolInfo, KeyListing

NAME = "upgrader-scratch"
PREFIX = "upgrader-scratch-etcd-"  # the private dirs in the temp dir
OWNER = "owner.pid"  # in each: the pid of the upgrader that made it
START_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1
_PORT_CLASH = ("address already in use", "bind: address")


@dataclass(frozen=True, slots=True)
class ProcessScratchEtcd:
    """The ScratchEtcd port on a running etcd process: its client URL (plain http on loopback), its pid,
    and how it was restored."""

    endpoint: str
    pid: int
    data_dir: Path
    restore_tool: str  # "etcdctl" or "etcdutl"
    bumped_by: int  # the revision bump the restore applied (0 when the tool has no --bump-revision)
    server_version: str
    tool: EtcdctlTool

    def keys(self, timeout: float = 300.0) -> KeyListing:
        return self.tool.keys([self.endpoint], None, timeout)

    def hashkv(self, revision: int, timeout: float = 60.0) -> int:
        """``endpoint hashkv --rev=REVISION``: the hash of the key space up to that revision."""
        done = host_runner()([self.tool.etcdctl, f"--endpoints={self.endpoint}", "endpoint", "hashkv",
                              f"--rev={revision}", "-w", "json"], timeout)
        if not done.ok:
            raise EtcdCommandError(f"scratch etcd: endpoint hashkv failed: "
                                   f"{parsing.last_line(done.stderr or done.stdout)}")
        try:
            return parsing.parse_hashkv(done.stdout)
        except ValueError as e:
            raise EtcdCommandError(f"scratch etcd: {e}") from e


def server_version(etcd: str) -> str | None:
    """``etcd --version``'s ``etcd Version: 3.4.23``; None when there is no such binary."""
    done = host_runner()([etcd, "--version"], 10.0)
    for line in done.stdout.splitlines():
        if line.lower().startswith("etcd version:"):
            return line.split(":", 1)[1].strip().lstrip("v")
    return None


def require_server(etcd: str | None, snapshot_etcd: str | None) -> tuple[str, str]:
    """(path, version) of this host's etcd server, or EtcdToolError naming what to install."""
    path = etcd or shutil.which("etcd") or "etcd"
    version = server_version(path)
    need = parsing.major_minor(snapshot_etcd) if snapshot_etcd else None
    minor = f"{need[0]}.{need[1]}" if need else "of the snapshot's minor"
    if version is None:
        raise EtcdToolError(f"no etcd server binary here ({path}) to restore the snapshot into a scratch etcd: "
                            f"install etcd {minor} or newer (Debian's etcd-server, or etcd's release archive)")
    have = parsing.major_minor(version)
    if need and have and have < need:
        raise EtcdToolError(f"etcd {version} here cannot open a data dir of etcd {snapshot_etcd}'s snapshot "
                            f"(etcd refuses data written by a newer version): install etcd {minor} or newer")
    return path, version


def _server_reads_the_restore(info: EtcdToolInfo, server: str) -> None:
    """etcd refuses a data dir written by a newer version: the restore tool must not be newer than the server."""
    tool_version = info.etcdutl_version if info.restore_tool == "etcdutl" else info.etcdctl_version
    have, made_by = parsing.major_minor(server), parsing.major_minor(tool_version or "")
    if have and made_by and made_by > have:
        raise EtcdToolError(f"{info.restore_tool} {tool_version} writes data that etcd {server} here cannot open: "
                            f"install etcd {made_by[0]}.{made_by[1]} (or a {info.restore_tool} of {have[0]}.{have[1]})")


@contextmanager
def scratch_etcd(tool: EtcdctlTool, snapshot: Path, *, snapshot_etcd: str | None = None,
                 etcd: str | None = None, start_timeout: float = START_TIMEOUT) -> Iterator[ProcessScratchEtcd]:
    """Restore ``snapshot`` into a private temp dir and serve it; all of it gone when the context closes."""
    info = tool.probe()
    if info.restore_tool is None:
        raise EtcdToolError("no etcd tool here can restore a snapshot (neither etcdutl nor etcdctl has "
                            "`snapshot restore`): install etcdutl of the snapshot's etcd minor")
    binary, version = require_server(etcd, snapshot_etcd)
    _server_reads_the_restore(info, version)
    sweep_orphans()
    base = Path(tempfile.mkdtemp(prefix=PREFIX))  # 0700
    (base / OWNER).write_text(f"{os.getpid()}\n")
    proc: subprocess.Popen[bytes] | None = None
    try:
        for attempt in range(3):  # a free port can be taken between choosing and binding it
            client, peer = (f"http://127.0.0.1:{p}" for p in _free_ports(2))
            data_dir = base / f"data-{attempt}"
            tool.restore(path=str(snapshot), name=NAME, data_dir=str(data_dir), initial_cluster=f"{NAME}={peer}",
                         token=f"{NAME}-{secrets.token_hex(8)}", peer_url=peer)
            log = base / f"etcd-{attempt}.log"
            proc = _start(binary, data_dir, client, peer, log)
            if _wait_ready(proc, tool, client, log, start_timeout):
                break
            _stop(proc)
            proc = None
        else:
            raise EtcdCommandError("scratch etcd did not start: its ports were taken three times")
        yield ProcessScratchEtcd(endpoint=client, pid=proc.pid, data_dir=data_dir, restore_tool=info.restore_tool,
                                 bumped_by=int(BUMP_REVISION) if info.bump_revision else 0,
                                 server_version=version, tool=tool)
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start(binary: str, data_dir: Path, client: str, peer: str, log: Path) -> subprocess.Popen[bytes]:
    argv = [binary, f"--name={NAME}", f"--data-dir={data_dir}", f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}", f"--initial-cluster={NAME}={peer}"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True, preexec_fn=_die_with_parent)


def _prctl() -> Any:
    """libc's prctl, looked up here in the parent: the child between fork and exec only calls it."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when upgrader dies (Linux; elsewhere the sweep still cleans up)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def sweep_orphans(directory: Path | None = None) -> list[Path]:
    """Remove the scratch dirs (ours by uid) whose upgrader is gone: a killed run's restored data, which
    holds every Secret, does not outlive the next scratch etcd. Returns what was removed."""
    removed = []
    for base in Path(directory or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            if base.is_symlink() or base.stat().st_uid != os.getuid():
                continue
            owner = int((base / OWNER).read_text().strip() or "0")
        except (OSError, ValueError):
            continue  # being made right now, or not ours to judge
        if owner > 0 and not _alive(owner):
            shutil.rmtree(base, ignore_errors=True)
            removed.append(base)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_ready(proc: subprocess.Popen[bytes], tool: EtcdctlTool, client: str, log: Path, timeout: float) -> bool:
    """True once the member answers; False when it exited over a port clash; EtcdCommandError otherwise."""
    run = host_runner()
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")
            if any(clash in text.lower() for clash in _PORT_CLASH):
                return False
            raise EtcdCommandError(f"scratch etcd exited ({proc.returncode}): {parsing.last_line(text)}")
        done = run([tool.etcdctl, f"--endpoints={client}", "--dial-timeout=1s", "--command-timeout=2s",
                    "endpoint", "health"], 10.0)
        if done.ok:
            return True
        if time.monotonic() > deadline:
            raise EtcdCommandError(f"scratch etcd did not become healthy in {timeout:g}s: "
                                   f"{parsing.last_line(done.stderr or done.stdout)}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to this pid, SIGKILL after 10 s; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
