"""The sandbox supervisor: ``python -m upgrader.sandbox.supervisor SANDBOX_DIR``.

One background process per running sandbox. It runs the load balancer (the controlPlaneEndpoint),
a simulated kubelet per node (which run etcd and the API servers as child processes from the
static pod manifests), the cluster's controllers, and seeds a new cluster's objects once its etcd
has quorum and every kubelet has registered its node (so the seeded workloads spread over them
all). It records everything it started in ``state.json`` (pids, ports, health) every second, so
`sandbox status` can report and `sandbox down` can stop by pid even after a supervisor crash.
SIGTERM/SIGINT stop everything it started; etcd data stays on disk for a later resume.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from upgrader.sandbox import faults, seeding
from upgrader.sandbox.apiserver.errors import ApiError
from upgrader.sandbox.config import SandboxConfig, read_state, write_state
from upgrader.sandbox.etcd import EtcdError
from upgrader.sandbox.faultops import apply_fault
from upgrader.sandbox.kubeapi import KubeApi
from upgrader.sandbox.kubelet import SimKubelet
from upgrader.sandbox.lb import LoadBalancer

log = logging.getLogger("upgrader.sandbox.supervisor")
# Seeding waits for every kubelet to report its node, at most this long (a kubelet may be stuck).
SEED_WAIT = 20.0


class Supervisor:
    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self.stop_requested = threading.Event()
        self.kubelets: list[SimKubelet] = []
        self.lb: LoadBalancer | None = None
        self.api = KubeApi(cfg.server, timeout=3)
        self.seeded = False
        self.controllers = seeding.Controllers(cfg)
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
                seeding.seed(self.cfg)
                for fault in faults.load(self.cfg.dir):
                    apply_fault(self.cfg, fault)
                self.seeded = True
                self.controllers.start()
            except (EtcdError, ApiError, OSError) as e:
                log.info("seeding not possible yet: %s", e)
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
        log.info("controllers stopped")
        for k in self.kubelets:  # all stop reporting before any etcd goes away
            k.stopping.set()
        threads = [threading.Thread(target=k.stop) for k in self.kubelets]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        log.info("kubelets stopped")
        if self.lb:
            self.lb.stop()
        self._state("stopped")

    def _state(self, status: str, *, error: str | None = None) -> None:
        processes = {}
        for k in self.kubelets:
            if k.runner:
                for component, entry in k.runner.pids().items():
                    processes[f"{k.node}/{component}"] = entry
        write_state(self.cfg.dir, {
            "pid": os.getpid(),
            "status": status,
            "error": error,
            "started": self.started,
            "updated": time.time(),
            "seeded": self.seeded,
            "lb": {"port": self.cfg.lb_port,
                   "backends": {str(p): s for p, s in (self.lb.states() if self.lb else {}).items()}},
            "processes": processes,
            "kubelets": {k.node: {"state": k.state, "version": str(k.version)} for k in self.kubelets},
        })


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sandbox_dir = Path(args[0])
    cfg = SandboxConfig.load(sandbox_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if read_state(sandbox_dir).get("status") in ("starting", "running") and _other_alive(sandbox_dir):
        log.error("another supervisor is running for %s", sandbox_dir)
        return 3
    sup = Supervisor(cfg)
    def on_signal(signum: int, _frame: object) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        sup.stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a daemon outlives the terminal that started it
    return sup.run()


def _other_alive(sandbox_dir: Path) -> bool:
    from upgrader.sandbox import procs

    pid = read_state(sandbox_dir).get("pid")
    return bool(pid) and pid != os.getpid() and procs.owned(pid, "upgrader.sandbox.supervisor")


if __name__ == "__main__":
    sys.exit(main())
