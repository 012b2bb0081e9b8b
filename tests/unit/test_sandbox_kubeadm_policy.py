"""The sandbox kubeadm's pure parts: its version policy (policy.go) for downgrades, and how it reads the
ClusterConfiguration's extraArgs and merges them into a manifest's flags."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.versions import Version
from upgrader.sandbox.node.tools.kubeadm import policy
from upgrader.sandbox.node.tools.kubeadm.config_api import extra_args
from upgrader.sandbox.node.tools.kubeadm.static_pods import with_extra_args

minors = st.integers(min_value=25, max_value=40)
patches = st.integers(min_value=0, max_value=15)


@given(cluster_minor=minors, patch=patches, cluster_patch=patches)
def test_one_minor_down_with_the_matching_kubeadm_passes_without_force(cluster_minor: int, patch: int,
                                                                       cluster_patch: int) -> None:
    target = Version(1, cluster_minor - 1, patch)
    errs = policy.enforce(cluster=Version(1, cluster_minor, cluster_patch), target=target, kubeadm=target,
                          kubelets=[Version(1, cluster_minor, cluster_patch)])
    assert (errs.mandatory, errs.skippable) == ([], [])
    assert policy.render(errs, force=False) is None


@given(cluster_minor=minors, down=st.integers(min_value=2, max_value=5), patch=patches)
def test_more_than_one_minor_down_is_refused_even_with_force(cluster_minor: int, down: int, patch: int) -> None:
    target = Version(1, cluster_minor - down, patch)
    errs = policy.enforce(cluster=Version(1, cluster_minor, 0), target=target, kubeadm=target, kubelets=[])
    assert (f'Specified version to downgrade to "{target}" is too low; kubeadm can downgrade only 1 minor version '
            "at a time") in errs.mandatory
    fatal = policy.render(errs, force=True)
    assert fatal is not None and fatal.phase == "preflight"
    assert fatal.modern.startswith("the version argument is invalid due to these fatal errors:\n\n\t- ")
    assert str(fatal).startswith("[upgrade/version] FATAL: the --version argument is invalid due to these fatal")


@given(cluster_minor=minors, patch=patches)
def test_a_newer_kubeadm_may_downgrade_only_with_force(cluster_minor: int, patch: int) -> None:
    kubeadm, target = Version(1, cluster_minor, 3), Version(1, cluster_minor - 1, patch)
    errs = policy.enforce(cluster=kubeadm, target=target, kubeadm=kubeadm, kubelets=[])
    assert errs.mandatory == []
    assert errs.skippable == [f"Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version "
                              f"1.{cluster_minor}"]
    assert policy.render(errs, force=True) is None
    refused = policy.render(errs, force=False)
    assert refused is not None and refused.modern.endswith("Can be bypassed if you pass the --force flag")


def test_extra_args_read_from_either_api_and_merged_like_kubeadm() -> None:
    beta4 = {"apiServer": {"extraArgs": [{"name": "emulated-version", "value": "1.33"},
                                         {"name": "authorization-mode", "value": "Node,RBAC"}]}}
    beta3 = {"scheduler": {"extraArgs": {"v": "4", "bind-address": "0.0.0.0"}}}
    assert extra_args(beta4, "kube-apiserver") == [("emulated-version", "1.33"), ("authorization-mode", "Node,RBAC")]
    assert extra_args(beta3, "kube-scheduler") == [("bind-address", "0.0.0.0"), ("v", "4")]
    assert extra_args(beta3, "kube-controller-manager") == []
    pod = {"spec": {"containers": [{"command": ["kube-scheduler", "--authentication-kubeconfig=/a",
                                                "--bind-address=127.0.0.1", "--leader-elect=true"]}]}}
    merged = with_extra_args(pod, extra_args(beta3, "kube-scheduler"))
    assert merged["spec"]["containers"][0]["command"] == [
        "kube-scheduler", "--authentication-kubeconfig=/a", "--bind-address=0.0.0.0", "--leader-elect=true", "--v=4"]
