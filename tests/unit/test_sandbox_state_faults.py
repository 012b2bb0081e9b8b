"""The sandbox's state faults without a running sandbox: which flags its apiserver and kubelet refuse (and
at which minor), the flags a fault writes, and what is refused before anything changes (a stopped sandbox,
a worker for a control-plane fault, an etcd fault that would take quorum with it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.versions import Version
from upgrader.sandbox import faults
from upgrader.sandbox.lifecycle.preflight import check_faults
from upgrader.sandbox.node import removed_flags, state_faults
from upgrader.sandbox.sandbox_config import new_config


@given(st.integers(min_value=24, max_value=40), st.integers(min_value=0, max_value=9))
def test_the_fault_flag_is_refused_at_its_version_and_accepted_before_its_removal(minor: int, patch: int) -> None:
    version = Version(1, minor, patch)
    for table in (removed_flags.APISERVER, removed_flags.KUBELET):
        flag = removed_flags.fault_flag(table, version)
        assert removed_flags.refused(["--a=1", flag], table, version) == flag.partition("=")[0]
    assert removed_flags.fault_flag(removed_flags.KUBELET, version) == (
        "--container-runtime=remote" if minor >= 27 else "--network-plugin=cni")
    assert removed_flags.refused(["--container-runtime=remote"], removed_flags.KUBELET, Version(1, 26, 0)) is None


def test_the_refusals_read_as_the_real_binaries_print_them() -> None:
    assert removed_flags.apiserver_error("--insecure-port") == "Error: unknown flag: --insecure-port"
    assert removed_flags.kubelet_error("--container-runtime") == (
        '"command failed" err="failed to parse kubelet flag: unknown flag: --container-runtime"')
    env = 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/c.sock"\n'
    added = removed_flags.add_env_flag(env, "--container-runtime=remote")
    assert removed_flags.env_flags(added) == ["--container-runtime-endpoint=unix:///run/c.sock",
                                              "--container-runtime=remote"]


def test_state_faults_are_refused_where_they_cannot_be_made(tmp_path: Path) -> None:
    one = new_config(name="s1", sandbox_dir=tmp_path / "s1", version="v1.30.6", control_planes=1, workers=1)
    for spec, why in (("etcd-member-data-lost:cp-1", "needs 3 control planes or more"),
                      ("apiserver-crashloop:worker-1", "needs a control-plane node")):
        with pytest.raises(state_faults.StateFaultError, match=why):
            state_faults.apply(one, faults.parse(spec, nodes=one.nodes))
    assert not (tmp_path / "s1" / faults.REQUESTS).exists(), "nothing was asked of a kubelet"
    # a stopped sandbox (or `up --faults`) does not take them: they are made once in a running one's files
    with pytest.raises(faults.InvalidFaultError, match="inject it once sandbox s1 is running"):
        check_faults(one, [faults.parse("kubelet-flag-removed:worker-1")], {"cp-1": Version(1, 30, 6)}, saved=[])
    saved = [faults.parse("kubelet-flag-removed:worker-1")]
    check_faults(one, saved, {"cp-1": Version(1, 30, 6)}, saved=saved)  # injected earlier: a record, not refused


def test_a_one_shot_request_is_taken_once(tmp_path: Path) -> None:
    fault = faults.parse("etcd-member-data-lost:cp-2")
    faults.request(tmp_path, fault)
    assert faults.take_request(tmp_path, kind="etcd-member-data-lost", node="cp-2")
    assert not faults.take_request(tmp_path, kind="etcd-member-data-lost", node="cp-2")
    assert not faults.take_request(tmp_path, kind="etcd-member-data-lost", node="cp-3")
