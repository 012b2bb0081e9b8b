"""A sandbox's fixed facts (``config.json``) and where its files live.

``config.json`` is written once by ``sandbox up`` and never changes while the sandbox exists: node
names and every port are fixed at creation because etcd records its peer URLs in its data, so a
resumed sandbox must come back on the same ports. What changes at run time lives elsewhere:
``state.json`` (the supervisor's pids and health), ``faults.json`` and the node roots.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from upgrader.files import atomic_write

CONFIG = "config.json"
STATE = "state.json"
KUBECONFIG = "kubeconfig"


def default_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "upgrader" / "sandboxes"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. kubeadm's real static-pod wait is 5 minutes; tests shorten it per sandbox."""

    kubeadm: float = 300.0
    kubelet_restart: float = 1.0  # how long a restarted kubelet stays NotReady
    heartbeat: float = 10.0  # kubelet status refresh when nothing changed (nodeStatusUpdateFrequency)


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    name: str
    dir: Path
    version: str
    control_planes: list[str]
    workers: list[str]
    lb_port: int
    apiserver_ports: dict[str, int]
    etcd_client_ports: dict[str, int]
    etcd_peer_ports: dict[str, int]
    timeouts: Timeouts = field(default_factory=Timeouts)

    @property
    def nodes(self) -> list[str]:
        return [*self.control_planes, *self.workers]

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    def node_root(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def etcd_client_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.etcd_client_ports[node]}"

    def etcd_peer_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.etcd_peer_ports[node]}"

    def apiserver_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.apiserver_ports[node]}"

    def initial_cluster(self) -> str:
        return ",".join(f"{n}={self.etcd_peer_url(n)}" for n in self.control_planes)

    def save(self) -> None:
        data = asdict(self)
        data["dir"] = str(self.dir)
        atomic_write(self.dir / CONFIG, json.dumps(data, indent=1).encode())

    @classmethod
    def load(cls, sandbox_dir: Path) -> SandboxConfig:
        data = json.loads((Path(sandbox_dir) / CONFIG).read_text())
        data["dir"] = Path(data["dir"])
        data["timeouts"] = Timeouts(**data.get("timeouts", {}))
        return cls(**data)


def read_state(sandbox_dir: Path) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], json.loads((Path(sandbox_dir) / STATE).read_text()))
    except (OSError, ValueError):
        return {}


def write_state(sandbox_dir: Path, state: dict[str, Any]) -> None:
    atomic_write(Path(sandbox_dir) / STATE, json.dumps(state, indent=1, sort_keys=True).encode())


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now (all bound at once, so none repeats)."""
    import socket

    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def new_config(*, name: str, sandbox_dir: Path, version: str, control_planes: int, workers: int,
               lb_port: int | None = None, timeouts: Timeouts | None = None) -> SandboxConfig:
    """Names nodes cp-N and worker-N and gives every endpoint its own free loopback port."""
    cps = [f"cp-{i}" for i in range(1, control_planes + 1)]
    ports = iter(free_ports(3 * len(cps) + 1))
    return SandboxConfig(
        name=name,
        dir=Path(sandbox_dir),
        version=version,
        control_planes=cps,
        workers=[f"worker-{i}" for i in range(1, workers + 1)],
        lb_port=lb_port or next(ports),
        apiserver_ports={n: next(ports) for n in cps},
        etcd_client_ports={n: next(ports) for n in cps},
        etcd_peer_ports={n: next(ports) for n in cps},
        timeouts=timeouts or Timeouts(),
    )
