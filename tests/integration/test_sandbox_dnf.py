"""RHEL sandbox nodes (`sandbox up --os rhel`): dnf, yum and rpm on a real node root, through the node transport.

No cluster runs here: the nodes are provisioned roots and every command goes through
SandboxTransport as upgrader's own would. One test runs the node's simulated kubelet against a
real etcd member, to see `systemctl restart kubelet` pick up the kubelet package dnf installed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import assert_up_refused, needs_etcd
from upgrader.domain.versions import Minor, Version
from upgrader.nodes import packages
from upgrader.ports import NodeLayout
from upgrader.sandbox import releases
from upgrader.sandbox.apiserver import resources
from upgrader.sandbox.apiserver.storage import store_of
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.etcd.members import start_etcd_cluster, stop_cluster
from upgrader.sandbox.node import machine, provision
from upgrader.sandbox.node.kubelet import SimKubelet
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import SandboxConfig, Timeouts, new_config

REPO = "/etc/yum.repos.d/kubernetes.repo"
TO_132 = f"sed -i 's|/v1.31/|/v1.32/|g' {REPO}"  # baseurl and gpgkey, as the upgrade page says
DISABLE = "--disableexcludes=kubernetes"
NEWEST_131 = releases.patches(Minor(1, 31))[-1].rpm


def _config(tmp_path: Path, *, os_name: str) -> SandboxConfig:
    cfg = new_config(name="t", sandbox_dir=tmp_path / f"sbx-{os_name}", version="v1.31.4", control_planes=1,
                     workers=1, timeouts=Timeouts(kubelet_restart=0.2), os=os_name)
    cfg.dir.mkdir(parents=True)
    cfg.save()
    for node in cfg.nodes:
        provision.create(cfg, node)
    return cfg


@pytest.fixture
def rhel(tmp_path: Path) -> SandboxConfig:
    return _config(tmp_path, os_name="rhel")


def run(cfg: SandboxConfig, *argv: str, node: str = "cp-1") -> tuple[int, str, str]:
    r = SandboxTransport(cfg.dir, node).run(list(argv), 60)
    return r.exit_code, r.stdout, r.stderr


def sh(cfg: SandboxConfig, script: str, node: str = "cp-1") -> tuple[int, str, str]:
    return run(cfg, "sh", "-c", script, node=node)


def installed(cfg: SandboxConfig, name: str, node: str = "cp-1") -> str:
    code, out, err = run(cfg, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", name, node=node)
    assert code == 0, out + err
    return out.strip()


def test_a_rhel_node_is_set_up_as_the_install_page_leaves_it(rhel: SandboxConfig) -> None:
    code, out, _ = run(rhel, "cat", REPO)
    assert (code, out) == (0, "[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\n"
                              "enabled=1\ngpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/repodata/"
                              "repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")
    assert 'ID="rhel"' in run(rhel, "cat", "/etc/os-release")[1]
    assert run(rhel, "ls", "/etc/apt")[0] != 0, "no apt sources on a RHEL node"
    for name in ("kubeadm", "kubelet", "kubectl"):
        assert installed(rhel, name) == "1.31.4-150500.1.1"
    dnf_version = run(rhel, "dnf", "--version")
    assert dnf_version[0] == 0 and dnf_version[1].splitlines()[0] == "4.14.0"
    assert run(rhel, "yum", "--version")[:2] == dnf_version[:2], "yum is dnf on RHEL 9"
    assert run(rhel, "kubeadm", "version", "-o", "short")[1].strip() == "v1.31.4"


def test_apt_and_dpkg_are_not_there_on_a_rhel_node_nor_dnf_on_a_debian_one(rhel: SandboxConfig,
                                                                             tmp_path: Path) -> None:
    for argv in (["apt-get", "update"], ["apt-mark", "hold", "kubeadm"], ["dpkg", "-l"],
                 ["dpkg-query", "-W", "kubeadm"], ["apt-cache", "madison", "kubeadm"]):
        code, out, err = run(rhel, *argv)
        assert (code, out, err) == (127, "", f"{argv[0]}: command not found\n"), argv
    assert sh(rhel, "apt-get install -y kubeadm='1.31.5-1.1'")[0] == 127  # also through a shell
    assert installed(rhel, "kubeadm") == "1.31.4-150500.1.1"
    debian = _config(tmp_path, os_name="debian")
    assert run(debian, "dnf", "--version")[0] == 127 and run(debian, "rpm", "-q", "kubeadm")[0] == 127
    assert run(debian, "dpkg-query", "-W", "-f", "${Version}", "kubeadm")[1] == "1.31.4-1.1"


def test_the_repository_exclude_hides_the_packages_unless_disabled(rhel: SandboxConfig) -> None:
    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm-1.31.5-150500.1.1")
    assert code == 1
    assert "All matches were filtered out by exclude filtering for argument: kubeadm-1.31.5-150500.1.1\n" in out
    assert err == "Error: Unable to find a match: kubeadm-1.31.5-150500.1.1\n"
    code, out, err = run(rhel, "dnf", "install", "-y", "kubelet", "kubectl")
    assert code == 1 and err == "Error: Unable to find a match: kubelet kubectl\n"
    assert installed(rhel, "kubeadm") == "1.31.4-150500.1.1" and installed(rhel, "kubelet") == "1.31.4-150500.1.1"

    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm-1.31.5-150500.1.1", DISABLE)
    assert code == 0, out + err
    assert "Upgrading:\n kubeadm " in out and "Upgraded:\n  kubeadm-1.31.5-150500.1.1.x86_64\n" in out
    assert out.endswith("Complete!\n")
    assert installed(rhel, "kubeadm") == "1.31.5-150500.1.1"
    assert run(rhel, "kubeadm", "version", "-o", "short")[1].strip() == "v1.31.5", "kubeadm runs the new package"
    code, out, _ = run(rhel, "dnf", "install", "-y", "kubeadm-1.31.5-150500.1.1", DISABLE)
    assert code == 0 and "Package kubeadm-1.31.5-150500.1.1.x86_64 is already installed.\n" in out
    assert "Nothing to do.\nComplete!\n" in out


def test_a_repository_offers_its_minor_only_until_its_baseurl_moves(rhel: SandboxConfig) -> None:
    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm-1.32.0-150500.1.1", DISABLE)
    assert code == 1 and "No match for argument: kubeadm-1.32.0-150500.1.1\n" in out
    assert err == "Error: Unable to find a match: kubeadm-1.32.0-150500.1.1\n"
    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm-1.31.99-150500.1.1", DISABLE)
    assert code == 1 and "No match for argument: kubeadm-1.31.99-150500.1.1\n" in out  # no such release
    assert run(rhel, "dnf", "install", "-y", "kubeadm-1.31.5-1.1", DISABLE)[0] == 1  # a Debian version

    assert sh(rhel, TO_132)[0] == 0
    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm-1.32.0-*", DISABLE)  # the page's form
    assert code == 0, out + err
    assert out.startswith("Kubernetes "), "a moved baseurl is fetched afresh, no makecache needed"
    assert installed(rhel, "kubeadm") == "1.32.0-150500.1.1"

    assert sh(rhel, f"sed -i 's|/v1.32/|/v1.99/|g' {REPO}")[0] == 0  # a minor pkgs.k8s.io does not have
    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm", DISABLE)
    assert code == 1 and "Status code: 403 for https://pkgs.k8s.io/core:/stable:/v1.99/rpm/repodata/repomd.xml" in err
    assert err.endswith("Error: Failed to download metadata for repo 'kubernetes': Cannot download repomd.xml: "
                        "Cannot download repodata/repomd.xml: All mirrors were tried\n")


def test_install_of_an_older_version_downgrades_and_downgrade_steps_back(rhel: SandboxConfig) -> None:
    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm-1.31.2-150500.1.1", DISABLE)
    assert code == 0, out + err
    assert "Downgrading:\n kubeadm " in out and "\nDowngrade  1 Package\n" in out
    assert "Downgraded:\n  kubeadm-1.31.2-150500.1.1.x86_64\n" in out
    assert installed(rhel, "kubeadm") == "1.31.2-150500.1.1"

    code, out, err = run(rhel, "dnf", "downgrade", "-y", "kubeadm", DISABLE)  # one version back
    assert code == 0 and installed(rhel, "kubeadm") == "1.31.1-150500.1.1", out + err
    code, out, err = run(rhel, "dnf", "downgrade", "-y", "kubeadm-1.31.0-150500.1.1", DISABLE)
    assert code == 0 and installed(rhel, "kubeadm") == "1.31.0-150500.1.1", out + err
    code, out, err = run(rhel, "dnf", "downgrade", "-y", "kubeadm", DISABLE)
    assert code == 0 and err == "Package kubeadm of lowest version already installed, cannot downgrade it.\n"
    code, out, err = run(rhel, "dnf", "downgrade", "-y", "kubeadm-1.31.0-150500.1.1")  # excluded
    assert (code, err) == (1, "Error: No packages marked for downgrade.\n")
    assert "No package kubeadm-1.31.0-150500.1.1 available.\n" in out

    code, out, err = run(rhel, "dnf", "install", "-y", "kubeadm", "kubelet", DISABLE)  # a name: the newest
    assert code == 0 and "Upgrade  2 Packages\n" in out, out + err
    assert installed(rhel, "kubeadm") == NEWEST_131 and installed(rhel, "kubelet") == NEWEST_131

    code, out, err = run(rhel, "dnf", "install", "kubectl-1.31.5-150500.1.1", DISABLE)  # no -y, nothing answers
    assert code == 1 and out.endswith("Is this ok [y/N]: ") and err == "Operation aborted.\n"
    assert installed(rhel, "kubectl") == "1.31.4-150500.1.1"
    code, out, err = sh(rhel, f"echo y | dnf install kubectl-1.31.5-150500.1.1 {DISABLE}")
    assert code == 0 and installed(rhel, "kubectl") == "1.31.5-150500.1.1", out + err


def test_list_shows_installed_and_available_versions(rhel: SandboxConfig) -> None:
    offered = [v.rpm for v in releases.patches(Minor(1, 31)) if v != Version(1, 31, 4)]
    code, out, err = run(rhel, "dnf", "list", "--showduplicates", "kubeadm", DISABLE)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(("Kubernetes ", "Last metadata expiration check: "))
    assert lines[1] == "Installed Packages"
    assert lines[2].split() == ["kubeadm.x86_64", "1.31.4-150500.1.1", "@kubernetes"]
    assert lines[3] == "Available Packages"
    assert [line.split() for line in lines[4:]] == [["kubeadm.x86_64", v, "kubernetes"] for v in offered]
    assert len({line.index("1.31") for line in lines[2:] if "1.31" in line}) == 1, "one column for versions"

    code, out, _ = run(rhel, "dnf", "list", "--showduplicates", "kubeadm")  # excluded: installed only
    assert code == 0 and [line.split() for line in out.splitlines()[1:]] == [["Installed", "Packages"],
                                                                             lines[2].split()]
    code, out, _ = run(rhel, "dnf", "list", "kubeadm", DISABLE)  # without duplicates: the newest only
    assert [line.split() for line in out.splitlines()[1:]] == [
        *[["Installed", "Packages"], ["kubeadm.x86_64", "1.31.4-150500.1.1", "@kubernetes"]],
        ["Available", "Packages"], ["kubeadm.x86_64", NEWEST_131, "kubernetes"]]
    code, out, err = run(rhel, "dnf", "-q", "list", "installed", "kube*")
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == [
        "Installed", "kubeadm.x86_64", "kubectl.x86_64", "kubelet.x86_64"]
    code, out, err = run(rhel, "dnf", "list", "--showduplicates", "nope", DISABLE)
    assert (code, err) == (1, "Error: No matching Packages to list\n")


def test_rpm_queries_the_package_database(rhel: SandboxConfig) -> None:
    assert run(rhel, "rpm", "-q", "kubeadm") == (0, "kubeadm-1.31.4-150500.1.1.x86_64\n", "")
    code, out, _ = run(rhel, "rpm", "-q", "kubeadm", "cri-tools", "nope")
    assert (code, out) == (2, "kubeadm-1.31.4-150500.1.1.x86_64\npackage cri-tools is not installed\n"
                              "package nope is not installed\n")
    assert run(rhel, "rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", "kubeadm")[1] == "1.31.4-150500.1.1\n"
    code, out, _ = run(rhel, "rpm", "-q", "--queryformat=%{NAME} %{VERSION}-%{RELEASE}\\n", "kubeadm", "kubelet")
    assert out == "kubeadm 1.31.4-150500.1.1\nkubelet 1.31.4-150500.1.1\n"
    assert run(rhel, "rpm", "-qa", "kube*")[1].split() == [f"{n}-1.31.4-150500.1.1.x86_64"
                                                          for n in ("kubeadm", "kubectl", "kubelet")]
    assert run(rhel, "rpm", "-q", "--qf", "%{NOPE}", "kubeadm")[::2] == (1, 'error: incorrect format: unknown tag: '
                                                                           '"NOPE"\n')
    code, _, err = run(rhel, "rpm", "-e", "kubeadm")
    assert code == 1 and "install and remove packages with dnf" in err
    assert installed(rhel, "kubeadm") == "1.31.4-150500.1.1"


def test_makecache_and_clean_all(rhel: SandboxConfig) -> None:
    code, out, _ = run(rhel, "dnf", "makecache")
    assert code == 0 and out.startswith("Kubernetes ") and out.endswith("Metadata cache created.\n")
    code, out, _ = run(rhel, "dnf", "makecache")
    assert out.startswith("Last metadata expiration check: ")
    assert run(rhel, "dnf", "clean", "all") == (0, "4 files removed\n", "")
    assert run(rhel, "dnf", "list", "kubeadm")[1].startswith("Kubernetes "), "fetched again after a clean"
    code, _, err = run(rhel, "dnf", "upgrade-everything")
    assert code == 1 and err.startswith("No such command: upgrade-everything.")


def test_inventory_reads_the_yum_repository(rhel: SandboxConfig) -> None:
    found = packages.probe(SandboxTransport(rhel.dir, "worker-1"))
    assert found.manager == "dnf" and found.repo is not None
    assert (found.repo.file, found.repo.minor) == (REPO, "v1.31")
    sh(rhel, TO_132, node="worker-1")
    assert packages.probe(SandboxTransport(rhel.dir, "worker-1")).repo == packages.Repo(
        url="https://pkgs.k8s.io/core:/stable:/v1.32/rpm/", file=REPO, minor="v1.32")


def test_an_unknown_os_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    assert_up_refused(tmp_path / "home", ("--os", "ubuntu"), "--os 'ubuntu': use debian")


@pytest.fixture
def kubelet(rhel: SandboxConfig, tmp_path: Path) -> Iterator[tuple[SandboxConfig, EtcdKV]]:
    """worker-1's simulated kubelet, reporting into a real one-member etcd."""
    members = start_etcd_cluster({"cp-1": tmp_path / "etcd"})
    try:
        port = int(members[0].client_url.rsplit(":", 1)[1])
        cfg = dataclasses.replace(rhel, etcd_client_ports={"cp-1": port})
        thread = SimKubelet(cfg, "worker-1")
        thread.start()
        try:
            yield cfg, EtcdKV(cfg.etcd_client_urls)
        finally:
            thread.stop()
    finally:
        stop_cluster(members)


def _node_version(kv: EtcdKV) -> str:
    return str(store_of(kv).get(resources.NODES, None, "worker-1")["status"]["nodeInfo"]["kubeletVersion"])


@needs_etcd
def test_systemctl_restart_runs_the_kubelet_dnf_installed(kubelet: tuple[SandboxConfig, EtcdKV]) -> None:
    cfg, kv = kubelet
    deadline = time.monotonic() + 20
    layout = NodeLayout(cfg.node_root("worker-1"))
    while machine.kubelet_status(layout).get("state") != "active" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _node_version(kv) == "v1.31.4"
    code, out, err = sh(cfg, f"dnf install -y kubelet-1.31.5-150500.1.1 kubectl-1.31.5-150500.1.1 {DISABLE}",
                        node="worker-1")
    assert code == 0, out + err
    assert _node_version(kv) == "v1.31.4", "the running kubelet is the old one until it restarts"
    code, _, err = run(cfg, "systemctl", "restart", "kubelet", node="worker-1")
    assert (code, err) == (0, ""), "no daemon-reload warning: systemd's rpm triggers reloaded the unit"
    assert run(cfg, "systemctl", "is-active", "kubelet", node="worker-1")[1] == "active\n"
    deadline = time.monotonic() + 20
    while _node_version(kv) != "v1.31.5" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _node_version(kv) == "v1.31.5"
    assert "Loaded: loaded (/usr/lib/systemd/system/kubelet.service;" in run(cfg, "systemctl", "status", "kubelet",
                                                                             node="worker-1")[1]


def test_downgrade_back_a_minor_once_the_repository_points_at_it(rhel: SandboxConfig) -> None:
    """The rollback's package step on RHEL: baseurl back to v1.31, then `dnf downgrade NAME-VERSION`."""
    newest_132 = releases.patches(Minor(1, 32))[-1].rpm
    code, out, err = sh(rhel, f"{TO_132} && dnf install -y kubeadm-{newest_132} {DISABLE}")
    assert code == 0 and installed(rhel, "kubeadm") == newest_132, out + err
    code, out, err = run(rhel, "dnf", "downgrade", "-y", "kubeadm-1.31.4-150500.1.1", DISABLE)
    assert (code, err) == (1, "Error: No packages marked for downgrade.\n"), "the v1.32 repository has no 1.31.4"
    assert "No package kubeadm-1.31.4-150500.1.1 available.\n" in out
    code, out, err = sh(rhel, f"sed -i 's|/v1.32/|/v1.31/|g' {REPO} && "
                              f"yum downgrade -y kubeadm-1.31.4-150500.1.1 {DISABLE}")
    assert code == 0, out + err
    assert "Downgrading:\n kubeadm " in out and "\nDowngrade  1 Package\n" in out
    assert f"  Cleanup          : kubeadm-{newest_132}.x86_64" in out
    assert out.endswith("Downgraded:\n  kubeadm-1.31.4-150500.1.1.x86_64\n\nComplete!\n")
    assert installed(rhel, "kubeadm") == "1.31.4-150500.1.1"
