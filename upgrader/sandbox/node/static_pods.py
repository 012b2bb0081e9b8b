"""The container side of a simulated kubelet: runs a control-plane node's static pods.

It watches /etc/kubernetes/manifests like the kubelet's file source. etcd runs as the real etcd
binary with the manifest's flags and data dir (through its hostPath volume, so the etcd restore
guide's "point the volume at the restored dir" works); kube-apiserver runs as the sandbox API
server at the manifest's image tag. A manifest that disappears stops its pod; a changed one
restarts it; a crashed process is restarted with back-off. controller-manager and scheduler have
no process: their pod "runs" while their manifest exists.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import upgrader
from upgrader import logs
from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError, NodePathError
from upgrader.ports import NodeLayout
from upgrader.sandbox import faults, processes
from upgrader.sandbox.etcd.data_dir import REFUSAL
from upgrader.sandbox.etcd.data_dir import refusal as data_dir_refusal
from upgrader.sandbox.etcd.health import probe
from upgrader.sandbox.etcd.members import DEFAULT_TOKEN, EtcdMember, spawn_member
from upgrader.sandbox.kubeclient import KubeClient
from upgrader.sandbox.node import machine, manifests, removed_flags

# Manifest flags passed to etcd as they are (TLS flags are not: the sandbox speaks plain http).
ETCD_OPTIONS = ("listen-client-urls", "listen-peer-urls", "snapshot-count")
MAX_BACKOFF = 10.0
log = logs.get_logger(__name__)


@dataclass
class StaticPod:
    component: str
    hash: str
    pod: dict[str, Any]
    pid: int | None = None
    marker: str = ""
    started: float = field(default_factory=time.time)
    restarts: int = 0
    next_try: float = 0.0
    exited: str = ""  # why its last container exited (what `crictl logs` shows); "" while it runs
    finished: float = 0.0
    # the containers of its last exited attempts, newest first: (started, attempt, log), as the kubelet keeps
    # dead containers around for `crictl ps -a` and `crictl logs`
    dead: list[tuple[float, int, str]] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return manifests.image_tag(self.pod)


class StaticPodRunner:
    def __init__(self, *, node: str, layout: NodeLayout, sandbox_dir: Path) -> None:
        self.node = node
        self.layout = layout
        self.sandbox_dir = sandbox_dir
        self.pods: dict[str, StaticPod] = {}
        self._published: dict[str, Any] | None = None

    def sync(self) -> None:
        """One reconcile pass: manifests on disk -> running pods."""
        active = faults.load(self.sandbox_dir)
        for component in manifests.COMPONENTS:
            pod, digest = manifests.read_node_manifest(self.layout, component)  # one read: kubeadm may replace it
            current = self.pods.get(component)
            if pod is None:
                if current is not None:
                    self._stop(current)
                    del self.pods[component]
                continue
            held = self._held(component, pod, active)
            if current is not None and current.hash != digest and not held:
                self._stop(current)
                current = None
            if current is None:
                if held:
                    continue
                current = self.pods[component] = StaticPod(component, digest, pod)
            self._keep_running(current, active)
        self._publish()

    def _publish(self) -> None:
        """What runs, for the node's ``crictl ps``: a removed manifest's container is gone only once the
        kubelet stopped it (a real kubelet notices within its fileCheckFrequency, 20 s by default)."""
        running = {c: {"image": str(manifests.container(sp.pod).get("image", "")), "started": sp.started,
                       "attempt": sp.restarts}
                   for c, sp in self.pods.items() if sp.pid or c not in ("etcd", "kube-apiserver")}
        # a container that exited (a crash loop) is listed by `crictl ps -a`, with why it exited
        running |= {c: {"image": str(manifests.container(sp.pod).get("image", "")), "started": sp.started,
                        "attempt": sp.restarts, "state": "exited", "finished": sp.finished, "log": sp.exited,
                        "dead": [list(d) for d in sp.dead[1:]]}
                    for c, sp in self.pods.items() if not sp.pid and sp.exited}
        if running != self._published:
            machine.save_running_pods(self.layout, running)
            self._published = running

    def _held(self, component: str, pod: dict[str, Any], active: list[faults.Fault]) -> bool:
        """kubeadm-apply-fails: the kubelet never picks up an apiserver manifest at that minor."""
        version = _version(manifests.image_tag(pod))
        return component == "kube-apiserver" and any(
            f.applies(kind="kubeadm-apply-fails", node=self.node, version=version) for f in active)

    def _keep_running(self, sp: StaticPod, active: list[faults.Fault]) -> None:
        if sp.component not in ("etcd", "kube-apiserver"):
            return
        if sp.component == "etcd" and any(f.applies(kind="etcd-member-down", node=self.node) for f in active):
            self._stop(sp)
            return
        if sp.component == "etcd" and faults.take_request(self.sandbox_dir, kind="etcd-member-data-lost",
                                                          node=self.node):
            self._lose_data(sp)
        if sp.component == "kube-apiserver" and self._refused(sp):
            return
        if processes.owned(sp.pid, sp.marker) or time.monotonic() < sp.next_try:
            return
        if sp.pid is not None:  # it died: restart with back-off, as the kubelet does
            sp.restarts += 1
            processes.stop(sp.pid)
        sp.next_try = time.monotonic() + min(MAX_BACKOFF, 0.5 * 2 ** min(sp.restarts, 5))
        try:
            sp.pid, sp.marker = (self._start_etcd(sp) if sp.component == "etcd"
                                 else self._start_apiserver(sp, active))
        except (OSError, NodePathError) as e:  # like a container that cannot start: retried with back-off
            sp.pid, sp.restarts = None, sp.restarts + 1
            log.warning("static_pod_start_failed", node=self.node, component=sp.component, error=str(e))
            return
        sp.started = time.time()

    def _refused(self, sp: StaticPod) -> bool:
        """A kube-apiserver manifest with a flag its version removed: each start exits at once with
        cobra's error, and the kubelet restarts it with back-off (CrashLoopBackOff)."""
        flag = removed_flags.refused(manifests.container(sp.pod).get("command", [])[1:], removed_flags.APISERVER,
                                     _version(sp.tag))
        if flag is None:
            sp.exited = ""
            return False
        if time.monotonic() < sp.next_try:
            return True
        sp.restarts += 1 if sp.exited else 0
        sp.started = sp.finished = time.time()
        sp.exited = removed_flags.apiserver_error(flag)
        sp.dead = [(sp.started, sp.restarts, sp.exited), *sp.dead][:3]
        log_file = self.layout.host_path("/var/log/pods/kube-apiserver.log")
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as f:
            f.write(sp.exited + "\n")
        sp.next_try = time.monotonic() + min(MAX_BACKOFF, 0.5 * 2 ** min(sp.restarts, 5))
        return True

    def _lose_data(self, sp: StaticPod) -> None:
        """Fault etcd-member-data-lost: the member stops and its data dir is emptied (a disk replaced, a
        wrong `rm`); the kubelet then starts it again on the empty dir, as it would."""
        self._stop(sp)
        flags = manifests.flags(sp.pod)
        data_dir = self.layout.host_path(manifests.host_path_for(sp.pod, flags.get("data-dir", "/var/lib/etcd")))
        if data_dir.is_dir():
            for child in data_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        sp.next_try = 0.0
        log.info("etcd_member_data_lost", node=self.node, data_dir=str(data_dir))

    def _start_etcd(self, sp: StaticPod) -> tuple[int, str]:
        """The real etcd with the manifest's flags (https made http), through its data dir's hostPath.

        Spawned without waiting for health, like a container start: after a full control-plane stop
        each member is started by its own kubelet and none is healthy until a quorum runs.
        """
        flags = {k: v.replace("https://", "http://") for k, v in manifests.flags(sp.pod).items()}
        data_dir = self.layout.host_path(manifests.host_path_for(sp.pod, flags.get("data-dir", "/var/lib/etcd")))
        _refuse_links(data_dir)
        refused = data_dir_refusal(data_dir, manifests.image_tag(sp.pod))
        if refused is not None:  # etcd 3.6+: it logs and exits, and the kubelet restarts it with back-off
            log_file = self.layout.host_path("/var/log/pods/etcd.log")
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with log_file.open("a") as f:
                f.write(refused + "\n")
            raise OSError(REFUSAL)
        member = EtcdMember(flags.get("name", self.node), flags.get("advertise-client-urls", "").split(",")[0],
                                 flags.get("initial-advertise-peer-urls", "").split(",")[0], data_dir)
        peers = flags.get("initial-cluster", f"{member.name}={member.peer_url}")
        state = flags.get("initial-cluster-state", "new")
        options = {k: flags[k] for k in ETCD_OPTIONS if k in flags}
        started = spawn_member(member, peers=peers, state=state, options=options,
                                    token=flags.get("initial-cluster-token", DEFAULT_TOKEN),
                                    log=self.layout.host_path("/var/log/pods/etcd.log"))
        assert started.pid is not None
        return started.pid, str(data_dir)

    def _start_apiserver(self, sp: StaticPod, active: list[faults.Fault]) -> tuple[int, str]:
        flags = manifests.flags(sp.pod)
        listen = f"127.0.0.1:{flags.get('secure-port', '6443')}"
        servers = flags.get("etcd-servers", "").replace("https://", "http://")
        argv = [sys.executable, "-m", "upgrader.sandbox.apiserver", "--etcd-endpoints", servers,
                "--listen", listen, "--git-version", sp.tag, "--node-name", self.node]
        if flags.get("emulated-version"):  # KEP-4330: --emulated-version=1.32 or kube=1.32
            argv += ["--emulated-version", flags["emulated-version"].split(",")[0]]
        if any(f.applies(kind="apiserver-unready", node=self.node, version=_version(sp.tag)) for f in active):
            argv.append("--unready")
        env = {**os.environ, "PYTHONPATH": str(Path(upgrader.__file__).resolve().parent.parent)}
        log = self.layout.host_path("/var/log/pods/kube-apiserver.log")
        return processes.spawn(argv, log=log, env=env), listen

    def _stop(self, sp: StaticPod) -> None:
        # a leader whose peers are already gone spends ~7s trying to hand over leadership; its WAL is
        # crash-safe, so it gets 3s before SIGKILL
        processes.stop(sp.pid, timeout=3.0 if sp.component == "etcd" else 10.0)
        sp.pid = None

    def stop_all(self) -> None:
        """API server before etcd, as a node shutdown would leave them."""
        for sp in sorted(self.pods.values(), key=lambda p: p.component != "kube-apiserver"):
            self._stop(sp)
        machine.save_running_pods(self.layout, {})
        self._published = {}

    def pids(self) -> dict[str, dict[str, Any]]:
        return {c: {"pid": sp.pid, "marker": sp.marker} for c, sp in self.pods.items() if sp.pid}


def _refuse_links(data_dir: Path) -> None:
    """etcd runs on the machine, as root: a link a node command left in its data dir would make it
    read or write a file of the machine. Such a data dir is not used."""
    for parent, dirs, files in os.walk(data_dir):
        for name in (*dirs, *files):
            if os.path.islink(os.path.join(parent, name)):
                raise OSError(f"{os.path.join(parent, name)} is a symbolic link: etcd is not started on it")


def _version(tag: str) -> Version | None:
    try:
        return Version.parse(tag)
    except InvalidVersionError:
        return None


def component_ready(sp: StaticPod) -> bool:
    """The pod's readiness probe: /readyz for the API server, /health for etcd, else running."""
    if sp.component not in ("etcd", "kube-apiserver"):
        return True
    if not sp.pid:
        return False
    flags = manifests.flags(sp.pod)
    if sp.component == "etcd":
        return probe(flags.get("advertise-client-urls", "").split(",")[0].replace("https://", "http://")).healthy
    return KubeClient(f"http://127.0.0.1:{flags.get('secure-port', '6443')}", timeout=1).ready()
