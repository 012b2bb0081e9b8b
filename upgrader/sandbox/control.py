"""Sandbox lifecycle: create or resume, start the supervisor, wait for health, stop by pid, remove.

Everything here is safe to interrupt: `up` stops what it started (and removes a sandbox it was
creating) on any failure or Ctrl-C; `down` of an unknown or stopped sandbox is a no-op; processes
are only ever signalled by recorded pid, after checking the pid still belongs to this sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import upgrader
from upgrader.domain.names import validate_name
from upgrader.domain.versions import Minor, Version, parse_target
from upgrader.errors import UpgraderError, UsageError
from upgrader.nodes.local import atomic_write
from upgrader.sandbox import faults as faultlib
from upgrader.sandbox import noderoot, procs, releases
from upgrader.sandbox.config import CONFIG, KUBECONFIG, SandboxConfig, Timeouts, default_root, new_config, read_state
from upgrader.sandbox.kubeapi import ApiError, KubeApi
from upgrader.sandbox.teardown import OWNER_ENV, SUPERVISOR, stop_processes, supervisor_pid


class SandboxExistsError(UsageError):
    """A sandbox with that name is already running."""


class SandboxNotFoundError(UsageError):
    """No such sandbox."""


class PortInUseError(UsageError):
    """A port the sandbox needs is already in use."""


class SandboxStartError(UpgraderError):
    """The sandbox did not start."""


@dataclass(frozen=True, slots=True)
class UpRequest:
    name: str
    version: str = "v1.30.6"
    control_planes: int = 3
    workers: int = 3
    faults: list[str] = field(default_factory=list)
    dir: Path | None = None
    api_port: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    wait: float = 180.0


@dataclass(frozen=True, slots=True)
class UpResult:
    config: SandboxConfig
    resumed: bool
    seconds: float

    @property
    def kubeconfig(self) -> Path:
        return self.config.dir / KUBECONFIG


# --- where sandboxes are -----------------------------------------------------------------


def _registry() -> Path:
    return default_root() / "registry.json"


def known() -> dict[str, str]:
    try:
        return dict(json.loads(_registry().read_text()))
    except (OSError, ValueError):
        return {}


def _remember(name: str, sandbox_dir: Path | None) -> None:
    entries = known()
    if sandbox_dir is None:
        entries.pop(name, None)
    else:
        entries[name] = str(sandbox_dir)
    atomic_write(_registry(), json.dumps(entries, indent=1, sort_keys=True).encode())


def locate(name: str) -> Path | None:
    """The directory of an existing sandbox (one that has a config.json), or None."""
    candidates = [known().get(name), str(default_root() / name)]
    for c in candidates:
        if c and (Path(c) / CONFIG).exists():
            return Path(c)
    return None


def require(name: str) -> SandboxConfig:
    found = locate(name)
    if found is None:
        raise SandboxNotFoundError(f"no sandbox named {name!r} (see `upgrader sandbox list`)")
    return SandboxConfig.load(found)


# --- up --------------------------------------------------------------------------------


def _version(text: str) -> Version:
    target = parse_target(text)
    if isinstance(target, Minor):
        patches = releases.patches(target)
        if not patches:
            raise UsageError(f"unknown Kubernetes version {text}: no such release")
        return releases.check_supported(patches[-1])
    return releases.check_supported(target)


def _check_ports(cfg: SandboxConfig) -> None:
    named = {cfg.lb_port: "load balancer"}
    for n in cfg.control_planes:
        named |= {cfg.apiserver_ports[n]: f"kube-apiserver on {n}", cfg.etcd_client_ports[n]: f"etcd client on {n}",
                  cfg.etcd_peer_ports[n]: f"etcd peer on {n}"}
    for port, what in named.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                raise PortInUseError(f"port {port} ({what}) is already in use: {e.strerror}") from e


def _create(req: UpRequest, sandbox_dir: Path) -> SandboxConfig:
    if req.control_planes < 1:
        raise UsageError("a sandbox needs at least one control-plane node (--control-planes 1 or more)")
    if req.workers < 0:
        raise UsageError("--workers must be 0 or more")
    version = _version(req.version)
    cfg = new_config(name=req.name, sandbox_dir=sandbox_dir, version=str(version), control_planes=req.control_planes,
                     workers=req.workers, lb_port=req.api_port, timeouts=req.timeouts)
    parsed = [faultlib.parse(f, nodes=cfg.nodes) for f in req.faults]
    _check_ports(cfg)
    if sandbox_dir.exists() and any(sandbox_dir.iterdir()):
        raise UsageError(f"{sandbox_dir} exists and is not empty: choose another --dir")
    sandbox_dir.mkdir(parents=True, exist_ok=True)
    cfg.save()
    faultlib.save(cfg.dir, parsed)
    for node in cfg.nodes:
        noderoot.create(cfg, node)
    kubeconfig = noderoot.kubeconfig(cfg.server, "kubernetes-admin", cluster=cfg.name)
    (cfg.dir / KUBECONFIG).write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    (cfg.dir / KUBECONFIG).chmod(0o600)
    return cfg


def up(req: UpRequest, *, register: Callable[[SandboxConfig], Callable[[], None] | None] | None = None) -> UpResult:
    """Create (or resume) and start a sandbox; returns once it is healthy, leaves nothing behind if not.

    ``register`` records the sandbox in the ledger and returns how to undo that (or None when it was
    already registered), so a failed `up` also leaves the ledger as it found it.
    """
    started = time.monotonic()
    validate_name(req.name, what="sandbox")
    existing = locate(req.name) or (req.dir if req.dir and (req.dir / CONFIG).exists() else None)
    if existing is not None and supervisor_pid(existing):
        raise SandboxExistsError(f"sandbox {req.name!r} is already running ({existing})")
    created = existing is None
    if existing is not None:
        cfg = SandboxConfig.load(existing)
        if cfg.name != req.name:
            raise UsageError(f"{existing} holds sandbox {cfg.name!r}, not {req.name!r}")
        stop_processes(cfg.dir)  # leftovers of a crashed supervisor
        _check_ports(cfg)
        faultlib.save(cfg.dir, [*faultlib.load(cfg.dir), *(faultlib.parse(f, nodes=cfg.nodes) for f in req.faults)])
    else:
        cfg = _create(req, Path(req.dir or default_root() / req.name).absolute())
    undo: Callable[[], None] | None = None
    try:
        _remember(cfg.name, cfg.dir)
        if register is not None:
            undo = register(cfg)
        _start_supervisor(cfg)
        wait_healthy(cfg, timeout=req.wait)
    except BaseException:
        stop_processes(cfg.dir)
        if undo is not None:
            undo()
        if created:
            _remove(cfg)
        raise
    return UpResult(cfg, resumed=not created, seconds=time.monotonic() - started)


def _start_supervisor(cfg: SandboxConfig) -> int:
    env = {**os.environ, OWNER_ENV: str(cfg.dir),
           "PYTHONPATH": str(Path(upgrader.__file__).resolve().parent.parent)}
    argv = [sys.executable, "-m", SUPERVISOR, str(cfg.dir)]
    return procs.spawn(argv, log=cfg.dir / "supervisor.log", env=env)


def _unhealthy(cfg: SandboxConfig) -> str | None:
    """What is still missing for the sandbox to count as healthy, or None."""
    state = read_state(cfg.dir)
    if state.get("status") == "failed":
        raise SandboxStartError(f"sandbox {cfg.name!r} failed to start: {state.get('error')}")
    if state.get("status") != "running":
        return "the supervisor has not finished starting"
    starting = [n for n, k in state.get("kubelets", {}).items() if k.get("state") != "active"]
    if starting:
        return f"kubelets still starting: {', '.join(starting)}"
    api = KubeApi(cfg.server, timeout=3)
    if not api.ready():
        return f"{cfg.server}/readyz is not ok"
    try:
        items = api.get("/api/v1/nodes").get("items", [])
    except ApiError as e:
        return f"cannot list nodes: {e}"
    ready = {n["metadata"]["name"] for n in items
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
    excused = {f.node for f in faultlib.load(cfg.dir) if f.kind == "node-not-ready"}
    missing = [n for n in cfg.nodes if n not in ready and n not in excused]
    return f"nodes not Ready: {', '.join(missing)}" if missing else None


def wait_healthy(cfg: SandboxConfig, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    why = "not started"
    while time.monotonic() < deadline:
        if supervisor_pid(cfg.dir) is None and read_state(cfg.dir).get("status") != "failed":
            time.sleep(0.3)
            if supervisor_pid(cfg.dir) is None:
                raise SandboxStartError(f"the sandbox supervisor exited; see {cfg.dir / 'supervisor.log'}:\n"
                                        + _tail(cfg.dir / "supervisor.log"))
        why = _unhealthy(cfg) or ""
        if not why:
            return
        time.sleep(0.3)
    raise SandboxStartError(f"sandbox {cfg.name!r} did not become healthy within {timeout:g}s: {why}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _remove(cfg: SandboxConfig) -> None:
    if (cfg.dir / CONFIG).exists():
        shutil.rmtree(cfg.dir, ignore_errors=True)
    _remember(cfg.name, None)


def down(name: str, *, keep: bool = False) -> SandboxConfig | None:
    """Stop a sandbox and (unless keep) delete its files; None when there was no such sandbox."""
    found = locate(name)
    if found is None:
        _remember(name, None)
        return None
    cfg = SandboxConfig.load(found)
    stop_processes(cfg.dir)
    if not keep:
        _remove(cfg)
    return cfg
