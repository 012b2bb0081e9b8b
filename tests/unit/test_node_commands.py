"""The package commands an upgrade runs: argv only, exact builds from the repository's own listing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.versions import Minor, Version
from upgrader.nodes import commands

APT_LIST = ("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
            "https://pkgs.k8s.io/core:/stable:/v1.30/deb/ /\n")
YUM_REPO = ("[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/\nenabled=1\n"
            "gpgcheck=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/repodata/repomd.xml.key\n"
            "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n")
MADISON = ("   kubeadm | 1.31.4-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n"
           "   kubeadm | 1.31.3-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n"
           "   kubectl | 1.31.4-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n")
DNF_LIST = ("Last metadata expiration check: 0:01:02 ago.\nInstalled Packages\n"
            "kubeadm.x86_64                 1.30.6-150500.1.1                 @kubernetes\n"
            "Available Packages\n"
            "kubeadm.x86_64                 1.31.3-150500.1.1                 kubernetes\n"
            "kubeadm.x86_64                 1.31.4-150500.1.1                 kubernetes\n"
            "kubelet.x86_64                 1.31.4-150500.1.1                 kubernetes\n")


def test_the_apt_source_moves_to_the_new_minor_and_nothing_else_changes() -> None:
    moved = commands.retarget_repo(APT_LIST, Minor(1, 31))
    assert moved == APT_LIST.replace("v1.30", "v1.31")


def test_the_yum_repo_moves_baseurl_and_gpgkey_and_keeps_its_exclude_line() -> None:
    moved = commands.retarget_repo(YUM_REPO, Minor(1, 31))
    assert moved is not None
    assert "baseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/" in moved
    assert "gpgkey=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/repodata/repomd.xml.key" in moved
    assert "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni" in moved


def test_a_mirror_without_a_per_minor_url_cannot_be_retargeted() -> None:
    assert commands.retarget_repo("deb https://mirror.example.com/kubernetes/ stable main\n", Minor(1, 31)) is None


@given(st.integers(1, 40), st.integers(1, 40))
def test_retargeting_is_idempotent_and_names_only_the_new_minor(a: int, b: int) -> None:
    text = APT_LIST.replace("v1.30", f"v1.{a}")
    once = commands.retarget_repo(text, Minor(1, b))
    assert once is not None and f"v1.{b}/deb" in once
    assert commands.retarget_repo(once, Minor(1, b)) == once


def test_builds_come_from_apt_cache_madison_for_the_asked_package_only() -> None:
    assert commands.parse_builds("apt", "kubeadm", MADISON) == ["1.31.4-1.1", "1.31.3-1.1"]
    assert commands.pick_build(commands.parse_builds("apt", "kubeadm", MADISON), Version(1, 31, 3)) == "1.31.3-1.1"


def test_builds_come_from_dnf_list_showduplicates() -> None:
    builds = commands.parse_builds("dnf", "kubeadm", DNF_LIST)
    assert builds == ["1.30.6-150500.1.1", "1.31.3-150500.1.1", "1.31.4-150500.1.1"]
    assert commands.pick_build(builds, Version(1, 31, 4)) == "1.31.4-150500.1.1"
    assert commands.pick_build(builds, Version(1, 31, 5)) is None


@given(st.integers(0, 30), st.integers(0, 30))
def test_a_build_is_picked_only_for_its_exact_patch(listed: int, wanted: int) -> None:
    builds = [f"1.31.{listed}-1.1"]
    picked = commands.pick_build(builds, Version(1, 31, wanted))
    assert (picked is not None) == (listed == wanted)


def test_apt_unholds_installs_the_exact_build_and_holds_again() -> None:
    assert commands.install("apt", {"kubelet": "1.31.4-1.1", "kubectl": "1.31.4-1.1"}) == [
        ["apt-mark", "unhold", "kubectl", "kubelet"],
        ["apt-get", "install", "-y", "kubectl=1.31.4-1.1", "kubelet=1.31.4-1.1"],
        ["apt-mark", "hold", "kubectl", "kubelet"],
    ]


def test_dnf_installs_the_exact_build_past_the_repositorys_exclude_line() -> None:
    assert commands.install("dnf", {"kubeadm": "1.31.4-150500.1.1"}) == [
        ["dnf", "install", "-y", "kubeadm-1.31.4-150500.1.1", "--disableexcludes=kubernetes"]]


def test_installed_build_queries_print_the_version_alone() -> None:
    assert commands.installed_build("apt", "kubeadm") == ["dpkg-query", "-W", "--showformat=${Version}", "kubeadm"]
    assert commands.installed_build("dnf", "kubeadm") == ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", "kubeadm"]
    assert commands.upstream_of("1.31.4-150500.1.1") == "v1.31.4"
