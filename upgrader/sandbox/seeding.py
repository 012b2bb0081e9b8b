"""The supervisor's adapter to the API server package's seed helpers and controllers.

A new cluster is seeded once (namespaces, kubeadm-config, Node objects, the demo workloads), when
its etcd has quorum; a marker file keeps a resumed sandbox from re-creating objects the user
deleted on purpose.
"""

from __future__ import annotations

import logging
import threading

from upgrader.sandbox.apiserver import controllers
from upgrader.sandbox.apiserver import seed as api_seed
from upgrader.sandbox.config import SandboxConfig
from upgrader.sandbox.etcd import EtcdKV

log = logging.getLogger("upgrader.sandbox.seeding")
MARKER = "seeded"


def etcd_kv(cfg: SandboxConfig) -> EtcdKV:
    return EtcdKV([cfg.etcd_client_url(n) for n in cfg.control_planes], timeout=3)


def seed(cfg: SandboxConfig) -> None:
    if (cfg.dir / MARKER).exists():
        return
    from upgrader.sandbox.kubelet import node_spec

    api_seed.seed_cluster(etcd_kv(cfg), nodes=[node_spec(cfg, n) for n in cfg.nodes], version=cfg.version,
                          cluster_name="kubernetes", control_plane_endpoint=f"127.0.0.1:{cfg.lb_port}")
    (cfg.dir / MARKER).write_text("")


class Controllers:
    """Runs the API server package's controllers (as kube-controller-manager would) on a thread."""

    def __init__(self, cfg: SandboxConfig) -> None:
        self.cfg = cfg
        self._running: tuple[threading.Thread, threading.Event] | None = None

    def start(self) -> None:
        if self._running is None:
            self._running = controllers.start_controllers(etcd_kv(self.cfg), interval=1.0)

    def stop(self) -> None:
        if self._running is not None:
            thread, stop = self._running
            stop.set()
            thread.join(timeout=10)
            self._running = None
