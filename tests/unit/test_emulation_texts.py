"""The flag in kubeadm-config's ClusterConfiguration (v1beta4 list, v1beta3 map) and in static pod manifests:
set, read back and removed without touching anything else."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from upgrader.engine.emulation_config import (
    EmulationError,
    config_flags,
    config_with_flag,
    manifest_flag,
    manifest_with_flag,
)

V1BETA4 = """apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.33.6
imageRepository: registry.k8s.io
apiServer:
  extraArgs:
  - name: audit-log-maxage
    value: "30"
controllerManager: {}
scheduler:
  extraArgs: []
etcd:
  local:
    dataDir: /var/lib/etcd
"""
V1BETA3 = """apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.30.6
apiServer:
  extraArgs:
    audit-log-maxage: "30"
"""
MANIFEST = """apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - name: kube-apiserver
    image: registry.k8s.io/kube-apiserver:v1.34.2
    command:
    - kube-apiserver
    - --advertise-address=10.0.0.1
    - --etcd-servers=https://127.0.0.1:2379
"""
COMPONENTS = {"kube-apiserver", "kube-controller-manager", "kube-scheduler"}


@pytest.mark.parametrize("text", [V1BETA4, V1BETA3])
def test_the_flag_goes_to_all_three_components_and_leaves_the_rest(text):
    assert set(config_flags(text).values()) == {None}
    raised = config_with_flag(text, "1.33")
    assert config_flags(raised) == dict.fromkeys(COMPONENTS, "1.33")
    before, after = yaml.safe_load(text), yaml.safe_load(raised)
    assert after["kubernetesVersion"] == before["kubernetesVersion"]
    args = after["apiServer"]["extraArgs"]
    if text is V1BETA4:
        assert args == [{"name": "audit-log-maxage", "value": "30"}, {"name": "emulated-version", "value": "1.33"}]
    else:
        assert args == {"audit-log-maxage": "30", "emulated-version": "1.33"}
    removed = config_with_flag(raised, None)
    assert set(config_flags(removed).values()) == {None}
    assert yaml.safe_load(removed)["apiServer"] == before["apiServer"]


@given(first=st.sampled_from(["1.31", "1.32", "1.33"]), second=st.sampled_from(["1.33", "1.34", None]))
def test_setting_twice_keeps_one_flag(first, second):
    text = config_with_flag(config_with_flag(V1BETA4, first), second)
    assert config_flags(text) == dict.fromkeys(COMPONENTS, second)
    args = yaml.safe_load(text)["apiServer"]["extraArgs"]
    assert sum(1 for a in args if a["name"] == "emulated-version") == (0 if second is None else 1)


def test_the_manifest_carries_exactly_one_flag():
    assert manifest_flag(MANIFEST) is None
    once = manifest_with_flag(MANIFEST, "1.33")
    twice = manifest_with_flag(once, "1.33")
    assert manifest_flag(twice) == "1.33"
    command = yaml.safe_load(twice)["spec"]["containers"][0]["command"]
    assert command[:3] == ["kube-apiserver", "--advertise-address=10.0.0.1", "--etcd-servers=https://127.0.0.1:2379"]
    assert command.count("--emulated-version=1.33") == 1
    assert manifest_flag(manifest_with_flag(twice, None)) is None
    assert yaml.safe_load(manifest_with_flag(twice, None)) == yaml.safe_load(MANIFEST)


def test_a_manifest_without_a_command_is_refused_not_guessed():
    with pytest.raises(EmulationError):
        manifest_with_flag("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    image: y\n", "1.33")
