"""Sandbox use cases: start, stop and inspect a local rehearsal cluster, inject faults, run node commands.

The sandbox itself is reached only through its public face (:mod:`upgrader.sandbox`). What this layer
adds is the ledger's side: `up` registers the sandbox as a cluster (a resumed one may already be
registered to itself) and a failed `up` unregisters it again; `down` unregisters it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from upgrader import sandbox
from upgrader.domain.text import excerpt
from upgrader.errors import ClusterExistsError, ClusterNotFoundError, UsageError
from upgrader.ports import CommandResult
from upgrader.sandbox import SandboxConfig, UpRequest, UpResult
from upgrader.services import clusters
from upgrader.services.wiring import AppContext

__all__ = ["DownResult", "FaultsResult", "UpRequest", "UpResult", "age_certs", "clear_faults", "down", "exec_on_node",
           "inject_fault", "list_sandboxes", "status", "up"]


@dataclass(frozen=True, slots=True)
class DownResult:
    name: str
    dir: Path | None  # None: there was no such sandbox
    kept: bool
    unregistered: bool


@dataclass(frozen=True, slots=True)
class FaultsResult:
    faults: list[str]  # every fault of the sandbox now
    pending: list[str]  # injected into a stopped sandbox: takes effect at its next `up`


def up(app: AppContext, request: UpRequest, *, register: bool) -> UpResult:
    """Start a sandbox (or resume a stopped one) and, when asked, register it in the ledger."""
    return sandbox.up(request, register=_registration(app) if register else None)


def _registration(app: AppContext) -> Callable[[SandboxConfig], Callable[[], None] | None]:
    """Registers the sandbox as a cluster and returns how to undo that, or None when it already was.

    A resumed sandbox may already be registered to itself (same kubeconfig); a cluster of that name
    that is something else is refused.
    """

    def register(cfg: SandboxConfig) -> Callable[[], None] | None:
        try:
            clusters.register_cluster(app, name=cfg.name, kubeconfig=cfg.kubeconfig, context=None,
                                      transport={"kind": "sandbox", "dir": str(cfg.dir)})
        except ClusterExistsError:
            record = clusters.show_cluster(app, name=cfg.name)
            if Path(record.kubeconfig) != cfg.kubeconfig.resolve():
                raise ClusterExistsError(f"a cluster named {cfg.name!r} is already registered "
                                         f"(kubeconfig {record.kubeconfig}); pick another sandbox name") from None
            return None
        return lambda: clusters.unregister_cluster(app, name=cfg.name)

    return register


def down(app: AppContext, *, name: str, keep: bool) -> DownResult:
    """Stop a sandbox (removing its files unless ``keep``) and unregister it from the ledger."""
    cfg = sandbox.down(name, keep=keep)
    unregistered = False
    try:
        record = clusters.show_cluster(app, name=name)
        if (record.transport or {}).get("kind") == "sandbox":
            clusters.unregister_cluster(app, name=name)
            unregistered = True
    except ClusterNotFoundError:
        pass
    return DownResult(name, cfg.dir if cfg else None, kept=keep and cfg is not None, unregistered=unregistered)


def status(*, name: str) -> dict[str, Any]:
    """Processes, ports, node versions and etcd members of a sandbox."""
    return sandbox.status(sandbox.require(name))


def list_sandboxes() -> list[dict[str, Any]]:
    """Every sandbox on this machine, at the version its API server reports (last known when stopped)."""
    return sandbox.listing()


def inject_fault(*, name: str, spec: str | None) -> FaultsResult:
    """Inject a fault: at once into a running sandbox, at its next `up` into a stopped one."""
    cfg = sandbox.require(name)
    if spec is None:
        raise UsageError("name a fault: KIND[:NODE][@VERSION] (or --clear)")
    change = sandbox.inject(cfg, spec)
    return FaultsResult(change.faults, change.pending)


def clear_faults(*, name: str, spec: str | None) -> FaultsResult:
    """Remove a fault from a sandbox, or every fault when ``spec`` is None."""
    change = sandbox.clear_faults(sandbox.require(name), spec)
    return FaultsResult(change.faults, change.pending)


def age_certs(*, name: str, expire_in: float, node: str | None = None) -> dict[str, Any]:
    """Make a sandbox's control-plane certificates expire ``expire_in`` seconds from now (to rehearse renewal)."""
    done = sandbox.age_certs(sandbox.require(name), expire_in, node=node)
    return {"name": name, "nodes": done.nodes, "expires": datetime.fromtimestamp(done.expires, UTC).isoformat()}


def exec_on_node(app: AppContext, *, name: str, node: str, argv: list[str], timeout: float) -> CommandResult:
    """Run argv on a sandbox node, as ssh would run it on a real one."""
    cfg = sandbox.require(name)
    if node not in cfg.nodes:
        raise UsageError(f"sandbox {name} has no node {excerpt(node)} (nodes: {', '.join(cfg.nodes)})")
    return app.sandbox_transport(cfg.dir, node).run(argv, timeout)
