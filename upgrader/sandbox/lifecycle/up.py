"""Sandbox lifecycle: create or resume, start the supervisor, wait for health, stop by pid, remove.

Everything here is safe to interrupt: `up` stops what it started (and removes a sandbox it was
creating) on any failure or Ctrl-C, with further signals held off until that cleanup is done;
`down` of an unknown or stopped sandbox is a no-op; processes are only ever signalled by recorded
pid, after checking the pid still belongs to this sandbox.

A new sandbox commits with its ``config.json``, written last: a directory without one is never a
sandbox (``locate``, ``list`` and resume ignore it). While it is being filled it holds a
``.creating`` file with the creator's pid, so a later `up` can tell the debris of a creator that
was killed outright (SIGKILL, power loss) from another `up` still at work, and clears the debris.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
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
from upgrader.errors import InvalidVersionError, UpgraderError, UsageError
from upgrader.files import atomic_write
from upgrader.programs import require as require_programs
from upgrader.sandbox import faults as faultlib
from upgrader.sandbox import manifests, noderoot, procs, releases
from upgrader.sandbox.config import CONFIG, KUBECONFIG, SandboxConfig, Timeouts, default_root, new_config, read_state
from upgrader.sandbox.kubeapi import ApiError, KubeApi
from upgrader.sandbox.teardown import OWNER_ENV, SUPERVISOR, stop_processes, supervisor_pid

DEFAULT_VERSION = "v1.30.6"
DEFAULT_CONTROL_PLANES = 3
DEFAULT_WORKERS = 3
CREATING = ".creating"


class SandboxExistsError(UsageError):
    """A sandbox with that name is already running."""


class SandboxNotFoundError(UsageError):
    """No such sandbox."""


class SandboxConflictError(UsageError):
    """The sandbox exists, and `up` resumes it as it is: its creation options cannot change."""


class PortInUseError(UsageError):
    """A port the sandbox needs is already in use."""


class SandboxUnavailableError(UsageError):
    """The sandbox's etcd or API could not be reached; nothing was changed."""


class SandboxStartError(UpgraderError):
    """The sandbox did not start."""


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


@dataclass(frozen=True, slots=True)
class UpResult:
    config: SandboxConfig
    resumed: bool
    seconds: float
    version: str  # what the API server answers now (a resumed sandbox may have been upgraded)

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
        if name not in entries:
            return
        entries.pop(name)
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


def last_known_versions(cfg: SandboxConfig) -> dict[str, Version]:
    """Each control-plane node's kube-apiserver version per its static pod manifest (what it runs,
    or will run when started); nodes whose manifest is missing or unreadable are left out."""
    out: dict[str, Version] = {}
    for node in cfg.control_planes:
        path = cfg.node_root(node) / "etc/kubernetes/manifests/kube-apiserver.yaml"
        try:
            out[node] = Version.parse(manifests.image_tag(manifests.load(path) or {}))
        except (OSError, ValueError, KeyError, IndexError, TypeError, InvalidVersionError):
            continue
    return out


# --- up --------------------------------------------------------------------------------


def _version(text: str) -> Version:
    return releases.check_supported(parse_target(text))


def _check_request(req: UpRequest) -> None:
    """Bad values, whether the sandbox is new or resumed."""
    validate_name(req.name, what="sandbox")
    if req.control_planes is not None and req.control_planes < 1:
        raise UsageError("a sandbox needs at least one control-plane node (--control-planes 1 or more)")
    if req.workers is not None and req.workers < 0:
        raise UsageError("--workers must be 0 or more")
    if req.api_port is not None and not 1 <= req.api_port <= 65535:
        raise UsageError(f"--api-port {req.api_port} is not a TCP port (1-65535)")
    if req.version is not None:
        _version(req.version)


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
                if e.errno == errno.EADDRINUSE:
                    raise PortInUseError(f"port {port} ({what}) is already in use") from e
                raise PortInUseError(f"cannot listen on 127.0.0.1:{port} ({what}): {e.strerror}") from e


def _check_faults(cfg: SandboxConfig, faults: list[faultlib.Fault], versions: dict[str, Version], *,
                  saved: list[faultlib.Fault]) -> None:
    """Refuse faults with which the sandbox could never become healthy: `up` would only wait out --wait."""
    blockers = faultlib.start_blockers(faults, control_planes=cfg.control_planes, versions=versions)
    if not blockers:
        return
    parts = []
    for b in blockers:
        specs = ", ".join(str(f) for f in b.faults)
        if any(f in saved for f in b.faults):
            fix = f"clear it with `upgrader sandbox fault {cfg.name} SPEC --clear`"
        else:
            fix = f"inject it once the sandbox is running, with `upgrader sandbox fault {cfg.name} SPEC`"
        if any(f.kind == "apiserver-unready" for f in b.faults):
            fix += ", or give it a version the sandbox does not start at (apiserver-unready@v1.31)"
        parts.append(f"{specs}: {b.reason} ({fix})")
    raise faultlib.FaultBlocksStartError(
        f"sandbox {cfg.name} could never become healthy with these faults, so `up` would only time out: "
        + "; ".join(parts))


def up(req: UpRequest, *, register: Callable[[SandboxConfig], Callable[[], None] | None] | None = None) -> UpResult:
    """Create (or resume) and start a sandbox; returns once it is healthy, leaves nothing behind if not.

    ``register`` records the sandbox in the ledger and returns how to undo that (or None when it was
    already registered), so a failed `up` also leaves the ledger as it found it.
    """
    started = time.monotonic()
    _check_request(req)
    # Before any file or ledger row: without etcd the supervisor could only retry until `up` timed out.
    require_programs("etcd", "etcdctl")
    existing = locate(req.name)
    if existing is not None and req.dir is not None and Path(req.dir).resolve() != existing.resolve():
        raise SandboxConflictError(f"sandbox {req.name!r} already exists in {existing}, not {req.dir}: drop --dir "
                                   f"to resume it, or `upgrader sandbox down {req.name}` first")
    if existing is None and req.dir is not None and (Path(req.dir) / CONFIG).exists():
        existing = Path(req.dir)
    if existing is None:
        cfg = _create(req, register)
        return UpResult(cfg, resumed=False, seconds=time.monotonic() - started, version=_api_version(cfg))
    cfg = _resume(req, existing, register)
    return UpResult(cfg, resumed=True, seconds=time.monotonic() - started, version=_api_version(cfg))


def _api_version(cfg: SandboxConfig) -> str:
    try:
        return KubeApi(cfg.server, timeout=3).git_version()
    except (ApiError, KeyError):
        return cfg.version


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
                             ("--api-port", req.api_port, cfg.lb_port)):
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


def _resume(req: UpRequest, existing: Path,
            register: Callable[[SandboxConfig], Callable[[], None] | None] | None) -> SandboxConfig:
    if supervisor_pid(existing):
        raise SandboxExistsError(f"sandbox {req.name!r} is already running ({existing})")
    cfg = SandboxConfig.load(existing)
    if cfg.name != req.name:
        raise UsageError(f"{existing} holds sandbox {cfg.name!r}, not {req.name!r}")
    versions = last_known_versions(cfg)
    _refuse_changes(req, cfg, versions)
    saved = faultlib.load(cfg.dir)
    added = [faultlib.parse(f, nodes=cfg.nodes) for f in req.faults]
    _check_faults(cfg, [*saved, *added], versions, saved=saved)
    stop_processes(cfg.dir)  # leftovers of a crashed supervisor
    _check_ports(cfg)
    (cfg.dir / CREATING).unlink(missing_ok=True)  # its creator was killed after the commit
    faultlib.save(cfg.dir, [*saved, *added])
    try:
        _launch(cfg, register, wait=req.wait)
    except BaseException:
        with _signals_held():
            faultlib.save(cfg.dir, saved)
        raise
    return cfg


def _launch(
    cfg: SandboxConfig, register: Callable[[SandboxConfig], Callable[[], None] | None] | None, *, wait: float
) -> None:
    """Register, start the supervisor and wait until healthy; on any failure stop it and unregister."""
    undo: Callable[[], None] | None = None
    try:
        _remember(cfg.name, cfg.dir)
        if register is not None:
            undo = register(cfg)
        _start_supervisor(cfg)
        wait_healthy(cfg, timeout=wait)
    except BaseException:
        with _signals_held():
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
        workers=DEFAULT_WORKERS if req.workers is None else req.workers, lb_port=req.api_port, timeouts=timeouts)


def _create(req: UpRequest, register: Callable[[SandboxConfig], Callable[[], None] | None] | None) -> SandboxConfig:
    cfg = _new_config(req)
    parsed = [faultlib.parse(f, nodes=cfg.nodes) for f in req.faults]
    _check_faults(cfg, parsed, {cp: Version.parse(cfg.version) for cp in cfg.control_planes}, saved=[])
    _check_ports(cfg)
    creation = _Creation(cfg.dir)
    try:
        creation.claim(req.name)
        faultlib.save(cfg.dir, parsed)
        for node in cfg.nodes:
            noderoot.create(cfg, node)
        kubeconfig = noderoot.kubeconfig(cfg.server, "kubernetes-admin", cluster=cfg.name)
        atomic_write(cfg.dir / KUBECONFIG, yaml.safe_dump(kubeconfig, sort_keys=False).encode(), mode=0o600)
        cfg.save()  # the commit: from here on it is a sandbox
        (cfg.dir / CREATING).unlink()
        _launch(cfg, register, wait=req.wait)
    except BaseException:
        with _signals_held():
            creation.discard()
            _remember(cfg.name, None)
        raise
    return cfg


class _Creation:
    """The directory of a sandbox being created: claimed by a ``.creating`` file, discarded on failure."""

    def __init__(self, sandbox_dir: Path) -> None:
        self.dir = sandbox_dir
        self.made_dir = False
        self.claimed = False

    def claim(self, name: str) -> None:
        if self.dir.exists() and any(self.dir.iterdir()):
            if not self.is_debris(name):
                raise UsageError(f"{self.dir} exists and is not empty: choose another --dir")
            stop_processes(self.dir)
            shutil.rmtree(self.dir)
        if not self.dir.exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            self.dir.mkdir()
            self.made_dir = True
        try:
            fd = os.open(self.dir / CREATING, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            raise SandboxExistsError(f"sandbox {name!r} is being created by another `upgrader sandbox up`") from None
        self.claimed = True
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))

    def is_debris(self, name: str) -> bool:
        """Whether the directory is what a killed `up` left of a sandbox it never finished creating."""
        if (self.dir / CONFIG).exists():
            return False
        try:
            pid = int((self.dir / CREATING).read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if pid and pid != os.getpid() and procs.alive(pid) and "upgrader" in procs.cmdline(pid):
            raise SandboxExistsError(f"sandbox {name!r} is being created by another `upgrader sandbox up` (pid {pid})")
        return True

    def discard(self) -> None:
        if self.claimed:
            if self.made_dir:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:  # an empty directory the user gave with --dir: leave it empty
                for entry in list(self.dir.iterdir()):
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        elif self.made_dir:
            # This process made the directory, so all in it is ours: an interrupt can land between
            # creating the .creating file and recording the claim, leaving it behind.
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM off while cleaning up, so a second Ctrl-C cannot leave half a sandbox."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda *_: None) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


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
    """Stop a sandbox and (unless keep) delete its files; None when there was no such sandbox.

    What a killed `up` left of a sandbox it never finished creating is cleared too (it is no sandbox).
    """
    found = locate(name)
    if found is None:
        _remember(name, None)
        debris = _Creation(default_root() / name)
        if debris.dir.exists() and debris.is_debris(name):
            stop_processes(debris.dir)
            shutil.rmtree(debris.dir, ignore_errors=True)
        return None
    cfg = SandboxConfig.load(found)
    stop_processes(cfg.dir)
    if not keep:
        _remove(cfg)
    return cfg


def inject(cfg: SandboxConfig, fault: faultlib.Fault) -> bool:
    """Add ``fault`` to a sandbox; True when it took effect now, False when it waits for the next `up`.

    A running sandbox gets it at once (drain-blocked creates its objects first, and nothing is saved
    if that fails); a stopped one saves it for its next `up`, unless it would keep that `up` from
    ever succeeding.
    """
    current = faultlib.load(cfg.dir)
    if supervisor_pid(cfg.dir) is None:
        _check_faults(cfg, [*current, fault], last_known_versions(cfg), saved=current)
        faultlib.save(cfg.dir, [*current, fault])
        return False
    from upgrader.sandbox.apiserver.errors import ApiError as StoreError
    from upgrader.sandbox.etcd import EtcdError
    from upgrader.sandbox.faultops import apply_fault

    try:
        apply_fault(cfg, fault)
    except (EtcdError, StoreError) as e:
        raise SandboxUnavailableError(f"could not inject {fault} into sandbox {cfg.name}: {e}; nothing was changed "
                                      f"(see `upgrader sandbox status {cfg.name}`)") from e
    faultlib.save(cfg.dir, [*current, fault])
    return True
