"""Versions, targets, catalogs and skew rules: the small pure rules everything else stands on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.data import builtin_catalog
from upgrader.domain.catalog import parse_catalog
from upgrader.domain.names import validate_name
from upgrader.domain.skew import kubeadm_kubelet_skew, kubelet_max_skew, lowest_kubelet_for_hop
from upgrader.domain.versions import Minor, Version, parse_target
from upgrader.errors import InvalidCatalogError, InvalidNameError, InvalidVersionError

parts = st.integers(0, 999)


@given(parts, parts, parts, st.booleans())
def test_version_round_trips_with_or_without_v(major, minor, patch, with_v):
    text = f"{'v' if with_v else ''}{major}.{minor}.{patch}"
    version = Version.parse(text)
    assert str(version) == f"v{major}.{minor}.{patch}"
    assert Version.parse(str(version)) == version


@given(st.tuples(parts, parts, parts), st.tuples(parts, parts, parts))
def test_version_order_is_numeric(a, b):
    assert (Version(*a) < Version(*b)) == (a < b)


@given(parts, parts, parts)
def test_package_versions_of_both_package_managers_name_the_release(major, minor, patch):
    from upgrader.sandbox.releases import parse_package

    version = Version(major, minor, patch)
    assert version.deb == f"{major}.{minor}.{patch}-1.1"
    assert version.rpm == f"{major}.{minor}.{patch}-150500.1.1"  # pkgs.k8s.io's rpm release
    assert parse_package(version.deb) == parse_package(version.rpm) == version


@pytest.mark.parametrize("text", ["", "v1", "1.31.", "v1.31.4-rc.1", "1.031.4", "v1.31.4 ; rm -rf /", "V1.31.4", "x"])
def test_invalid_versions_are_refused(text):
    with pytest.raises(InvalidVersionError):
        Version.parse(text)


def test_targets_are_patch_or_minor():
    assert parse_target("1.33") == Minor(1, 33)
    assert parse_target("v1.33.2") == Version(1, 33, 2)
    with pytest.raises(InvalidVersionError, match=r"vMAJOR\.MINOR"):
        parse_target("1")


def test_catalog_parsing_and_errors():
    catalog = parse_catalog("# mirror\nv1.30.1\n1.30.0  # first\n\nv1.31.0\n")
    assert catalog.versions == (Version(1, 30, 0), Version(1, 30, 1), Version(1, 31, 0))
    assert catalog.newest(Minor(1, 30)) == Version(1, 30, 1)
    assert catalog.newest(Minor(1, 30), excluding=frozenset({Version(1, 30, 1)})) == Version(1, 30, 0)
    with pytest.raises(InvalidCatalogError, match=r"mirror\.txt:2"):
        parse_catalog("v1.30.0\nbogus\n", source="mirror.txt")
    with pytest.raises(InvalidCatalogError, match="no versions"):
        parse_catalog("# nothing\n")


def test_builtin_catalog_covers_every_minor_from_124():
    catalog = builtin_catalog()
    minors = sorted({v.minor for v in catalog.versions})
    assert minors[0] == 24 and minors == list(range(24, minors[-1] + 1))
    assert all(catalog.patches(Minor(1, m))[0] == Version(1, m, 0) for m in minors)


def test_skew_limits_follow_the_policy():
    assert kubelet_max_skew(Minor(1, 24)) == 2 and kubelet_max_skew(Minor(1, 25)) == 3
    assert kubeadm_kubelet_skew(Minor(1, 28)) == 1 and kubeadm_kubelet_skew(Minor(1, 29)) == 3
    assert lowest_kubelet_for_hop(Minor(1, 28)) == Minor(1, 27)
    assert lowest_kubelet_for_hop(Minor(1, 32)) == Minor(1, 29)
    assert lowest_kubelet_for_hop(Minor(1, 29)) == Minor(1, 26)


@pytest.mark.parametrize("name", ["Prod", "1prod", "prod-", "a" * 64, "pr od", "../etc", ""])
def test_bad_names(name):
    with pytest.raises(InvalidNameError):
        validate_name(name)
