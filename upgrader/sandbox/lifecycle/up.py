"""`sandbox up`: create a sandbox, or resume a stopped one as it is, and return once it is healthy.

One `up` or `down` of a name at a time: `up` holds the name's lock (see :mod:`.root`) from before it
looks for the sandbox until it is healthy, so of several racing `up`s exactly one creates or resumes
it and the others exit 2 at once. Everything here is safe to interrupt: `up` stops what it started
(and removes a sandbox it was creating, see :mod:`.creation`) on any failure or Ctrl-C, with further
signals held off until that cleanup is done, and undoes its ledger registration through the callback
it was given. Processes are only ever signalled by recorded pid, after checking the pid still
belongs to this sandbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import upgrader
from upgrader.domain.names import validate_name
from upgrader.domain.versions import Minor, Version, parse_target
from upgrader.errors import UsageError
from upgrader.files import atomic_write
from upgrader.programs import require as require_programs
from upgrader.sandbox import faults as faultlib
from upgrader.sandbox import processes, releases
from upgrader.sandbox.lifecycle.creation import CREATING, Creation, signals_held
from upgrader.sandbox.lifecycle.errors import SandboxConflictError, SandboxExistsError
from upgrader.sandbox.lifecycle.health import SUPERVISOR_LOG, api_version, wait_healthy
from upgrader.sandbox.lifecycle.preflight import check_faults, check_ports
from upgrader.sandbox.lifecycle.registry import default_root, load, locate, remember
from upgrader.sandbox.lifecycle.root import NameLock, private_dir
from upgrader.sandbox.lifecycle.teardown import OWNER_ENV, stop_processes
from upgrader.sandbox.node import distros, isolation, provision
from upgrader.sandbox.node.manifests import apiserver_versions
from upgrader.sandbox.sandbox_config import CONFIG, SandboxConfig, Timeouts, new_config
from upgrader.sandbox.supervisor.state import SUPERVISOR, supervisor_pid

DEFAULT_VERSION = "v1.30.6"
DEFAULT_CONTROL_PLANES = 3
DEFAULT_WORKERS = 3
# What one sandbox may ask of a small machine (2 cores): an idle control plane costs an etcd member
# and an API server process, ~90 MiB and ~10% of a core (7: ~740 MiB, 15 processes, ~75% of a core);
# etcd advises against clusters beyond 7 members. A worker is a kubelet thread in the supervisor:
# measured (scripts/bench.py apply, 3+0 beside 3+50, 2026-12-02) ~0.7 MiB RSS, ~0.7% of a core and
# 0.5 MiB of disk idle; during an apply its upgrade is ~25 node commands, ~7 CPU s run by upgrader.
# A 3+50 sandbox applied v1.30 -> v1.31 in 18 min on a busy 2-core machine; 60 leaves it room.
MAX_CONTROL_PLANES = 7
MAX_WORKERS = 60

# Records the sandbox in the ledger and returns how to undo that (None when it was already there).
Register = Callable[[SandboxConfig], Callable[[], None] | None]


@dataclass(frozen=True, slots=True)
class UpRequest:
    """What `sandbox up` was asked for; None means "not given" (the default for a new sandbox, and
    for a stopped one whatever it was created with)."""

    name: str
    version: str | None = None
    control_planes: int | None = None
    workers: int | None = None
    faults: list[str] = field(default_factory=list)
    dir: Path | None = None
    api_port: int | None = None
    kubeadm_timeout: float | None = None
    kubelet_restart: float | None = None
    wait: float = 180.0
    isolation: str | None = None  # "namespace" (the default for a new sandbox) or "best-effort"
    os: str | None = None  # the nodes' OS: "debian" (the default for a new sandbox) or "rhel"
    node_etcd_tools: bool | None = None  # etcdctl on the nodes' PATH (a kubeadm node has none: the default)


@dataclass(frozen=True, slots=True)
class UpResult:
    config: SandboxConfig
    resumed: bool
    seconds: float
    version: str  # what the API server answers now (a resumed sandbox may have been upgraded)

    @property
    def kubeconfig(self) -> Path:
        return self.config.kubeconfig


def up(req: UpRequest, *, register: Register | None = None) -> UpResult:
    """Create (or resume) and start a sandbox; returns once it is healthy, leaves nothing behind if not.

    ``register`` records the sandbox in the ledger and returns how to undo that (or None when it was
    already registered), so a failed `up` also leaves the ledger as it found it.
    """
    started = time.monotonic()
    _check_request(req)
    # Before any file or ledger row: without etcd the supervisor could only retry until `up` timed out.
    require_programs("etcd", "etcdctl")
    with _terminate_as_interrupt(), NameLock(req.name, doing="created or started") as lock:
        cfg, resumed = _create_or_resume(req, register, lock)
    return UpResult(cfg, resumed=resumed, seconds=time.monotonic() - started, version=api_version(cfg))


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`timeout`, `kill`, a CI runner giving up) cleans up as Ctrl-C does: the default action
    would end the process mid-creation, leaving a half-made, running sandbox behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _create_or_resume(req: UpRequest, register: Register | None, lock: NameLock) -> tuple[SandboxConfig, bool]:
    existing = locate(req.name)
    if existing is not None and req.dir is not None and Path(req.dir).resolve() != existing.resolve():
        raise SandboxConflictError(f"sandbox {req.name!r} already exists in {existing}, not {req.dir}: drop --dir "
                                   f"to resume it, or `upgrader sandbox down {req.name}` first")
    if existing is None and req.dir is not None and (Path(req.dir) / CONFIG).exists():
        existing = Path(req.dir)
    if existing is None:
        lock.say("created")
        return _create(req, register), False
    lock.say("started")
    return _resume(req, existing, register), True


def _version(text: str) -> Version:
    return releases.check_supported(parse_target(text))


def _check_request(req: UpRequest) -> None:
    """Bad values, whether the sandbox is new or resumed."""
    validate_name(req.name, what="sandbox")
    if req.control_planes is not None and req.control_planes < 1:
        raise UsageError("a sandbox needs at least one control-plane node "
                         f"(--control-planes 1 to {MAX_CONTROL_PLANES})")
    if req.control_planes is not None and req.control_planes > MAX_CONTROL_PLANES:
        raise UsageError(f"--control-planes {req.control_planes} is more than a sandbox runs: at most "
                         f"{MAX_CONTROL_PLANES} control-plane nodes (etcd advises against more than 7 members)")
    if req.workers is not None and req.workers < 0:
        raise UsageError(f"--workers must be 0 or more (at most {MAX_WORKERS})")
    if req.workers is not None and req.workers > MAX_WORKERS:
        raise UsageError(f"--workers {req.workers} is more than a sandbox runs: at most {MAX_WORKERS} workers")
    if req.api_port is not None and not 1 <= req.api_port <= 65535:
        raise UsageError(f"--api-port {req.api_port} is not a TCP port (1-65535)")
    if req.version is not None:
        _version(req.version)
    if req.isolation is not None:
        isolation.check_mode(req.isolation)
    if req.os is not None:
        distros.check(req.os)


def _refuse_changes(req: UpRequest, cfg: SandboxConfig, versions: dict[str, Version]) -> None:
    """A stopped sandbox resumes as it is: options that would change it are refused, not ignored."""
    changes = []
    if req.version is not None:
        wanted = parse_target(req.version)
        at = sorted(set(versions.values()))
        same = bool(at) and all((v.line == wanted) if isinstance(wanted, Minor) else (v == wanted) for v in at)
        if not same:
            now = ", ".join(str(v) for v in at) or f"unknown; created at {cfg.version}"
            changes.append(f"--version {req.version} (it is at {now})")
    for flag, given, has in (("--control-planes", req.control_planes, len(cfg.control_planes)),
                             ("--workers", req.workers, len(cfg.workers)),
                             ("--api-port", req.api_port, cfg.lb_port),
                             ("--isolation", req.isolation, cfg.isolation),
                             ("--os", req.os, cfg.os),
                             ("--node-etcd-tools", req.node_etcd_tools, cfg.node_etcd_tools)):
        if given is not None and given != has:
            changes.append(f"{flag} {given} (it has {has})")
    for flag, seconds, has_seconds in (("--kubeadm-timeout", req.kubeadm_timeout, cfg.timeouts.kubeadm),
                                       ("--kubelet-restart", req.kubelet_restart, cfg.timeouts.kubelet_restart)):
        if seconds is not None and seconds != has_seconds:
            changes.append(f"{flag} {seconds:g}s (it has {has_seconds:g}s)")
    if changes:
        raise SandboxConflictError(
            f"sandbox {cfg.name} already exists (stopped, in {cfg.dir}) and `up` resumes it as it is, so it cannot "
            f"apply {'; '.join(changes)}. Drop those options to resume it, or remove it first with "
            f"`upgrader sandbox down {cfg.name}`.")


def _resume(req: UpRequest, existing: Path, register: Register | None) -> SandboxConfig:
    if supervisor_pid(existing):
        raise SandboxExistsError(f"sandbox {req.name!r} is already running ({existing})")
    cfg = load(existing, req.name)
    versions = apiserver_versions(cfg)
    _refuse_changes(req, cfg, versions)
    isolation.require(cfg.isolation)
    saved = faultlib.load(cfg.dir)
    added = [faultlib.parse(f, nodes=cfg.nodes) for f in req.faults]
    check_faults(cfg, [*saved, *added], versions, saved=saved)
    stop_processes(cfg.dir)  # leftovers of a crashed supervisor
    check_ports(cfg)
    (cfg.dir / CREATING).unlink(missing_ok=True)  # its creator was killed after the commit
    _make_private(cfg)  # also tightens a sandbox made before its directories were 0700
    faultlib.save(cfg.dir, [*saved, *added])
    try:
        _launch(cfg, register, wait=req.wait)
    except BaseException:
        with signals_held():
            faultlib.save(cfg.dir, saved)
        raise
    return cfg


def _launch(cfg: SandboxConfig, register: Register | None, *, wait: float) -> None:
    """Register, start the supervisor and wait until healthy; on any failure stop it and unregister."""
    undo: Callable[[], None] | None = None
    try:
        remember(cfg.name, cfg.dir)
        if register is not None:
            undo = register(cfg)
        pid = _start_supervisor(cfg)
        wait_healthy(cfg, supervisor=pid, timeout=wait)
    except BaseException:
        with signals_held():
            stop_processes(cfg.dir)
            if undo is not None:
                undo()
        raise


def _new_config(req: UpRequest) -> SandboxConfig:
    version = _version(req.version or DEFAULT_VERSION)
    defaults = Timeouts()
    timeouts = Timeouts(kubeadm=defaults.kubeadm if req.kubeadm_timeout is None else req.kubeadm_timeout,
                        kubelet_restart=(defaults.kubelet_restart if req.kubelet_restart is None
                                         else req.kubelet_restart))
    return new_config(
        name=req.name, sandbox_dir=Path(req.dir or default_root() / req.name).absolute(), version=str(version),
        control_planes=DEFAULT_CONTROL_PLANES if req.control_planes is None else req.control_planes,
        workers=DEFAULT_WORKERS if req.workers is None else req.workers, lb_port=req.api_port, timeouts=timeouts,
        isolation=req.isolation or isolation.NAMESPACE, os=req.os or distros.DEBIAN,
        node_etcd_tools=bool(req.node_etcd_tools))


def _create(req: UpRequest, register: Register | None) -> SandboxConfig:
    cfg = _new_config(req)
    parsed = [faultlib.parse(f, nodes=cfg.nodes) for f in req.faults]
    check_faults(cfg, parsed, {cp: Version.parse(cfg.version) for cp in cfg.control_planes}, saved=[])
    check_ports(cfg)
    isolation.require(cfg.isolation)
    creation = Creation(cfg.dir, in_root=req.dir is None)
    try:
        creation.claim(req.name)
        _make_private(cfg)
        faultlib.save(cfg.dir, parsed)
        for node in cfg.nodes:
            provision.create(cfg, node)
        kubeconfig = provision.kubeconfig(cfg.server, "kubernetes-admin", cluster=cfg.name)
        atomic_write(cfg.kubeconfig, yaml.safe_dump(kubeconfig, sort_keys=False).encode(), mode=0o600)
        cfg.save()  # the commit: from here on it is a sandbox
        creation.committed()
        _launch(cfg, register, wait=req.wait)
    except BaseException:
        with signals_held():
            creation.discard()
            remember(cfg.name, None)
        raise
    return cfg


def _make_private(cfg: SandboxConfig) -> None:
    """The sandbox's directory, ``nodes`` and every node root: 0700 (etcd data, kubeconfigs, keys)."""
    for d in (cfg.dir, cfg.node_root(cfg.nodes[0]).parent, *(cfg.node_root(n) for n in cfg.nodes)):
        private_dir(d)


def _start_supervisor(cfg: SandboxConfig) -> int:
    env = {**os.environ, OWNER_ENV: str(cfg.dir),
           "PYTHONPATH": str(Path(upgrader.__file__).resolve().parent.parent)}
    argv = [sys.executable, "-m", SUPERVISOR, str(cfg.dir)]
    return processes.spawn(argv, log=cfg.dir / SUPERVISOR_LOG, env=env)
