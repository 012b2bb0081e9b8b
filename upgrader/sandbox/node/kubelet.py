"""A simulated kubelet: one thread per sandbox node, run by the supervisor.

It reports the node as a kubelet does (registers the Node, heartbeats its status with the
kubeletVersion and the Ready condition) and, on control-plane nodes, runs the static pods and keeps
their mirror pods. The running kubelet version becomes the installed kubelet package's only after
`systemctl restart kubelet` (the unit file in the node root asks for it); the node is then NotReady
for a moment before it is Ready again at the new version.

Status writes go straight to etcd through the API server package's store (its ``node_status`` and
``mirror_pods`` modules), so 50 idle workers cost no HTTP traffic and a node keeps reporting while
API servers restart.
"""

from __future__ import annotations

import ipaddress
import os
import threading
import time

from upgrader import logs
from upgrader.domain.versions import Version
from upgrader.ports import NodeLayout
from upgrader.sandbox import faults, releases
from upgrader.sandbox.apiserver.errors import ApiError
from upgrader.sandbox.apiserver.mirror_pods import remove_mirror_pod, upsert_mirror_pod
from upgrader.sandbox.apiserver.node_status import NodeRole, NodeSpec, upsert_node_status
from upgrader.sandbox.etcd.errors import EtcdError
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.node import machine, removed_flags
from upgrader.sandbox.node.static_pods import StaticPodRunner, component_ready
from upgrader.sandbox.sandbox_config import SandboxConfig

log = logs.get_logger(__name__)
TICK = 0.25
# Like the kubelet's periodic pod sync, each mirror pod is checked against its static pod this often
# even when nothing changed here, so a mirror pod that something else replaced or deleted comes back.
MIRROR_RESYNC = 5.0
# systemd's RestartSec for kubelet.service is 10 s; the sandbox retries a kubelet that exited sooner
RESTART_SEC = 2.0


def node_spec(cfg: SandboxConfig, node: str, *, kubelet_version: str | None = None) -> NodeSpec:
    """The node as registered: NotReady until its kubelet has started and says otherwise.

    Its InternalIP is a loopback address of its own (127.0.X.Y, never a private network's), and its
    podCIDR index is its place in the sandbox, so seeding and the kubelet register the same Node.
    """
    index = cfg.nodes.index(node)
    role = NodeRole.CONTROL_PLANE if node in cfg.control_planes else NodeRole.WORKER
    return NodeSpec(node, role, internal_ip(index), kubelet_version, ready=False, index=index)


def internal_ip(index: int) -> str:
    """127.0.0.10, 127.0.0.11, ... 127.0.0.249, 127.0.1.10, ...: 240 nodes per /24, all inside 127.0.0.0/8."""
    offset = (index // 240) * 256 + 10 + index % 240
    if not 0 <= offset < 2**24:
        raise ValueError(f"node index {index} has no address in 127.0.0.0/8")
    return str(ipaddress.IPv4Address("127.0.0.0") + offset)


class SimKubelet(threading.Thread):
    def __init__(self, cfg: SandboxConfig, node: str) -> None:
        super().__init__(name=f"kubelet-{node}", daemon=True)
        self.cfg = cfg
        self.node = node
        self.layout = NodeLayout(cfg.node_root(node))
        self.kv = EtcdKV(cfg.etcd_client_urls, timeout=2)
        control_plane = node in cfg.control_planes
        self.runner = StaticPodRunner(node=node, layout=self.layout, sandbox_dir=cfg.dir) if control_plane else None
        self.stopping = threading.Event()
        self.version = self._installed()
        self.state = "activating"
        self.since = time.time()
        self.ready_at = time.monotonic() + cfg.timeouts.kubelet_restart
        self.generation = int(machine.kubelet_unit(self.layout).get("generation", 0))
        self._posted: tuple[object, ...] | None = None
        # set once the Node carries this kubelet's own verdict (past its start-up NotReady moment)
        self.reported = threading.Event()
        self._posted_at = 0.0
        self._mirrors: dict[str, tuple[str, bool, str]] = {}
        self._mirrors_synced = 0.0
        self._status_written = 0.0
        self._retry_at = 0.0
        self._refused_flag: str | None = None
        self._check_flags()

    def _installed(self) -> Version:
        pkg = machine.packages(self.layout).get("kubelet")
        return releases.parse_package(pkg.version) if pkg else Version.parse(self.cfg.version)

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except EtcdError as e:  # no quorum yet, or etcd restarting: like a kubelet that retries
                log.debug("kubelet %s: %s", self.node, e)
            except Exception:  # a kubelet keeps going; the supervisor log says why
                log.exception("kubelet_tick_failed", node=self.node)
            if (took := time.monotonic() - started) > 5:  # a stalled kubelet explains late mirror pods
                log.warning("kubelet_tick_slow", node=self.node, seconds=round(took, 1))
            self.stopping.wait(TICK)

    def stop(self) -> None:
        """Stop reporting, then stop the static pods (stop_all of every kubelet first is faster)."""
        self.stopping.set()
        self.join(timeout=10)
        log.info("kubelet_stopped", node=self.node)
        if self.runner:
            self.runner.stop_all()
            log.info("static_pods_stopped", node=self.node)
        self.state = "inactive"
        self._write_status(force=True)

    def tick(self) -> None:
        self._follow_unit()
        if self.state == "auto-restart" and time.monotonic() >= self._retry_at:
            self._check_flags()  # systemd starts it again; it reads kubeadm-flags.env again
        if self.state == "activating" and time.monotonic() >= self.ready_at:
            self.state = "active"
            self._write_status(force=True)
        self._write_status()
        if self.runner and self.state not in ("inactive", "auto-restart"):
            self.runner.sync()
        self._post_node()
        if self.runner and self.state not in ("inactive", "auto-restart"):
            self._sync_mirrors()

    def _follow_unit(self) -> None:
        unit = machine.kubelet_unit(self.layout)
        generation = int(unit.get("generation", 0))
        if generation == self.generation:
            return
        self.generation = generation
        if unit.get("wanted") == "inactive":
            self.state = "inactive"
        else:
            self.version = self._installed()
            self.state = "activating"
            self.ready_at = time.monotonic() + self.cfg.timeouts.kubelet_restart
            self.since = time.time()
            log.info("kubelet_restarted", node=self.node, version=str(self.version))
            self._check_flags()
        self._write_status(force=True)

    def _check_flags(self) -> None:
        """A start of the kubelet binary: it exits at once on a flag of kubeadm-flags.env its version
        removed, systemd logs the failure and starts it again after RestartSec (the node goes NotReady)."""
        text = machine.read_text(self.layout, removed_flags.KUBELET_FLAGS)
        flag = removed_flags.refused(removed_flags.env_flags(text), removed_flags.KUBELET, self.version)
        pid = 4000 + int(time.time()) % 50000
        if flag is None:
            if self._refused_flag is not None or self.state == "auto-restart":
                self.state = "activating"
                self.ready_at = time.monotonic() + self.cfg.timeouts.kubelet_restart
                self.since = time.time()
            self._refused_flag = None
            machine.journal(self.layout, "systemd[1]", "Started kubelet.service - kubelet: The Kubernetes Node Agent.")
            return
        if self._refused_flag is None:
            self.since = time.time()
        self._refused_flag = flag
        self.state = "auto-restart"
        self._retry_at = time.monotonic() + RESTART_SEC
        machine.journal(self.layout, "systemd[1]", "Started kubelet.service - kubelet: The Kubernetes Node Agent.")
        stamp = time.strftime("E%m%d %H:%M:%S.000000", time.gmtime())
        machine.journal(self.layout, f"kubelet[{pid}]",
                        f"{stamp}    {pid} run.go:72] {removed_flags.kubelet_error(flag)}")
        machine.journal(self.layout, "systemd[1]",
                        "kubelet.service: Main process exited, code=exited, status=1/FAILURE")
        machine.journal(self.layout, "systemd[1]", "kubelet.service: Failed with result 'exit-code'.")
        self._write_status(force=True)

    def _write_status(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._status_written < 1.0:
            return
        machine.save_kubelet_status(self.layout, {
            "generation": self.generation, "state": self.state, "version": str(self.version),
            "since": self.since, "pid": os.getpid(), "refused_flag": self._refused_flag})
        self._status_written = time.monotonic()

    def ready(self) -> tuple[bool, str, str]:
        """(ready, reason, message) of the node's Ready condition."""
        if self.state in ("inactive", "auto-restart"):
            return False, "NodeStatusUnknown", "Kubelet stopped posting node status."
        if self.state == "activating":
            return False, "KubeletNotReady", "container runtime status check may not have completed yet"
        if faults.active(self.cfg.dir, kind="node-not-ready", node=self.node, version=self.version):
            return False, "KubeletNotReady", ("PLEG is not healthy: pleg was last seen active 3m0s ago; "
                                              "threshold is 3m0s")
        return True, "KubeletReady", "kubelet is posting ready status"

    def _post_node(self) -> None:
        ready, reason, message = self.ready()
        key = (ready, reason, message, str(self.version))
        if key == self._posted and time.monotonic() - self._posted_at < self.cfg.timeouts.heartbeat:
            return
        spec = node_spec(self.cfg, self.node, kubelet_version=str(self.version))
        upsert_node_status(self.kv, node=spec, kubelet_version=str(self.version), ready=ready,
                                reason=reason, message=message)
        self._posted, self._posted_at = key, time.monotonic()
        if self.state != "activating":
            self.reported.set()

    def _sync_mirrors(self) -> None:
        try:
            self._write_mirrors()
        except ApiError as e:
            if e.code != 404:
                raise
            # our Node was deleted (kubectl delete node): register it again on the next tick
            log.info("node_registered_again", node=self.node, reason="node not found")
            self._posted = None

    def _write_mirrors(self) -> None:
        assert self.runner is not None
        if time.monotonic() - self._mirrors_synced >= MIRROR_RESYNC:
            self._mirrors = {c: ("", ready, at) for c, (_, ready, at) in self._mirrors.items()}  # re-check each one
            self._mirrors_synced = time.monotonic()
        for component in [c for c in self._mirrors if c not in self.runner.pods]:
            remove_mirror_pod(self.kv, node_name=self.node, component=component)
            del self._mirrors[component]
        for component, sp in self.runner.pods.items():
            ready = component_ready(sp)
            started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sp.started))
            key = (sp.hash, ready, started)
            if self._mirrors.get(component) == key:
                continue
            upsert_mirror_pod(self.kv, node_name=self.node, manifest=sp.pod, config_hash=sp.hash, ready=ready,
                              started=started)
            self._mirrors[component] = key
