"""kubeadm's work after the static pods, through the node transport against a small fake API.

Since v1.28 kubeadm upgrades the CoreDNS and kube-proxy addons only once every control-plane node
runs the new kube-apiserver: `upgrade apply` on a single control plane, else `upgrade node` on the
last one. A kubeadm of v1.31+ uploads the kubeadm-config in its own config API (v1beta4). And the
etcd data directory is copied *into* the backup directory, as kubeadm's `cp -r` does.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.sandbox_helpers import FakeKubeApi
from upgrader.domain.versions import Version
from upgrader.sandbox import releases
from upgrader.sandbox.apiserver.seed import cluster_configuration, sample_workloads
from upgrader.sandbox.node import manifests
from upgrader.sandbox.node import provision as noderoot
from upgrader.sandbox.node.tools.kubeadm.config_api import migrate_cluster_configuration
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import Timeouts, new_config

REPO_131 = "sed -i 's|/v1.30/deb|/v1.31/deb|' /etc/apt/sources.list.d/kubernetes.list"


class FakeApi(FakeKubeApi):
    """One loopback port playing the load balancer, every node's API server and etcd member.

    Mirror pods follow the node's manifests at once (a kubelet that always keeps up); /version
    answers the newest kube-apiserver manifest; the addons' workloads are the sandbox's seeded ones.
    """

    def manifest(self, node: str, component: str) -> Path:
        assert self.cfg is not None
        return self.cfg.node_root(node) / "etc/kubernetes/manifests" / f"{component}.yaml"

    def mirror_pod(self, component: str, node: str) -> dict | None:
        path = self.manifest(node, component)
        pod = manifests.load(path) if path.exists() else None
        if pod is None:
            return None
        return {"metadata": {"name": f"{component}-{node}", "namespace": "kube-system",
                             "annotations": {"kubernetes.io/config.hash": manifests.content_hash(path)}},
                "spec": {"nodeName": node,
                         "containers": [{"name": component, "image": manifests.container(pod)["image"]}]}}

    def mirror_pods(self, component: str) -> list[dict]:
        assert self.cfg is not None
        pods = [self.mirror_pod(component, n) for n in self.cfg.control_planes]
        return [p for p in pods if p]

    def version(self) -> str:
        assert self.cfg is not None
        pods = [manifests.load(path) for n in self.cfg.control_planes
                if (path := self.manifest(n, "kube-apiserver")).exists()]
        tags = [manifests.image_tag(p) for p in pods if p]
        return str(max((Version.parse(t) for t in tags), default=Version(1, 30, 6)))

    def node_list(self) -> list[dict]:
        assert self.cfg is not None
        return [self.node(n) for n in self.cfg.nodes]

    def node(self, name: str) -> dict:
        labels = {"node-role.kubernetes.io/control-plane": ""} if name.startswith("cp") else {}
        return {"metadata": {"name": name, "labels": labels},
                "status": {"nodeInfo": {"kubeletVersion": "v1.30.6"},
                           "conditions": [{"type": "Ready", "status": "True"}]}}

    def image(self, addon: str) -> str:
        return self.addons[addon]["spec"]["template"]["spec"]["containers"][0]["image"]


def _cluster(tmp_path: Path, control_planes: int) -> Iterator[FakeApi]:
    fake = FakeApi()
    cfg = new_config(name="t", sandbox_dir=tmp_path / "sbx", version="v1.30.6", control_planes=control_planes,
                     workers=1, lb_port=fake.port, timeouts=Timeouts(kubeadm=2.0))
    cfg = dataclasses.replace(cfg, apiserver_ports=dict.fromkeys(cfg.control_planes, fake.port),
                              etcd_client_ports=dict.fromkeys(cfg.control_planes, fake.port))
    cfg.dir.mkdir(parents=True)
    cfg.save()
    for node in cfg.nodes:
        noderoot.create(cfg, node)
    fake.cfg = cfg
    config = cluster_configuration("v1.30.6", cluster_name="t", control_plane_endpoint=f"127.0.0.1:{fake.port}")
    fake.config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                       "data": {"ClusterConfiguration": config}}
    fake.addons = {obj["metadata"]["name"]: copy.deepcopy(obj) for _, obj in sample_workloads("v1.30.6", workers=1)
                   if obj["metadata"]["name"] in ("kube-proxy", "coredns")}
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def single(tmp_path: Path) -> Iterator[FakeApi]:
    yield from _cluster(tmp_path, 1)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[FakeApi]:
    yield from _cluster(tmp_path, 2)


def run(fake: FakeApi, node: str, *argv: str) -> tuple[int, str, str]:
    assert fake.cfg is not None
    r = SandboxTransport(fake.cfg.dir, node).run(list(argv), 60)
    return r.exit_code, r.stdout, r.stderr


def kubeadm_131(fake: FakeApi, node: str) -> None:
    code, out, err = run(fake, node, "sh", "-c", f"{REPO_131} && apt-get update && apt-mark unhold kubeadm && "
                         "apt-get install -y kubeadm=1.31.4-1.1 && apt-mark hold kubeadm")
    assert code == 0, out + err


def test_addons_wait_for_the_last_control_plane(pair: FakeApi) -> None:
    kubeadm_131(pair, "cp-1")
    code, out, err = run(pair, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes")
    assert code == 0, err
    assert ("[upgrade/addons] skip upgrade addons because control plane instances [cp-2] have not been upgraded"
            in out)
    assert "Applied essential addon" not in out
    assert pair.image("kube-proxy") == "registry.k8s.io/kube-proxy:v1.30.6"
    assert pair.image("coredns") == "registry.k8s.io/coredns/coredns:v1.11.1"

    kubeadm_131(pair, "cp-2")
    code, out, err = run(pair, "cp-2", "kubeadm", "upgrade", "node")
    assert code == 0, err
    assert "[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n" in out
    assert pair.image("kube-proxy") == "registry.k8s.io/kube-proxy:v1.31.4"
    assert pair.image("coredns") == f"registry.k8s.io/coredns/coredns:{releases.coredns_tag(Version(1, 31, 4))}"
    assert releases.coredns_tag(Version(1, 31, 4)) == "v1.11.3"  # kubeadm v1.31's CoreDNSVersion

    kubeadm_131(pair, "worker-1")
    code, out, err = run(pair, "worker-1", "kubeadm", "upgrade", "node")
    assert code == 0, err
    assert ("[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.\n"
            "[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.\n") in out


def test_apply_on_the_only_control_plane_upgrades_addons_config_api_and_backs_up_etcd(single: FakeApi) -> None:
    assert single.cfg is not None
    member = single.cfg.node_root("cp-1") / "var/lib/etcd/member/snap"
    member.mkdir(parents=True)
    (member / "db").write_bytes(b"bbolt pages")
    kubeadm_131(single, "cp-1")
    code, out, err = run(single, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes")
    assert code == 0, err
    assert "[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n" in out
    assert single.image("kube-proxy") == "registry.k8s.io/kube-proxy:v1.31.4"
    assert single.image("coredns") == "registry.k8s.io/coredns/coredns:v1.11.3"

    # kubeadm v1.31 uploads v1beta4: the same document `kubeadm init` of v1.31.4 would have uploaded
    conf = yaml.safe_load(single.config_map["data"]["ClusterConfiguration"])
    fresh = yaml.safe_load(cluster_configuration("v1.31.4", cluster_name="t",
                                                 control_plane_endpoint=f"127.0.0.1:{single.port}"))
    assert conf["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert conf == fresh
    assert conf["apiServer"]["extraArgs"] == [{"name": "authorization-mode", "value": "Node,RBAC"}]

    # cp -r /var/lib/etcd /etc/kubernetes/tmp/kubeadm-backup-etcd-<stamp>  ->  .../etcd/member
    [backup] = (single.cfg.node_root("cp-1") / "etc/kubernetes/tmp").glob("kubeadm-backup-etcd-*")
    assert [p.name for p in backup.iterdir()] == ["etcd"]
    assert (backup / "etcd/member/snap/db").read_bytes() == b"bbolt pages"


def test_a_missing_addon_is_taken_as_not_deployed(single: FakeApi) -> None:
    del single.addons["kube-proxy"]
    kubeadm_131(single, "cp-1")
    code, out, err = run(single, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes")
    assert code == 0, err
    assert "Assuming that kube-proxy was not deployed for this cluster." in err
    assert "[addons] Applied essential addon: CoreDNS\n" in out and "addon: kube-proxy" not in out
    assert single.image("coredns") == "registry.k8s.io/coredns/coredns:v1.11.3"


def test_plan_reads_the_addon_versions_from_the_cluster(single: FakeApi) -> None:
    single.addons["coredns"]["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "registry.k8s.io/coredns/coredns:v1.10.1")
    kubeadm_131(single, "cp-1")
    code, out, err = run(single, "cp-1", "kubeadm", "upgrade", "plan")
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()
            if line.startswith(("kube-proxy", "CoreDNS"))}
    assert rows == {"kube-proxy": ["1.30.6", "v1.31.4"], "CoreDNS": ["v1.10.1", "v1.11.3"]}


def test_migrating_v1beta3_to_v1beta4_turns_every_extra_args_map_into_a_list() -> None:
    v1beta3 = {
        "apiVersion": "kubeadm.k8s.io/v1beta3", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.30.6",
        "apiServer": {"extraArgs": {"audit-log-path": "/var/log/audit.log", "authorization-mode": "Node,RBAC"},
                      "timeoutForControlPlane": "4m0s", "certSANs": ["lb.example"]},
        "controllerManager": {"extraArgs": {"bind-address": "0.0.0.0"}},
        "scheduler": {},
        "etcd": {"local": {"dataDir": "/var/lib/etcd", "extraArgs": {"quota-backend-bytes": "8589934592"}}},
        "encryptionAlgorithm": "ECDSA-P256",
    }
    out = migrate_cluster_configuration(v1beta3, target=Version(1, 31, 4), kubeadm=Version(1, 31, 4))
    assert out["apiVersion"] == "kubeadm.k8s.io/v1beta4" and out["kubernetesVersion"] == "v1.31.4"
    assert out["apiServer"] == {"extraArgs": [{"name": "audit-log-path", "value": "/var/log/audit.log"},
                                              {"name": "authorization-mode", "value": "Node,RBAC"}],
                                "certSANs": ["lb.example"]}
    assert out["controllerManager"]["extraArgs"] == [{"name": "bind-address", "value": "0.0.0.0"}]
    assert out["etcd"]["local"]["extraArgs"] == [{"name": "quota-backend-bytes", "value": "8589934592"}]
    assert out["encryptionAlgorithm"] == "ECDSA-P256", "a value the user chose is kept"
    assert out["certificateValidityPeriod"] == "8760h0m0s"
    # a kubeadm older than v1.31 keeps v1beta3; v1beta4 is never converted back
    assert migrate_cluster_configuration(v1beta3, target=Version(1, 30, 8), kubeadm=Version(1, 30, 8)) == {
        **v1beta3, "kubernetesVersion": "v1.30.8"}
    assert migrate_cluster_configuration(out, target=Version(1, 32, 0), kubeadm=Version(1, 32, 0))["apiServer"] == (
        out["apiServer"])
