"""Shared pieces for the sandbox tests: real etcd, real API servers, real kubectl, and a fake API for kubeadm.

Every process a test starts is stopped by pid in a ``finally`` (or a fixture finaliser), even when
the test fails. Tests share one etcd cluster per module and isolate themselves by etcd prefix (the
API server's ``--etcd-prefix``), which keeps the suite fast. The node-command tests run the simulated
kubeadm against :class:`FakeKubeApi` instead, which answers in milliseconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from upgrader.sandbox.apiserver import ApiServer, ServerConfig, serve_in_thread
from upgrader.sandbox.apiserver.node_status import NodeRole, NodeSpec
from upgrader.sandbox.apiserver.seed import seed_cluster
from upgrader.sandbox.apiserver.storage import Store
from upgrader.sandbox.controllers.manager import reconcile_once, start_controllers
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.etcd.members import EtcdMember, start_etcd_cluster, stop_cluster
from upgrader.sandbox.sandbox_config import SandboxConfig

REPO = Path(__file__).resolve().parents[2]
VERSION = "v1.30.6"
NODES = [
    NodeSpec("cp-1", NodeRole.CONTROL_PLANE, "127.0.0.2"),
    NodeSpec("worker-1", NodeRole.WORKER, "127.0.0.3"),
    NodeSpec("worker-2", NodeRole.WORKER, "127.0.0.4"),
    NodeSpec("worker-3", NodeRole.WORKER, "127.0.0.5"),
]
_KUBECTL_132 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")

def _require(binary: str) -> None:
    # A missing tool is a broken test machine (scripts/test.sh installs them), never a quiet pass.
    if shutil.which(binary) is None:
        pytest.fail(f"{binary} is not installed: run scripts/test.sh, which installs it")


needs_etcd = pytest.mark.usefixtures("etcd_installed")  # the fixture lives in tests/conftest.py


def kubectl_binary() -> str:
    """kubectl 1.32 itself when installed (the dispatcher picks a version by server), else PATH's."""
    env = os.environ.get("UPGRADER_TEST_KUBECTL")
    if env:
        return env
    if _KUBECTL_132.exists():
        return str(_KUBECTL_132)
    _require("kubectl")
    return str(shutil.which("kubectl"))


@contextmanager
def etcd_cluster(base: Path, members: int = 3) -> Iterator[list[EtcdMember]]:
    started = start_etcd_cluster({f"cp-{i}": base / f"cp-{i}" for i in range(1, members + 1)})
    try:
        yield started
    finally:
        stop_cluster(started)


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n"
        f"    server: {server}\ncontexts:\n- name: sandbox\n  context:\n    cluster: sandbox\n    user: admin\n"
        "current-context: sandbox\nusers:\n- name: admin\n  user: {}\n")
    return path


@dataclass
class SandboxApi:
    """One isolated cluster: its own etcd prefix, an in-process API server, optional controllers."""

    members: list[EtcdMember]
    prefix: str
    tmp: Path
    server: ApiServer
    kv: EtcdKV
    store: Store
    _controllers: list[tuple[threading.Thread, threading.Event]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def kubeconfig(self) -> Path:
        return write_kubeconfig(self.tmp / "kubeconfig", self.url)

    def client(self):  # -> kubernetes.client.ApiClient
        from kubernetes import client

        return client.ApiClient(client.Configuration(host=self.url))

    def reconcile(self) -> None:
        reconcile_once(self.store)

    def start_controllers(self, interval: float = 0.1) -> None:
        self._controllers.append(start_controllers(self.store, interval=interval))

    def kubectl(self, *args: str, check: bool = True, timeout: float = 90,
                binary: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [binary or kubectl_binary(), "--kubeconfig", str(self.kubeconfig),
               "--cache-dir", str(self.tmp / "kube-cache"), *args]
        env = {**os.environ, "HOME": str(self.tmp)}  # never the user's ~/.kube
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def close(self) -> None:
        for thread, stop in self._controllers:
            stop.set()
            thread.join(10)
        self.server.stop()


@contextmanager
def sandbox_api(members: list[EtcdMember], tmp: Path, *, seed: bool = True,
                version: str = VERSION, nodes: list[NodeSpec] | None = None) -> Iterator[SandboxApi]:
    prefix = f"/t-{uuid.uuid4().hex[:8]}/registry"
    endpoints = tuple(m.client_url for m in members)
    kv = EtcdKV(endpoints)
    store = Store(kv, prefix=prefix)
    if seed:
        seed_cluster(store, nodes=nodes or NODES, version=version, cluster_name="kubernetes")
    server = serve_in_thread(ServerConfig(etcd_endpoints=endpoints, git_version=version, etcd_prefix=prefix))
    api = SandboxApi(members, prefix, tmp, server, kv, store)
    try:
        yield api
    finally:
        api.close()


@contextmanager
def apiserver_process(endpoints: list[str], *, prefix: str, version: str = VERSION,
                      extra: tuple[str, ...] = ()) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``python -m upgrader.sandbox.apiserver`` as a child; yields (process, base URL)."""
    argv = [sys.executable, "-m", "upgrader.sandbox.apiserver", "--etcd-endpoints", ",".join(endpoints),
            "--listen", "127.0.0.1:0", "--git-version", version, "--etcd-prefix", prefix, *extra]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _first_line(proc, timeout=20)
        assert line.startswith("listening 127.0.0.1:"), line
        yield proc, "http://" + line.split()[1]
    finally:
        stop_process(proc)


def _first_line(proc: subprocess.Popen[str], *, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline() if proc.stdout else ""))
    reader.start()
    reader.join(timeout)
    if not result:
        raise AssertionError("the API server did not print its listening line in time")
    return result[0].strip()


def stop_process(proc: subprocess.Popen[str], timeout: float = 10) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return proc.returncode


def wait_for(predicate, *, timeout: float = 10, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


KUBEADM_CONFIG = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
ADDON_PATHS = {"/apis/apps/v1/namespaces/kube-system/daemonsets/kube-proxy": "kube-proxy",
               "/apis/apps/v1/namespaces/kube-system/deployments/coredns": "coredns"}
_PODS = "/api/v1/namespaces/kube-system/pods"


class FakeKubeApi:
    """One loopback port playing the load balancer, every node's API server and etcd member, for kubeadm.

    It answers what the simulated kubeadm asks (health, /version, the Nodes, the kubeadm-config
    ConfigMap, the mirror pods, the addons' workloads) and keeps what kubeadm PUTs back; a test's
    subclass says what the cluster looks like. Anything else is NotFound.
    """

    def __init__(self) -> None:
        self.cfg: SandboxConfig | None = None
        self.config_map: dict = {}
        self.addons: dict[str, dict] = {}  # workload name -> object, for the addon paths
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # what the cluster looks like: the subclass's
    def version(self) -> str:
        raise NotImplementedError

    def node_list(self) -> list[dict]:
        raise NotImplementedError

    def mirror_pod(self, component: str, node: str) -> dict | None:
        raise NotImplementedError

    def mirror_pods(self, component: str) -> list[dict]:
        """The answer to a list by ``component=...``: none unless the subclass says so."""
        return []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, body: object, code: int = 200) -> None:
                raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(code)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _not_found(self) -> None:
                self._send({"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
                            "message": f"{self.path} not found"}, 404)

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path in ("/readyz", "/livez"):
                    return self._send(b"ok")
                if path == "/health":
                    return self._send({"health": "true"})
                if path == "/version":
                    return self._send({"gitVersion": fake.version()})
                if path == "/api/v1/nodes":
                    return self._send({"items": fake.node_list()})
                if path == KUBEADM_CONFIG:
                    return self._send(fake.config_map)
                if path == _PODS and query.startswith("labelSelector=component%3D"):
                    return self._send({"items": fake.mirror_pods(query.split("%3D", 1)[1])})
                if path.startswith(_PODS + "/"):
                    component, _, node = path.rsplit("/", 1)[1].rpartition("-cp-")
                    pod = fake.mirror_pod(component, f"cp-{node}")
                    return self._send(pod) if pod else self._not_found()
                if path in ADDON_PATHS:
                    obj = fake.addons.get(ADDON_PATHS[path])
                    return self._send(obj) if obj else self._not_found()
                return self._not_found()

            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == KUBEADM_CONFIG:
                    fake.config_map = body
                elif self.path in ADDON_PATHS and ADDON_PATHS[self.path] in fake.addons:
                    fake.addons[ADDON_PATHS[self.path]] = body
                else:
                    return self._not_found()
                return self._send(body)

        return Handler


def sandbox_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m upgrader ARGS`` with its sandboxes under ``home`` and its ledger beside it."""
    env = {**os.environ, "XDG_DATA_HOME": str(home), "UPGRADER_DB": str(home.parent / "ledger.db"),
           "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "upgrader", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=60, check=False)


def assert_up_refused(home: Path, args: tuple[str, ...], says: str) -> None:
    """`sandbox up demo ARGS` exits 2 with one line saying ``says``, and leaves no file, registry or ledger."""
    done = sandbox_cli(home, "sandbox", "up", "demo", *args)
    assert done.returncode == 2, (args, done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert says in done.stderr, done.stderr
    assert done.stdout == ""
    root = home / "upgrader" / "sandboxes"
    assert not (root / "demo").exists() and not (root / "registry.json").exists()
    assert not (home.parent / "ledger.db").exists(), "a refused `up` must not register anything"
