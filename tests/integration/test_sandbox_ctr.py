"""The etcd tools of a sandbox node, as on a kubeadm node: none on the host, the etcd image's through ctr.

Node roots are laid out as `sandbox up` lays them out (no running cluster); every command goes
through the node transport (its namespaces, or best-effort path rewriting). A real etcd member,
outside any node, provides the snapshot; the restored data dir is started by the sandbox's own
kubelet code (real etcd) from the node's etcd.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import needs_etcd, wait_for
from upgrader.domain.versions import Version
from upgrader.etcd import parsing
from upgrader.etcd.tool import EtcdctlTool
from upgrader.ports import CommandResult, NodeLayout
from upgrader.sandbox.etcd.data_dir import MARKER, REFUSAL
from upgrader.sandbox.etcd.health import probe
from upgrader.sandbox.etcd.members import start_etcd_cluster, stop_cluster
from upgrader.sandbox.node import isolation, manifests
from upgrader.sandbox.node import provision as noderoot
from upgrader.sandbox.node.static_pods import StaticPodRunner
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import SandboxConfig, new_config

pytestmark = [pytest.mark.etcd, needs_etcd]

ETCD = "registry.k8s.io/etcd"
MOUNTS = ["--mount", "type=bind,src=/root,dst=/root,options=rbind:rw",
          "--mount", "type=bind,src=/var/lib,dst=/var/lib,options=rbind:rw"]
RUNC = ("ctr: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
        'process: exec: "{tool}": executable file not found in $PATH: unknown')


def make_nodes(base: Path, *, mode: str = isolation.NAMESPACE, etcd_tools: bool = False,
               version: str = "v1.33.6") -> SandboxConfig:
    cfg = new_config(name="ctr", sandbox_dir=base / "sbx", version=version, control_planes=1, workers=1,
                     isolation=mode, node_etcd_tools=etcd_tools)
    cfg.dir.mkdir(parents=True)
    cfg.save()
    for node in cfg.nodes:
        noderoot.create(cfg, node)
    return cfg


def run(cfg: SandboxConfig, node: str, *argv: str) -> CommandResult:
    return SandboxTransport(cfg.dir, node).run(list(argv), 60)


def ctr_run(cfg: SandboxConfig, image: str, *argv: str, node: str = "cp-1") -> CommandResult:
    return run(cfg, node, "ctr", "-n", "k8s.io", "run", "--rm", "--net-host", *MOUNTS, image, "upgrader-test",
               *argv)


@pytest.fixture(params=[isolation.NAMESPACE, isolation.BEST_EFFORT])
def cfg(tmp_path: Path, request: pytest.FixtureRequest) -> SandboxConfig:
    return make_nodes(tmp_path, mode=request.param)


@pytest.fixture
def snapshot(tmp_path: Path) -> Iterator[Path]:
    """A real snapshot holding keys a=1 and b=2 (the etcd that made it is stopped again)."""
    members = start_etcd_cluster({"source": tmp_path / "source-etcd"})
    env = {**os.environ, "ETCDCTL_API": "3"}
    try:
        for key, value in (("a", "1"), ("b", "2")):
            subprocess.run(["etcdctl", f"--endpoints={members[0].client_url}", "put", key, value], env=env,
                           check=True, capture_output=True, timeout=30)
        path = tmp_path / "snap.db"
        subprocess.run(["etcdctl", f"--endpoints={members[0].client_url}", "snapshot", "save", str(path)], env=env,
                       check=True, capture_output=True, timeout=30)
        yield path
    finally:
        stop_cluster(members)


def pull(cfg: SandboxConfig, *refs: str, node: str = "cp-1") -> None:
    for ref in refs:
        done = run(cfg, node, "ctr", "-n", "k8s.io", "images", "pull", ref)
        assert done.exit_code == 0, done.stderr


# --- no etcd tools on the host of a node ----------------------------------------------------------


def test_a_default_node_has_no_etcdctl_and_the_option_lends_it(tmp_path: Path) -> None:
    for mode in (isolation.NAMESPACE, isolation.BEST_EFFORT):
        plain = make_nodes(tmp_path / mode, mode=mode)
        done = run(plain, "cp-1", "etcdctl", "version")
        assert done.exit_code == 127 and "etcdctl" in done.stderr and "not found" in done.stderr, done
        assert done.stdout == ""
        assert run(plain, "worker-1", "sh", "-c", "etcdutl version").exit_code == 127
    # isolated: not even on PATH (an overlay whiteout hides the machine's /usr/bin/etcdctl)
    done = run(make_nodes(tmp_path / "iso2"), "cp-1", "sh", "-c", "command -v etcdctl etcdutl; echo rc=$?")
    assert done.stdout.strip() == "rc=127", done
    lent = make_nodes(tmp_path / "lent", etcd_tools=True)
    done = run(lent, "cp-1", "etcdctl", "version")
    assert (done.exit_code, done.stdout.splitlines()[0]) == (0, "etcdctl version: 3.4.23"), done


# --- images: ctr and crictl agree with the manifests and with pulls -------------------------------


def test_images_are_the_manifests_and_the_pulled_ones(cfg: SandboxConfig) -> None:
    done = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "images", "ls", "-q")
    v = "v1.33.6"
    expected = [f"{ETCD}:3.5.24-0", f"registry.k8s.io/kube-apiserver:{v}",
                f"registry.k8s.io/kube-controller-manager:{v}", f"registry.k8s.io/kube-scheduler:{v}",
                "registry.k8s.io/pause:3.10"]
    assert (done.exit_code, done.stdout.splitlines()) == (0, expected), done
    assert run(cfg, "worker-1", "ctr", "-n", "k8s.io", "images", "ls", "-q").stdout.splitlines() == [
        "registry.k8s.io/pause:3.10"]
    assert run(cfg, "cp-1", "ctr", "images", "ls", "-q").stdout == ""  # ctr's default namespace has none
    pull(cfg, f"{ETCD}:3.5.21-0")
    missing = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "images", "pull", f"{ETCD}:3.9.9-0")
    assert (missing.exit_code, missing.stderr.strip()) == (
        1, f'ctr: failed to resolve reference "{ETCD}:3.9.9-0": {ETCD}:3.9.9-0: not found')
    listed = json.loads(run(cfg, "cp-1", "crictl", "images", "-o", "json").stdout)
    assert sorted(t for i in listed["images"] for t in i["repoTags"]) == sorted([*expected, f"{ETCD}:3.5.21-0"])
    ps = run(cfg, "cp-1", "crictl", "ps")
    assert ps.exit_code == 0 and [line.split()[4] for line in ps.stdout.splitlines()[1:]] == list(
        manifests.COMPONENTS)
    not_there = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm", f"{ETCD}:3.6.5-0", "x", "etcdutl", "version")
    assert (not_there.exit_code, not_there.stderr.strip()) == (1, f'ctr: image "{ETCD}:3.6.5-0": not found')


def test_kubeadm_config_images_pull_puts_them_in_containerd(tmp_path: Path) -> None:
    cfg = make_nodes(tmp_path)
    assert f"{ETCD}:3.6.5-0" not in run(cfg, "cp-1", "ctr", "-n", "k8s.io", "images", "ls", "-q").stdout
    pulled = run(cfg, "cp-1", "kubeadm", "config", "images", "pull", "--kubernetes-version", "v1.34.5")
    assert pulled.exit_code == 0, pulled
    listed = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "images", "ls", "-q").stdout.splitlines()
    assert {f"{ETCD}:3.6.5-0", "registry.k8s.io/kube-apiserver:v1.34.5"} <= set(listed)
    tags = json.loads(run(cfg, "cp-1", "crictl", "images", "-o", "json").stdout)
    assert f"{ETCD}:3.6.5-0" in {t for i in tags["images"] for t in i["repoTags"]}


# --- the tools of both image kinds, as the caller's probe reads them ------------------------------


def image_probe(cfg: SandboxConfig, image: str) -> EtcdctlTool:
    def runner(argv: list[str], timeout: float) -> CommandResult:
        return ctr_run(cfg, image, *argv)

    return EtcdctlTool(etcdctl="etcdctl", etcdutl="etcdutl", runner=runner)


@pytest.mark.parametrize(("tag", "ctl", "utl", "restore", "status"), [
    ("3.5.21-0", "3.5.21", None, "etcdctl", "etcdctl"),  # Kubernetes-built: no etcdutl
    ("3.5.24-0", "3.5.24", "3.5.24", "etcdutl", "etcdutl"),  # official from here on
    ("3.6.5-0", "3.6.5", "3.6.5", "etcdutl", "etcdutl"),
    ("3.7.0-0", "3.7.0", "3.7.0", "etcdutl", "etcdutl"),
])
def test_probe_reads_each_image_kind(tmp_path: Path, tag: str, ctl: str, utl: str | None, restore: str,
                                     status: str) -> None:
    cfg = make_nodes(tmp_path)
    pull(cfg, f"{ETCD}:{tag}")
    info = image_probe(cfg, f"{ETCD}:{tag}").probe()
    assert (info.etcdctl_version, info.etcdutl_version, info.restore_tool, info.status_tool, info.bump_revision) == (
        ctl, utl, restore, status, True)
    version = ctr_run(cfg, f"{ETCD}:{tag}", "etcdctl", "version")
    assert version.stdout == f"etcdctl version: {ctl}\nAPI version: {ctl.rsplit('.', 1)[0]}\n"


def test_a_tool_the_image_lacks_fails_like_runc(tmp_path: Path) -> None:
    cfg = make_nodes(tmp_path)
    pull(cfg, f"{ETCD}:3.5.21-0")
    for image, tool in ((f"{ETCD}:3.5.21-0", "etcdutl"), (f"{ETCD}:3.5.24-0", "sh"), (f"{ETCD}:3.5.24-0", "mv")):
        done = ctr_run(cfg, image, tool, "version")
        assert (done.exit_code, done.stdout, done.stderr.strip()) == (1, "", RUNC.format(tool=tool)), done
    kube = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm", "registry.k8s.io/kube-apiserver:v1.33.6", "h",
               "etcdctl", "version")
    assert (kube.exit_code, kube.stderr.strip()) == (1, RUNC.format(tool="etcdctl"))
    helped = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm", "registry.k8s.io/kube-apiserver:v1.33.6", "h",
                 "kube-apiserver", "--help")
    assert helped.exit_code == 0, helped  # the text is component_help's (another part of the sandbox)


def test_etcdctl_36_restore_prints_help_and_exits_0(tmp_path: Path, snapshot: Path) -> None:
    cfg = make_nodes(tmp_path)
    pull(cfg, f"{ETCD}:3.6.5-0")
    (cfg.node_root("cp-1") / "root/snap.db").write_bytes(snapshot.read_bytes())
    for verb in ("restore", "status"):
        done = ctr_run(cfg, f"{ETCD}:3.6.5-0", "etcdctl", "snapshot", verb, "/root/snap.db",
                       "--data-dir", "/var/lib/etcd-from-36")
        assert done.exit_code == 0, done
        assert parsing.usage_names(done.stdout, "etcdctl", "snapshot") and "restore" not in done.stdout
        assert "\tsave\t" in done.stdout and "API VERSION:\n\t3.6" in done.stdout
    assert not (cfg.node_root("cp-1") / "var/lib/etcd-from-36").exists()


# --- a real restore, started by the sandbox's kubelet ----------------------------------------------


def restore_into_node(cfg: SandboxConfig, snapshot: Path, image: str, tool: str) -> CommandResult:
    root = cfg.node_root("cp-1")
    (root / "root/snap.db").write_bytes(snapshot.read_bytes())
    assert run(cfg, "cp-1", "rmdir", "/var/lib/etcd").exit_code == 0  # restore wants a new directory
    peer = cfg.etcd_peer_url("cp-1")
    return ctr_run(cfg, image, tool, "snapshot", "restore", "/root/snap.db", "--name", "cp-1",
                   "--data-dir", "/var/lib/etcd", f"--initial-cluster=cp-1={peer}", "--initial-cluster-token",
                   "restored", "--initial-advertise-peer-urls", peer, "--bump-revision", "1000000000",
                   "--mark-compacted")


def set_etcd_image(cfg: SandboxConfig, tag: str) -> None:
    path = cfg.node_root("cp-1") / "etc/kubernetes/manifests/etcd.yaml"
    path.write_text(manifests.dump(manifests.etcd(cfg, "cp-1", Version.parse(cfg.version), tag=tag)))


@pytest.mark.parametrize(("tag", "tool"), [("3.5.21-0", "etcdctl"), ("3.5.24-0", "etcdutl")])
def test_a_restore_through_ctr_is_a_data_dir_the_kubelets_etcd_serves(cfg: SandboxConfig, snapshot: Path,
                                                                      tag: str, tool: str) -> None:
    pull(cfg, f"{ETCD}:{tag}")
    done = restore_into_node(cfg, snapshot, f"{ETCD}:{tag}", tool)
    assert done.exit_code == 0, done
    assert "restored snapshot" in done.stderr and str(cfg.dir) not in done.stdout + done.stderr
    data = cfg.node_root("cp-1") / "var/lib/etcd"
    marker = json.loads((data / MARKER).read_text())
    assert (marker["tool"], marker["version"], marker["bump_revision_applied"]) == (tool, tag[:-2], False)
    set_etcd_image(cfg, tag)
    (cfg.node_root("cp-1") / "etc/kubernetes/manifests/kube-apiserver.yaml").unlink()  # etcd alone
    kubelet = StaticPodRunner(node="cp-1", layout=NodeLayout(cfg.node_root("cp-1")), sandbox_dir=cfg.dir)
    try:
        kubelet.sync()
        url = cfg.etcd_client_url("cp-1")
        wait_for(lambda: probe(url, name="cp-1").healthy, timeout=30, what="restored etcd healthy")
        got = subprocess.run(["etcdctl", f"--endpoints={url}", "get", "--prefix", "", "--print-value-only"],
                             env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True, timeout=30)
        assert got.stdout.split() == ["1", "2"], got
        # the image's etcdctl saves from the node's member (kubeadm's endpoint and certificates), with the
        # host's network only
        tls = ["--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
               "--cert=/etc/kubernetes/pki/etcd/server.crt", "--key=/etc/kubernetes/pki/etcd/server.key"]
        saved = ctr_run(cfg, f"{ETCD}:{tag}", "etcdctl", *tls, "snapshot", "save", "/root/again.db")
        assert saved.exit_code == 0 and "Snapshot saved at /root/again.db" in saved.stdout, saved
        assert (cfg.node_root("cp-1") / "root/again.db").stat().st_size % 512 == 32
        isolated = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm", f"{ETCD}:{tag}", "x", "etcdctl", *tls,
                       "--dial-timeout=1s", "--command-timeout=2s", "endpoint", "health")
        assert isolated.exit_code == 1 and "unhealthy" in isolated.stderr, isolated  # no --net-host: no member
    finally:
        kubelet.stop_all()


def test_etcd_refuses_a_data_dir_restored_by_a_newer_minor(tmp_path: Path, snapshot: Path) -> None:
    cfg = make_nodes(tmp_path)
    pull(cfg, f"{ETCD}:3.7.0-0")
    assert restore_into_node(cfg, snapshot, f"{ETCD}:3.7.0-0", "etcdutl").exit_code == 0
    set_etcd_image(cfg, "3.6.5-0")
    (cfg.node_root("cp-1") / "etc/kubernetes/manifests/kube-apiserver.yaml").unlink()
    kubelet = StaticPodRunner(node="cp-1", layout=NodeLayout(cfg.node_root("cp-1")), sandbox_dir=cfg.dir)
    try:
        kubelet.sync()
        assert kubelet.pods["etcd"].pid is None
        log = (cfg.node_root("cp-1") / "var/log/pods/etcd.log").read_text()
        assert REFUSAL in log and '"storage-version": "3.7"' in log
    finally:
        kubelet.stop_all()


# --- mounts: only the node's own directories --------------------------------------------------------


def test_mounts_outside_the_node_are_refused(cfg: SandboxConfig, tmp_path: Path, snapshot: Path) -> None:
    host_etcd = Path("/var/lib/etcd")
    before = sorted(p.name for p in host_etcd.iterdir()) if host_etcd.is_dir() else None
    outside = tmp_path / "outside"
    outside.mkdir()
    (cfg.node_root("cp-1") / "root/out").symlink_to(outside)
    for src in ("/usr/bin", "/proc", "/usr/lib/upgrader-sandbox", str(outside), "/root/out"):
        done = run(cfg, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm", "--mount",
                   f"type=bind,src={src},dst=/data,options=rbind:rw", f"{ETCD}:3.5.24-0", "x", "etcdutl",
                   "snapshot", "restore", "/data/snap.db", "--data-dir", "/data/etcd")
        assert done.exit_code == 1 and "ctr:" in done.stderr and "restored" not in done.stderr, (src, done)
    # a data dir under no mount is in the container's own filesystem: gone with it, nowhere on the machine
    (cfg.node_root("cp-1") / "root/snap.db").write_bytes(snapshot.read_bytes())
    done = ctr_run(cfg, f"{ETCD}:3.5.24-0", "etcdutl", "snapshot", "restore", "/root/snap.db",
                   "--data-dir", "/var/tmp/x")
    assert done.exit_code == 0 and "/var/tmp/x/member" in done.stderr, done
    assert not (cfg.node_root("cp-1") / "var/tmp/x").exists()
    assert list(outside.iterdir()) == []
    assert (sorted(p.name for p in host_etcd.iterdir()) if host_etcd.is_dir() else None) == before
