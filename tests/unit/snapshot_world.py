"""An AppContext on fakes for the snapshot use cases: a 3-control-plane cluster whose nodes are
FakeTransports holding kubeadm's files, an etcd that is a FakeEtcdTool, and a real store directory."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.unit.builders import cp, inventory, worker
from upgrader.domain.inventory import inventory_to_dict
from upgrader.fakes import FakeClock, FakeClusterApi, FakeEtcdTool, FakeTransport, InMemoryLedger
from upgrader.ports import CommandResult
from upgrader.services.etcd_access import EtcdSession
from upgrader.services.wiring import Actor, AppContext

SECRET = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk"  # a Secret's data, as it sits in etcd
CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUSNAPSHOTTESTCERT\n-----END CERTIFICATE-----\n"
CLUSTER_CONFIGURATION = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.6
controlPlaneEndpoint: cp.example:6443
etcd:
  local:
    dataDir: /var/lib/etcd
"""
EXTERNAL_ETCD = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.6
etcd:
  external:
    endpoints: [https://10.0.9.1:2379]
    caFile: /etc/kubernetes/pki/etcd/ca.crt
    certFile: /etc/kubernetes/pki/apiserver-etcd-client.crt
    keyFile: /etc/kubernetes/pki/apiserver-etcd-client.key
"""
MANIFESTS = ("etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml")


def node_files(name: str) -> dict[str, bytes]:
    files = {f"/etc/kubernetes/manifests/{m}": f"# {name} {m}\nkind: Pod\n".encode() for m in MANIFESTS}
    files |= {
        "/var/lib/kubelet/config.yaml": b"kind: KubeletConfiguration\ncgroupDriver: systemd\n",
        "/var/lib/kubelet/kubeadm-flags.env": b'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///c"\n',
        "/etc/apt/sources.list.d/kubernetes.list": b"deb https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n",
        "/etc/kubernetes/pki/ca.crt": CERT.encode(),  # never captured
    }
    return files


def _ls(node: FakeTransport) -> Any:
    def run(argv: list[str]) -> CommandResult:
        directory = argv[-1].rstrip("/") + "/"
        names = sorted({p[len(directory):].split("/")[0] for p in node.files if p.startswith(directory)})
        return CommandResult(0 if names else 2, "".join(f"{n}\n" for n in names),
                             "" if names else f"ls: cannot access '{argv[-1]}': No such file or directory\n")
    return run


def _rm(node: FakeTransport) -> Any:
    def run(argv: list[str]) -> CommandResult:
        for target in argv[argv.index("--") + 1:]:
            for path in [p for p in node.files if p == target or p.startswith(target + "/")]:
                del node.files[path]
        return CommandResult(0, "", "")
    return run


def _dpkg(argv: list[str]) -> CommandResult:
    return CommandResult(0, "kubeadm 1.30.6-1.1\nkubelet 1.30.6-1.1\nkubectl 1.30.6-1.1\n", "")


class SnapshotWorld:
    def __init__(self, tmp: Path) -> None:
        self.clock = FakeClock()
        self.ledger = InMemoryLedger(clock=self.clock.now)
        live = inventory(cp("cp-1", "v1.30.6"), cp("cp-2", "v1.30.6"), cp("cp-3", "v1.30.6"),
                         worker("w-1", "v1.30.6"))
        self.inventory = inventory_to_dict(live)
        self.api = FakeClusterApi(self.inventory, configmaps={
            ("kube-system", "kubeadm-config"): {"ClusterConfiguration": CLUSTER_CONFIGURATION}})
        self.etcd = FakeEtcdTool(payload=f"/registry/secrets/default/db-password {SECRET}\n".encode())
        self.external_session = False
        self.nodes: dict[str, FakeTransport] = {}
        for name in ("cp-1", "cp-2", "cp-3", "w-1"):
            node = FakeTransport(files=node_files(name))
            node.handlers |= {"ls": _ls(node), "rm": _rm(node), "dpkg-query": _dpkg}
            self.nodes[name] = node
        self.store = tmp / "store"
        self.app = AppContext(
            actor=Actor(user="alice", host="ops-1", command_line="upgrader snapshot create prod"),
            clock=self.clock, unit_of_work_factory=self.ledger.unit_of_work,
            cluster_api_factory=lambda record: self.api,
            transport_factory=lambda record, node: self.nodes[node],
            etcd_tool_factory=lambda: self.etcd, etcd_session_factory=self._session, snapshot_dir=self.store)
        with self.ledger.unit_of_work() as uow:
            uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="alice")
            uow.repo.add_cluster(name="dev", kubeconfig="/k", context=None, transport=None, actor="alice")
            uow.commit()

    @contextlib.contextmanager
    def _session(self, cluster: Any, inventory: Mapping[str, Any] | None) -> Iterator[EtcdSession]:
        endpoints = {f"https://10.0.0.{i}:2379": f"cp-{i}" for i in (1, 2, 3)}
        yield EtcdSession(tool=self.etcd, endpoints=list(endpoints), tls=None, external=self.external_session,
                          node_of_endpoint=endpoints)

    def set_ready(self, node: str, ready: bool) -> None:
        doc = copy.deepcopy(self.inventory)
        for n in doc["nodes"]:
            if n["name"] == node:
                n["ready"] = ready
        self.api._inventory = doc

    def snapshots(self, cluster: str | None = None, *, deleted: bool = True) -> list[Any]:
        with self.ledger.unit_of_work() as uow:
            return uow.repo.list_snapshots(cluster, include_deleted=deleted)

    def events(self) -> list[tuple[str, Any]]:
        with self.ledger.unit_of_work() as uow:
            return [(e.kind, e.data) for e in uow.repo.list_events()]

    def files(self) -> list[Path]:
        return sorted(p for p in self.store.rglob("*") if p.is_file()) if self.store.exists() else []
