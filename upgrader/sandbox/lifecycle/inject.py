"""`sandbox fault`: inject a fault into a sandbox, or clear faults.

A running sandbox gets a fault at once (``drain-blocked`` creates its objects first, and nothing is
saved if that fails); a stopped one saves it for its next `up`, unless it would keep that `up` from
ever succeeding. Clearing only edits ``faults.json``: every simulated part reads it on each decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from upgrader.sandbox import faults as faultlib
from upgrader.sandbox.apiserver.errors import ApiError
from upgrader.sandbox.etcd.errors import EtcdError
from upgrader.sandbox.lifecycle.errors import SandboxUnavailableError
from upgrader.sandbox.lifecycle.preflight import check_faults
from upgrader.sandbox.node.manifests import apiserver_versions
from upgrader.sandbox.node.state_faults import StateFaultError
from upgrader.sandbox.sandbox_config import SandboxConfig
from upgrader.sandbox.supervisor.fault_objects import apply_fault
from upgrader.sandbox.supervisor.state import supervisor_pid


@dataclass(frozen=True, slots=True)
class FaultChange:
    """A sandbox's faults after a change, and which of them wait for its next `up`."""

    faults: list[str]
    pending: list[str]


def inject(cfg: SandboxConfig, spec: str) -> FaultChange:
    """Add the fault ``spec`` (KIND[:NODE][@VERSION]) to a sandbox: at once if it runs, else at its next `up`."""
    fault = faultlib.parse(spec, nodes=cfg.nodes)
    current = faultlib.load(cfg.dir)
    if supervisor_pid(cfg.dir) is None:
        check_faults(cfg, [*current, fault], apiserver_versions(cfg), saved=current)
        faultlib.save(cfg.dir, [*current, fault])
        return FaultChange(_active(cfg), pending=[str(fault)])
    try:
        apply_fault(cfg, fault)
    except StateFaultError as e:
        raise faultlib.InvalidFaultError(f"cannot inject {fault} into sandbox {cfg.name}: {e}") from e
    except (EtcdError, ApiError) as e:
        raise SandboxUnavailableError(f"could not inject {fault} into sandbox {cfg.name}: {e}; nothing was changed "
                                      f"(see `upgrader sandbox status {cfg.name}`)") from e
    faultlib.save(cfg.dir, [*current, fault])
    return FaultChange(_active(cfg), pending=[])


def clear_faults(cfg: SandboxConfig, spec: str | None) -> FaultChange:
    """Remove the fault ``spec`` from a sandbox, or every fault when spec is None."""
    current = faultlib.load(cfg.dir)
    gone = [f for f in current if spec is None or str(f) == str(faultlib.parse(spec))]
    faultlib.save(cfg.dir, [f for f in current if f not in gone])
    return FaultChange(_active(cfg), pending=[])


def _active(cfg: SandboxConfig) -> list[str]:
    return [str(f) for f in faultlib.load(cfg.dir)]
