"""Sandbox node commands through the node transport, without a running cluster.

kubeadm talks to a small fake API (one loopback port playing the load balancer, the node's API
server and its etcd member) whose "kubelet" picks up a manifest only when told to, so the tests see
both kubeadm's success path and its restore-on-failure path in milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.sandbox_helpers import FakeKubeApi
from upgrader.sandbox.node import manifests
from upgrader.sandbox.node import provision as noderoot
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import Timeouts, new_config

REPO_131 = "sed -i 's|/v1.30/deb|/v1.31/deb|' /etc/apt/sources.list.d/kubernetes.list"


class FakeCluster(FakeKubeApi):
    """Answers what kubeadm asks; `kubelet_follows` decides whether manifests are ever picked up."""

    def __init__(self) -> None:
        super().__init__()
        self.kubelet_follows = True
        self.nodes: dict[str, tuple[str, bool]] = {}  # name -> (kubelet version, ready)

    def manifest(self, component: str) -> Path:
        assert self.cfg is not None
        return self.cfg.node_root("cp-1") / "etc/kubernetes/manifests" / f"{component}.yaml"

    def version(self) -> str:
        pod = manifests.load(self.manifest("kube-apiserver")) or manifests.load(
            next(self.manifest("x").parent.parent.glob("tmp/kubeadm-backup-manifests-*/kube-apiserver.yaml")))
        return manifests.image_tag(pod) if self.kubelet_follows else "v1.30.6"

    def mirror_pod(self, component: str, node: str) -> dict:
        digest = manifests.content_hash(self.manifest(component)) if self.kubelet_follows else "unchanged"
        return {"metadata": {"name": f"{component}-cp-1", "annotations": {"kubernetes.io/config.hash": digest}},
                "spec": {"nodeName": "cp-1", "containers": [{"image": f"registry.k8s.io/{component}:v1.30.6"}]}}

    def node_list(self) -> list[dict]:
        return [self.node(n) for n in self.nodes]

    def node(self, name: str) -> dict:
        version, ready = self.nodes[name]
        labels = {"node-role.kubernetes.io/control-plane": ""} if name.startswith("cp") else {}
        return {"metadata": {"name": name, "labels": labels},
                "status": {"nodeInfo": {"kubeletVersion": version},
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    fake = FakeCluster()
    cfg = new_config(name="t", sandbox_dir=tmp_path / "sbx", version="v1.30.6", control_planes=1, workers=1,
                     lb_port=fake.port, timeouts=Timeouts(kubeadm=1.0))
    cfg = dataclasses.replace(cfg, apiserver_ports={"cp-1": fake.port}, etcd_client_ports={"cp-1": fake.port})
    cfg.dir.mkdir(parents=True)
    cfg.save()
    for node in cfg.nodes:
        noderoot.create(cfg, node)
    fake.cfg = cfg
    fake.nodes = {"cp-1": ("v1.30.6", True), "worker-1": ("v1.30.6", True)}
    fake.config_map = {"data": {"ClusterConfiguration": "kind: ClusterConfiguration\nkubernetesVersion: v1.30.6\n"}}
    try:
        yield fake
    finally:
        fake.close()


def run(fake: FakeCluster, node: str, *argv: str) -> tuple[int, str, str]:
    assert fake.cfg is not None
    r = SandboxTransport(fake.cfg.dir, node).run(list(argv), 60)
    return r.exit_code, r.stdout, r.stderr


def kubeadm_131(fake: FakeCluster, node: str = "cp-1") -> None:
    code, out, err = run(fake, node, "sh", "-c", f"{REPO_131} && apt-get update && apt-mark unhold kubeadm && "
                         "apt-get install -y kubeadm=1.31.4-1.1 && apt-mark hold kubeadm")
    assert code == 0, out + err


# --- apt-get / apt-mark ---------------------------------------------------------------------


def test_apt_offers_only_the_minor_of_the_source_list(cluster: FakeCluster) -> None:
    code, _, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.4-1.1")
    assert (code, err.strip()) == (100, "E: Version '1.31.4-1.1' for 'kubeadm' was not found")
    run(cluster, "cp-1", "sh", "-c", REPO_131)
    code, _, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.4-1.1")
    assert code == 100, "the source list moved but `apt-get update` has not run"
    code, out, _ = run(cluster, "cp-1", "apt-get", "update")
    assert code == 0 and "core:/stable:/v1.31/deb  InRelease" in out
    code, _, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.32.0-1.1")
    assert (code, err.strip()) == (100, "E: Version '1.32.0-1.1' for 'kubeadm' was not found")


def test_apt_refuses_held_packages_and_silent_downgrades(cluster: FakeCluster) -> None:
    run(cluster, "cp-1", "sh", "-c", f"{REPO_131} && apt-get update")
    code, out, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.4-1.1")
    assert code == 100 and "The following held packages will be changed:\n  kubeadm" in out
    assert err.strip() == "E: Held packages were changed and -y was used without --allow-change-held-packages."
    assert run(cluster, "cp-1", "apt-mark", "unhold", "kubeadm")[1] == "Canceled hold on kubeadm.\n"
    assert run(cluster, "cp-1", "apt-mark", "unhold", "kubeadm")[1] == "kubeadm was already not on hold.\n"
    code, out, _ = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.4-1.1")
    assert code == 0 and "Unpacking kubeadm (1.31.4-1.1) over (1.30.6-1.1) ..." in out
    code, out, _ = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.4-1.1")
    assert code == 0 and "kubeadm is already the newest version (1.31.4-1.1)." in out
    code, _, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.31.0-1.1")
    assert (code, err.strip()) == (100, "E: Packages were downgraded and -y was used without --allow-downgrades.")
    assert run(cluster, "cp-1", "apt-get", "install", "-y", "--allow-downgrades", "kubeadm=1.31.0-1.1")[0] == 0
    assert run(cluster, "cp-1", "apt-mark", "hold", "kubeadm")[1] == "kubeadm set on hold.\n"
    assert run(cluster, "cp-1", "apt-mark", "showhold")[1].split() == ["kubeadm", "kubectl", "kubelet"]
    assert run(cluster, "cp-1", "kubeadm", "version", "-o", "short")[1].strip() == "v1.31.0"
    code, _, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadmm")
    assert (code, err.strip()) == (100, "E: Unable to locate package kubeadmm")


# --- kubeadm --------------------------------------------------------------------------------


def test_kubeadm_version_json_has_the_real_shape(cluster: FakeCluster) -> None:
    code, out, _ = run(cluster, "worker-1", "kubeadm", "version", "-o", "json")
    info = json.loads(out)["clientVersion"]
    assert code == 0 and list(info) == ["major", "minor", "gitVersion", "gitCommit", "gitTreeState", "buildDate",
                                        "goVersion", "compiler", "platform"]
    assert (info["major"], info["minor"], info["gitVersion"]) == ("1", "30", "v1.30.6")
    pulled = run(cluster, "cp-1", "kubeadm", "config", "images", "pull", "--kubernetes-version", "v1.31.4")[1]
    assert "[config/images] Pulled registry.k8s.io/etcd:3.5.16-0" in pulled


@pytest.mark.parametrize(("target", "expected"), [
    ("v1.32.0", 'Specified version to upgrade to "v1.32.0" is too high; kubeadm can upgrade only 1 minor version '
                "at a time"),
    ("v1.32.0", 'Specified version to upgrade to "v1.32.0" is at least one minor release higher than the kubeadm '
                "minor release (32 > 31). Such an upgrade is not supported"),
    ("v1.31.5", 'Specified version to upgrade to "v1.31.5" is higher than the kubeadm version "v1.31.4". Upgrade '
                "kubeadm first using the tool you used to install kubeadm"),
])
def test_kubeadm_version_policy_messages(cluster: FakeCluster, target: str, expected: str) -> None:
    kubeadm_131(cluster)
    code, _, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", target, "--yes")
    assert code == 1 and f"\t- {expected}\n" in err
    assert "image: registry.k8s.io/kube-apiserver:v1.30.6" in cluster.manifest("kube-apiserver").read_text()


def test_kubeadm_refuses_old_kubelets_unless_forced(cluster: FakeCluster) -> None:
    kubeadm_131(cluster)
    cluster.nodes["worker-1"] = ("v1.27.9", True)
    code, _, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes")
    assert code == 1
    assert "\t- There are kubelets in this cluster that are too old that have these versions [v1.27.9]\n" in err
    assert "Can be bypassed if you pass the --force flag" in err
    code, out, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes", "--force")
    assert code == 0, err
    assert "Found 1 potential version compatibility errors but skipping since the --force flag is set" in out


def test_kubeadm_preflight_refuses_notready_control_planes(cluster: FakeCluster) -> None:
    kubeadm_131(cluster)
    cluster.nodes = {"cp-1": ("v1.30.6", True), "cp-2": ("v1.30.6", False), "worker-1": ("v1.30.6", True)}
    code, _, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes")
    assert code == 1
    assert "\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [cp-2]\n" in err


def test_kubeadm_apply_backs_up_rewrites_and_records_the_version(cluster: FakeCluster) -> None:
    kubeadm_131(cluster)
    code, out, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes")
    assert code == 0, err
    assert '[upgrade/successful] SUCCESS! Your cluster was upgraded to "v1.31.4". Enjoy!' in out
    assert "image: registry.k8s.io/kube-apiserver:v1.31.4" in cluster.manifest("kube-apiserver").read_text()
    assert "image: registry.k8s.io/etcd:3.5.16-0" in cluster.manifest("etcd").read_text()
    tmp = cluster.manifest("etcd").parent.parent / "tmp"
    [backup] = tmp.glob("kubeadm-backup-manifests-*")
    assert sorted(p.name for p in backup.iterdir()) == [
        "etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    assert "kube-apiserver:v1.30.6" in (backup / "kube-apiserver.yaml").read_text()
    assert list(tmp.glob("kubeadm-backup-etcd-*"))
    conf = yaml.safe_load(cluster.config_map["data"]["ClusterConfiguration"])
    assert conf["kubernetesVersion"] == "v1.31.4"
    # kubeadm never downgrades etcd: the documented recovery `apply --force vOLD` keeps 3.5.16-0
    code, out, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", "v1.30.6", "--yes", "--force")
    assert ('[upgrade/etcd] Non fatal issue encountered during upgrade: the desired etcd version "3.5.15-0" is older '
            'than the currently installed "3.5.16-0". Skipping etcd upgrade\n') in out
    assert "image: registry.k8s.io/etcd:3.5.16-0" in cluster.manifest("etcd").read_text()


def test_kubeadm_restores_the_manifests_when_the_component_does_not_come_up(cluster: FakeCluster) -> None:
    kubeadm_131(cluster)
    cluster.kubelet_follows = False
    before = {c: cluster.manifest(c).read_text() for c in manifests.COMPONENTS}
    code, out, err = run(cluster, "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes", "--etcd-upgrade=false")
    assert code == 1
    assert err.startswith("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover "
                          "everything into the earlier state. Errors faced: static Pod hash for component "
                          "kube-apiserver on Node cp-1 did not change after 1s: timed out waiting for the condition")
    assert {c: cluster.manifest(c).read_text() for c in manifests.COMPONENTS} == before
    assert '[upgrade/successful]' not in out


def test_kubeadm_upgrade_node_follows_the_cluster_configuration(cluster: FakeCluster) -> None:
    code, _, err = run(cluster, "worker-1", "kubeadm", "upgrade", "node")
    assert code == 0, err
    cluster.config_map = {"data": {"ClusterConfiguration": "kubernetesVersion: v1.31.4\n"}}
    code, _, err = run(cluster, "worker-1", "kubeadm", "upgrade", "node")
    assert code == 1 and "(31 > 30). Such an upgrade is not supported" in err
    kubeadm_131(cluster, "worker-1")
    code, out, _ = run(cluster, "worker-1", "kubeadm", "upgrade", "node")
    assert code == 0 and "[upgrade] Skipping phase. Not a control plane node." in out


def test_certs_and_systemctl_without_a_kubelet(cluster: FakeCluster) -> None:
    out = run(cluster, "cp-1", "kubeadm", "certs", "check-expiration")[1]
    assert "apiserver-etcd-client" in out and "RESIDUAL TIME" in out
    assert "Done renewing certificates." in run(cluster, "cp-1", "kubeadm", "certs", "renew", "all")[1]
    code, out, _ = run(cluster, "worker-1", "systemctl", "is-active", "kubelet")
    assert (code, out.strip()) == (3, "inactive"), "no supervisor runs this node's kubelet"
    code, _, err = run(cluster, "worker-1", "systemctl", "restart", "containerd-nope")
    assert code == 5 and "Unit containerd-nope.service not found." in err


def test_node_paths_never_leave_the_node_root(cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    assert cluster.cfg is not None
    root = cluster.cfg.node_root("worker-1")
    probe = f"upgrader-probe-{uuid.uuid4().hex[:8]}"
    host_files = [Path("/tmp", probe), Path("/tmp", f"{probe}-2"), Path("/etc/kubernetes", probe)]
    try:
        code, out, _ = run(cluster, "worker-1", "sh", "-c", f"echo hi > /tmp/{probe} && cat /tmp/{probe} && "
                           "ls /etc/kubernetes")
        assert code == 0 and out.split() == ["hi", "kubelet.conf", "pki", "tmp"]
        assert (root / "tmp" / probe).read_text() == "hi\n"
        # redirections without a space, `..` above the node's /, and the host paths stay untouched
        code, out, err = run(cluster, "worker-1", "sh", "-c", f"echo x >/tmp/{probe}-2; echo y>>/tmp/{probe}-2; "
                             f"echo z>/etc/kubernetes/{probe}; cat </etc/../../../../../../etc/hostname")
        assert (code, out) == (0, "worker-1\n"), err
        assert (root / "tmp" / f"{probe}-2").read_text() == "x\ny\n"
        assert (root / "etc/kubernetes" / probe).read_text() == "z\n"
        assert [p for p in host_files if p.exists()] == [], "a node command wrote the host's files"
    finally:
        for p in host_files:
            p.unlink(missing_ok=True)
    # /bin/apt-get and friends are the node's simulated tools, never the host's
    code, out, err = run(cluster, "worker-1", "/bin/apt-mark", "showhold")
    assert (code, out.split()) == (0, ["kubeadm", "kubectl", "kubelet"]), err
    code, _, err = run(cluster, "worker-1", "sh", "-c", "/usr/bin/apt-get install -y --simulate kubeadm=1.31.4-1.1")
    assert (code, err.strip()) == (100, "E: Version '1.31.4-1.1' for 'kubeadm' was not found")
    # HOME is the node's /root; the operator's KUBECONFIG does not follow onto the node
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "operator-kubeconfig"))
    code, out, _ = run(cluster, "worker-1", "sh", "-c", 'echo "$HOME ${KUBECONFIG-unset}"; pwd; cd ~ && pwd')
    assert out == "/root unset\n/root\n/root\n"


def test_apt_checks_downgrades_before_holds_and_only_under_yes(cluster: FakeCluster) -> None:
    """apt's fail-safe order (private-install.cc): a held package taken down trips the downgrade check first."""
    code, out, err = run(cluster, "cp-1", "apt-get", "install", "-y", "kubeadm=1.30.0-1.1")
    assert code == 100 and "The following held packages will be changed:\n  kubeadm" in out
    assert "The following packages will be DOWNGRADED:\n  kubeadm\n" in out
    assert "0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded.\n" in out
    assert err == "E: Packages were downgraded and -y was used without --allow-downgrades.\n"
    code, _, err = run(cluster, "cp-1", "apt-get", "install", "-y", "--allow-downgrades", "kubeadm=1.30.0-1.1")
    assert (code, err) == (100, "E: Held packages were changed and -y was used without --allow-change-held-packages.\n")
    code, out, err = run(cluster, "cp-1", "apt-get", "install", "kubeadm=1.30.0-1.1")  # no -y: apt asks
    assert (code, err) == (1, "") and out.endswith("Do you want to continue? [Y/n] Abort.\n")
    code, out, err = run(cluster, "cp-1", "apt-get", "install", "-y", "--allow-downgrades",
                         "--allow-change-held-packages", "kubeadm=1.30.0-1.1")
    assert code == 0 and "Unpacking kubeadm (1.30.0-1.1) over (1.30.6-1.1) ..." in out, out + err
    assert run(cluster, "cp-1", "kubeadm", "version", "-o", "short")[1] == "v1.30.0\n"
