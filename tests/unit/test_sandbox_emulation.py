"""KEP-4330's emulation range as the sandbox's control-plane binaries hold it: the API server's refusal,
its /version fields, and the ``--help`` paragraph other tools read the range from (DOMAIN.md: v1.31
only itself; v1.32 n-1; from v1.33 n-3 with a floor of v1.31; nothing before v1.31)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.versions import Version
from upgrader.sandbox.apiserver import __main__ as apiserver_main
from upgrader.sandbox.apiserver import emulation, health
from upgrader.sandbox.node.tools.component_help import COMPONENTS, help_text

minors = st.integers(min_value=24, max_value=40)


def expected(minor: int) -> set[int]:
    """DOMAIN.md's rule, written out on its own."""
    if minor < 31:
        return set()
    if minor == 31:
        return {31}
    if minor == 32:
        return {31, 32}
    return set(range(max(31, minor - 3), minor + 1))


@given(binary=minors, asked=st.integers(min_value=20, max_value=45))
def test_the_api_server_accepts_exactly_the_range_of_its_binary(binary: int, asked: int) -> None:
    try:
        got = emulation.parse(f"1.{asked}", major=1, minor=binary)
    except emulation.EmulationError as e:
        assert asked not in expected(binary)
        if binary < 31:
            assert str(e) == "unknown flag: --emulated-version"
        else:
            low = min(expected(binary))
            assert str(e) == f"emulation version 1.{asked} is not between [1.{low}, 1.{binary}.0]"
    else:
        assert asked in expected(binary) and got == asked


@given(binary=minors, component=st.sampled_from(COMPONENTS), patch=st.integers(min_value=0, max_value=20))
def test_the_help_paragraph_names_the_same_range(binary: int, component: str, patch: int) -> None:
    text = help_text(component, f"v1.{binary}.{patch}")
    found = re.findall(r"kube=1\.(\d+)\.\.1\.(\d+) ?\((?:default=|default:)1\.(\d+)\)", text)
    if binary < 31:
        assert "--emulated-version" not in text and not found
    else:
        [(low, high, default)] = found
        assert set(range(int(low), int(high) + 1)) == expected(binary)
        assert int(default) == binary


def test_the_help_paragraph_has_each_release_s_wording() -> None:
    old = help_text("kube-scheduler", "v1.31.4")
    assert ("for example: '--emulated-version=wardle=1.2,kube=1.31'. Options are:\n"
            f"{' ' * 59}kube=1.31..1.31 (default=1.31)If the component is not specified, defaults to \"kube\"\n") in old
    new = help_text("kube-apiserver", "1.34.2")
    assert ("      --emulated-version strings" + " " * 27 + "The versions different components emulate their "
            "capabilities (APIs, features, ...) of.\n") in new
    pad = " " * 59
    assert (f"for example: '--emulated-version=wardle=1.2,kube=1.31'.\n{pad}Options are: "
            f"kube=1.31..1.34(default:1.34)\n{pad}If the component is not specified, defaults to \"kube\"\n") in new
    assert not new.endswith("\n")
    with pytest.raises(ValueError, match="not a control-plane component"):
        help_text("etcd", "v1.34.2")


@pytest.mark.parametrize(("value", "message"), [
    ("1.33.1", "patch version not allowed, got: kube=1.33.1"),
    ("wardle=1.2", "component not registered: wardle"),
    ("kube=abc", 'could not parse "abc" as version'),
    ("1.33,kube=1.32", "duplicate version flag, kube=1.33 and kube=1.32"),
])
def test_malformed_values_fail_as_component_base_says(value: str, message: str) -> None:
    with pytest.raises(emulation.EmulationError) as e:
        emulation.parse(value, major=1, minor=34)
    assert str(e.value) == message


def test_the_api_server_process_exits_1_on_a_refused_value(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        apiserver_main.parse_args(["--etcd-endpoints", "http://127.0.0.1:1", "--git-version", "v1.34.2",
                                   "--emulated-version", "kube=1.30"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r'E\d{4} \d\d:\d\d:\d\d\.000000       1 run\.go:72\] "command failed" '
                        r'err="emulation version 1\.30 is not between \[1\.31, 1\.34\.0\]"\n', err), err
    with pytest.raises(SystemExit):
        apiserver_main.parse_args(["--etcd-endpoints", "x", "--git-version", "v1.30.6", "--emulated-version", "1.30"])
    assert capsys.readouterr().err == "Error: unknown flag: --emulated-version\n"
    config = apiserver_main.parse_args(["--etcd-endpoints", "x", "--git-version", "v1.34.2",
                                        "--emulated-version", "kube=1.31"])
    assert config.emulated_minor == 31


@pytest.mark.parametrize(("git_version", "emulated", "fields"), [
    ("v1.31.4", 31, None),
    ("v1.32.3", 31, None),  # 1.32 emulates but /version has no emulation fields before 1.33
    ("v1.33.2", None, ("1", "33", "1", "32")),
    ("v1.34.2", 33, ("1", "33", "1", "32")),
])
def test_version_carries_emulation_fields_from_133_only(git_version: str, emulated: int | None,
                                                        fields: tuple[str, ...] | None) -> None:
    info = health.version_info(git_version, emulated_minor=emulated)
    keys = ("emulationMajor", "emulationMinor", "minCompatibilityMajor", "minCompatibilityMinor")
    if fields is None:
        assert not set(keys) & set(info)
    else:
        assert tuple(info[k] for k in keys) == fields
        assert list(info)[:7] == ["major", "minor", *keys, "gitVersion"]
    assert info["gitVersion"] == git_version and Version.parse(info["gitVersion"])
