"""A sandbox's fixed facts (``config.json``): its name, directory, version, nodes, every port, its isolation
and its nodes' OS.

``config.json`` is written once by ``sandbox up`` and never changes while the sandbox exists: node
names and every port are fixed at creation because etcd records its peer URLs in its data, so a
resumed sandbox must come back on the same ports. What changes at run time lives elsewhere:
``state.json`` (the supervisor's pids and health), ``faults.json`` and the node roots.
"""

from __future__ import annotations

import json
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

from upgrader.files import atomic_write

CONFIG = "config.json"
KUBECONFIG = "kubeconfig"


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
    # how node commands are kept off the machine: "namespace" or "best-effort" (node/isolation.py);
    # sandboxes made before there was a choice get the strict one
    isolation: str = "namespace"
    # which OS its nodes play, so which package manager they have: "debian" (apt, dpkg) or "rhel" (dnf,
    # rpm); see node/distros.py. Sandboxes made before there was a choice are Debian
    os: str = "debian"
    # whether its nodes have etcdctl on their PATH (the machine's, mapped onto the sandbox's members); a
    # kubeadm node has none (`sandbox up --node-etcd-tools` lends it). Sandboxes made before there was a
    # choice lose it on their next command
    node_etcd_tools: bool = False

    @property
    def nodes(self) -> list[str]:
        return [*self.control_planes, *self.workers]

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig `sandbox up` writes for the user (and registers in the ledger)."""
        return self.dir / KUBECONFIG

    def node_root(self, node: str) -> Path:
        return self.dir / "nodes" / node

    def etcd_client_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.etcd_client_ports[node]}"

    @property
    def etcd_client_urls(self) -> list[str]:
        """Every etcd member's client URL, control-plane order: the endpoints of any client of the cluster."""
        return [self.etcd_client_url(n) for n in self.control_planes]

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


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now (all bound at once, so none repeats).

    The kernel may hand one out again before its user binds it: whoever starts a listener on it
    retries on fresh ports when that happens.
    """
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
               lb_port: int | None = None, timeouts: Timeouts | None = None,
               isolation: str = "namespace", os: str = "debian", node_etcd_tools: bool = False) -> SandboxConfig:
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
        isolation=isolation,
        os=os,
        node_etcd_tools=node_etcd_tools,
    )
