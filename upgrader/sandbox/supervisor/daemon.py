"""The supervisor's work: start everything, seed a new cluster once, record the state, stop it all.

One background process per running sandbox (see :mod:`upgrader.sandbox.supervisor`). It runs the
load balancer (the controlPlaneEndpoint), a simulated kubelet per node (which run etcd and the API
servers as child processes from the static pod manifests), the cluster's controllers, and seeds a
new cluster's objects once its etcd has quorum and every kubelet has registered its node (so the
seeded workloads spread over them all); a marker file keeps a resumed sandbox from re-creating
objects the user deleted on purpose. It records everything it started in ``state.json`` (pids,
ports, health) every second, so `sandbox status` can report and `sandbox down` can stop by pid even
after a supervisor crash. Stopping stops everything it started; etcd data stays on disk for a later
resume.
"""

from __future__ import annotations

import os
import threading
import time

from upgrader import logs
from upgrader.sandbox import faults
from upgrader.sandbox.apiserver.errors import ApiError
from upgrader.sandbox.apiserver.seed import seed_cluster
from upgrader.sandbox.controllers.manager import start_controllers
from upgrader.sandbox.etcd.errors import EtcdError
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.node.kubelet import SimKubelet, node_spec
from upgrader.sandbox.sandbox_config import SandboxConfig
from upgrader.sandbox.supervisor.fault_objects import apply_fault
from upgrader.sandbox.supervisor.load_balancer import LoadBalancer
from upgrader.sandbox.supervisor.state import write_state

log = logs.get_logger(__name__)
# Seeding waits for every kubelet to report its node, at most this long (a kubelet may be stuck).
SEED_WAIT = 20.0
SEEDED = "seeded"  # marker file: this sandbox's cluster was seeded once, never again


class Supervisor:
    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.stop_requested = threading.Event()
        self.kubelets: list[SimKubelet] = []
        self.lb: LoadBalancer | None = None
        self.seeded = False
        self.controllers = Controllers(cfg)
        self.started = time.time()

    def run(self) -> int:
        self._state("starting")
        try:
            self.lb = LoadBalancer(self.cfg.lb_port, lambda: list(self.cfg.apiserver_ports.values()))
        except OSError as e:
            self._state("failed", error=f"port {self.cfg.lb_port} is already in use: {e.strerror}")
            return 3
        self.lb.start()
        self.kubelets = [SimKubelet(self.cfg, n) for n in self.cfg.nodes]
        for k in self.kubelets:
            k.start()
        try:
            while not self.stop_requested.wait(1.0):
                self._step()
        finally:
            self._shutdown()
        return 0

    def _step(self) -> None:
        if not self.seeded and self._nodes_reported():
            try:
                seed(self.cfg)
                for fault in faults.load(self.cfg.dir):
                    apply_fault(self.cfg, fault)
                self.seeded = True
                self.controllers.start()
            except (EtcdError, ApiError, OSError) as e:
                log.info("seeding_deferred", reason=str(e))
        self._state("running" if self.seeded else "starting")

    def _nodes_reported(self) -> bool:
        """Whether every node is registered with its kubelet's verdict, as kubeadm init/join leave them.

        The workloads seeded next are placed on the nodes Ready at that moment; seeding while only
        some kubelets had reported would pile every replica onto those few nodes.
        """
        return all(k.reported.is_set() for k in self.kubelets) or time.time() - self.started > SEED_WAIT

    def _shutdown(self) -> None:
        self._state("stopping")
        self.controllers.stop()
        log.info("controllers_stopped")
        for k in self.kubelets:  # all stop reporting before any etcd goes away
            k.stopping.set()
        threads = [threading.Thread(target=k.stop) for k in self.kubelets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        log.info("kubelets_stopped")
        if self.lb:
            self.lb.stop()
        self._state("stopped")

    def _state(self, status: str, *, error: str | None = None) -> None:
        started = {}
        for k in self.kubelets:
            if k.runner:
                for component, entry in k.runner.pids().items():
                    started[f"{k.node}/{component}"] = entry
        write_state(self.cfg.dir, {
            "pid": os.getpid(),
            "status": status,
            "error": error,
            "started": self.started,
            "updated": time.time(),
            "seeded": self.seeded,
            "lb": {"port": self.cfg.lb_port,
                   "backends": {str(p): s for p, s in (self.lb.states() if self.lb else {}).items()}},
            "processes": started,
            "kubelets": {k.node: {"state": k.state, "version": str(k.version)} for k in self.kubelets},
        })


def seed(cfg: SandboxConfig) -> None:
    """What kubeadm init/join leave in a new cluster, once in a sandbox's life (see the marker)."""
    if (cfg.dir / SEEDED).exists():
        return
    seed_cluster(EtcdKV(cfg.etcd_client_urls, timeout=3), nodes=[node_spec(cfg, n) for n in cfg.nodes],
                 version=cfg.version, cluster_name="kubernetes", control_plane_endpoint=f"127.0.0.1:{cfg.lb_port}")
    (cfg.dir / SEEDED).write_text("")


class Controllers:
    """Runs the sandbox's controllers (as kube-controller-manager would) on a thread."""

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self._running: tuple[threading.Thread, threading.Event] | None = None

    def start(self) -> None:
        if self._running is None:
            self._running = start_controllers(EtcdKV(self.cfg.etcd_client_urls, timeout=3), interval=1.0)

    def stop(self) -> None:
        if self._running is not None:
            thread, stop = self._running
            stop.set()
            thread.join(timeout=10)
            self._running = None
