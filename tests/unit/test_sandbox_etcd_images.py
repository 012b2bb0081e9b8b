"""Which etcd image tags the sandbox's ctr treats as Kubernetes-built or official, and what each holds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox import releases
from upgrader.sandbox.etcd.data_dir import refusal, write_marker


@pytest.mark.parametrize(("tag", "kind", "tools", "ctl_bump"), [
    ("3.5.9-0", "kubernetes-built", ("sh", "etcd", "etcdctl"), False),
    ("3.5.10-0", "kubernetes-built", ("sh", "etcd", "etcdctl"), True),
    ("3.5.21-0", "kubernetes-built", ("sh", "etcd", "etcdctl"), True),
    ("3.5.24-0", "official", ("etcd", "etcdctl", "etcdutl"), True),
    ("3.6.5-0", "official", ("etcd", "etcdctl", "etcdutl"), False),  # 3.6 etcdctl: snapshot save only
    ("3.7.0-0", "official", ("etcd", "etcdctl", "etcdutl"), False),
])
def test_image_kinds(tag: str, kind: str, tools: tuple[str, ...], ctl_bump: bool) -> None:
    image = releases.etcd_image(tag)
    assert (image.kind, image.tools, image.bump_flags("etcdctl")) == (kind, tools, ctl_bump)
    assert image.bump_flags("etcdutl") == ("etcdutl" in tools)


def test_kubeadm_137_runs_etcd_37() -> None:
    assert releases.etcd_tag(Version(1, 37, 0)) == "3.7.0-0"


@given(st.integers(0, 9), st.integers(0, 40), st.integers(0, 3))
def test_every_tag_is_exactly_one_kind_and_only_official_ones_have_etcdutl(minor: int, patch: int, build: int) -> None:
    image = releases.etcd_image(f"3.{minor}.{patch}-{build}")
    assert image.official == ((3, minor, patch) >= (3, 5, 24))
    assert ("etcdutl" in image.tools) == image.official and ("sh" in image.tools) != image.official


@pytest.mark.parametrize("tag", ["3.5", "v3.5.24-0", "3.5.24", "latest", ""])
def test_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(InvalidVersionError):
        releases.etcd_image(tag)


def test_a_data_dir_written_by_a_newer_minor_is_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path, "3.6.5-0") is None  # no sandbox restore wrote it
    write_marker(tmp_path, {"tool": "etcdutl", "version": "3.7.0"})
    line = refusal(tmp_path, "3.6.5-0")
    assert line is not None and "etcd will no longer start on data dir created by newer versions" in line
    assert refusal(tmp_path, "3.7.0-0") is None and refusal(tmp_path, "3.8.1-0") is None
