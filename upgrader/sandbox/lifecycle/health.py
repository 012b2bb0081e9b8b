"""When a started sandbox counts as healthy, and waiting for it.

Healthy: the supervisor runs and says so, every kubelet is active, the API answers /readyz through
the load balancer, and every node is Ready (but those a ``node-not-ready`` fault keeps NotReady on
purpose). A supervisor that failed or exited is reported at once, with its log's last lines.
"""

from __future__ import annotations

import time
from pathlib import Path

from upgrader.sandbox import faults as faultlib
from upgrader.sandbox import processes
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.lifecycle.errors import SandboxStartError
from upgrader.sandbox.sandbox_config import SandboxConfig
from upgrader.sandbox.supervisor.state import read_state

SUPERVISOR_LOG = "supervisor.log"


def api_version(cfg: SandboxConfig) -> str:
    """What the API server answers now; the version the sandbox was created at when it does not answer."""
    try:
        return KubeClient(cfg.server, timeout=3).git_version()
    except (ApiError, KeyError):
        return cfg.version


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
    api = KubeClient(cfg.server, timeout=3)
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


def wait_healthy(cfg: SandboxConfig, *, supervisor: int, timeout: float) -> None:
    """Wait until healthy; ``supervisor`` is the pid just spawned. That pid is watched, not state.json:
    the supervisor writes its state only after its imports, which take a while on a loaded machine."""
    deadline = time.monotonic() + timeout
    why = "not started"
    while time.monotonic() < deadline:
        if not processes.alive(supervisor) and read_state(cfg.dir).get("status") != "failed":
            raise SandboxStartError(f"the sandbox supervisor exited; see {cfg.dir / SUPERVISOR_LOG}:\n"
                                    + _tail(cfg.dir / SUPERVISOR_LOG))
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
