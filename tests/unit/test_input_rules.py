"""The small grammars at the edge (durations, fault specs, versions) match whole ASCII strings."""

from __future__ import annotations

import pytest

from upgrader.cli.sandbox import parse_duration
from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version, parse_target
from upgrader.errors import InvalidVersionError, UsageError
from upgrader.sandbox import faults

ARABIC_ONE = "\u0661"


@pytest.mark.parametrize("text", [f"{ARABIC_ONE}s", "5s\n5", "1e9", "5 s", "-1s", "9999999999s"])
def test_a_duration_is_plain_ascii_digits_and_a_unit(text):
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize("spec", ["kubeadm-apply-fails:cp-1\n@v1.31", f"node-not-ready:cp-{ARABIC_ONE}",
                                  f"apiserver-unready@v1.3{ARABIC_ONE}", "node-not-ready:cp-1/..\n"])
def test_a_fault_spec_is_matched_whole(spec):
    with pytest.raises(UsageError, match="invalid fault"):
        faults.parse(spec, nodes=["cp-1"])


@pytest.mark.parametrize("text", [f"v1.3{ARABIC_ONE}.0", "v1.31.0\nv1.32.0", "v1.31.0\x00", "v\uff11.31.0"])
def test_a_version_is_plain_ascii(text):
    with pytest.raises(InvalidVersionError):
        Version.parse(text)
    with pytest.raises(InvalidVersionError):
        parse_target(text)


def test_surrounding_whitespace_is_normalised_away():
    assert str(Version.parse(" v1.31.3\n")) == "v1.31.3" and str(parse_target("1.31 ")) == "v1.31"


def test_an_excerpt_shows_the_start_and_the_length():
    assert excerpt("x" * 1000) == repr("x" * 60) + "... (1000 characters)"
    assert excerpt("a\nb") == "'a\\nb'"
    assert excerpt(b"\x00" * 100).endswith("... (100 bytes)")
    assert len(excerpt(list(range(10_000)))) < 100


@pytest.mark.parametrize("text", ["999999999h", "169h", "604801"])
def test_a_duration_over_a_week_is_refused(text):
    with pytest.raises(UsageError, match="over a week"):
        parse_duration(text)


def test_a_week_is_the_longest_duration():
    assert parse_duration("168h") == 7 * 24 * 3600
