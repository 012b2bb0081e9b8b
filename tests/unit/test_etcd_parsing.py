"""The pure rules that read etcdctl/etcdutl output: capabilities by help text, versions, JSON answers.

The help texts are in etcd_help_texts.py: the 3.4 ones recorded from this machine's etcdctl, the 3.6
ones rendered from the v3.6.14 sources (said there; no etcd 3.6 binary is installed here).
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.unit import etcd_help_texts as texts
from upgrader.etcd import parsing

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)


def test_etcdctl_34_has_snapshot_status_and_restore_without_bump_flags() -> None:
    assert parsing.usage_names(texts.ETCDCTL_34_STATUS, "etcdctl", "snapshot status")
    assert parsing.usage_names(texts.ETCDCTL_34_RESTORE, "etcdctl", "snapshot restore")
    assert not parsing.lists_flags(texts.ETCDCTL_34_RESTORE, "--bump-revision", "--mark-compacted")
    assert parsing.lists_flags(texts.ETCDCTL_34_RESTORE, "--skip-hash-check", "--data-dir")


def test_etcdctl_36_help_for_a_removed_command_is_the_parent_help_and_does_not_count() -> None:
    # 3.6 prints this (and exits 0) for `etcdctl snapshot status --help` and `etcdctl snapshot status f.db`.
    assert not parsing.usage_names(texts.ETCDCTL_36_SNAPSHOT_STATUS, "etcdctl", "snapshot status")
    assert not parsing.usage_names(texts.ETCDCTL_36_SNAPSHOT_STATUS, "etcdctl", "snapshot restore")
    # The same parent help on 3.4 lists status among its commands, yet is still not status's own help.
    assert "status" in texts.ETCDCTL_34_SNAPSHOT
    assert not parsing.usage_names(texts.ETCDCTL_34_SNAPSHOT, "etcdctl", "snapshot status")


def test_etcdutl_36_restore_has_the_bump_flags_in_cobras_default_layout() -> None:
    assert parsing.usage_names(texts.ETCDUTL_36_RESTORE, "etcdutl", "snapshot restore")
    assert not parsing.usage_names(texts.ETCDUTL_36_RESTORE, "etcdctl", "snapshot restore")
    assert parsing.lists_flags(texts.ETCDUTL_36_RESTORE, "--bump-revision", "--mark-compacted")
    assert not parsing.lists_flags(texts.ETCDUTL_36_RESTORE, "--bump")  # a prefix is not a flag


@given(tool=st.sampled_from(["etcdctl", "etcdutl"]), words=st.lists(WORD, min_size=1, max_size=3),
       template=st.sampled_from(["USAGE:\n\t{}\n", "Usage:\n  {}\n", "NAME:\n\tx\n\nUSAGE:\n\n\t{}\n"]))
def test_a_command_is_found_only_in_its_own_usage_line(tool: str, words: list[str], template: str) -> None:
    command = " ".join(words)
    own = template.format(f"{tool} {command} <arg> [flags]")
    assert parsing.usage_names(own, tool, command)
    parent = template.format(f"{tool} {' '.join(words[:-1])} <subcommand> [flags]")
    assert not parsing.usage_names(parent, tool, command)
    assert not parsing.usage_names(f"COMMANDS:\n\t{command}\n", tool, command)


def test_versions() -> None:
    assert parsing.parse_version("etcdctl version: 3.4.23\nAPI version: 3.4\n", "etcdctl") == "3.4.23"
    assert parsing.parse_version("etcdutl version: 3.6.5\nAPI version: 3.6\n", "etcdutl") == "3.6.5"
    assert parsing.parse_version("etcdctl version: 3.4.23\n", "etcdutl") is None
    assert parsing.parse_version("bash: etcdutl: command not found", "etcdutl") is None
    assert parsing.major_minor("3.5.16-0") == (3, 5)
    assert parsing.major_minor("v3.6.0") == (3, 6)
    assert parsing.major_minor("latest") is None


@given(major=st.integers(0, 99), minor=st.integers(0, 99), patch=st.integers(0, 99),
       suffix=st.sampled_from(["", "-0", "+git", "-rc.1"]), v=st.booleans())
def test_major_minor_of_any_etcd_version_or_image_tag(major: int, minor: int, patch: int, suffix: str,
                                                     v: bool) -> None:
    assert parsing.major_minor(f"{'v' if v else ''}{major}.{minor}.{patch}{suffix}") == (major, minor)


def test_member_status_and_health_json_as_etcdctl_34_prints_them() -> None:
    # recorded from etcdctl 3.4.23 against a one-member etcd
    listed = parsing.parse_member_list(
        '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"raft_term":2},'
        '"members":[{"ID":13668033151171901709,"name":"a","peerURLs":["http://127.0.0.1:23801"],'
        '"clientURLs":["http://127.0.0.1:23791"]}]}')
    assert listed == [parsing.ListedMember("bdae9bbc11dd390d", "a", ("http://127.0.0.1:23801",),
                                           ("http://127.0.0.1:23791",))]
    status = parsing.parse_endpoint_status(
        '[{"Endpoint":"http://127.0.0.1:23791","Status":{"header":{"cluster_id":15118495548433857066,'
        '"member_id":13668033151171901709,"revision":2,"raft_term":2},"version":"3.4.23","dbSize":24576,'
        '"leader":13668033151171901709,"raftIndex":5,"raftTerm":2,"raftAppliedIndex":5,"dbSizeInUse":16384}}]')
    assert status == [parsing.EndpointStatus("http://127.0.0.1:23791", "bdae9bbc11dd390d", "bdae9bbc11dd390d",
                                             2, 24576, "3.4.23")]
    health = parsing.parse_endpoint_health(
        '[{"endpoint":"http://127.0.0.1:23791","health":true,"took":"3.62863ms"},'
        '{"endpoint":"http://127.0.0.1:1","health":false,"took":"5.000297138s","error":"context deadline exceeded"}]')
    assert health == {"http://127.0.0.1:23791": (True, None),
                      "http://127.0.0.1:1": (False, "context deadline exceeded")}


def test_snapshot_status_json_of_34_and_36() -> None:
    s34 = parsing.parse_snapshot_status('{"hash":371676512,"revision":202,"totalKey":205,"totalSize":53248}')
    assert (s34.hash, s34.revision, s34.total_keys, s34.total_size, s34.version) == (371676512, 202, 205, 53248, None)
    s36 = parsing.parse_snapshot_status(json.dumps({"hash": 1, "revision": 2, "totalKey": 3, "totalSize": 4,
                                                    "version": "3.6.0"}))
    assert s36.version == "3.6.0"


def test_malformed_answers_are_value_errors() -> None:
    for bad in ("", "not json", "[]", '{"members": [{"ID": "x"}]}'):
        try:
            parsing.parse_member_list(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")
    for bad in ("{}", '{"hash": 1}', "[1]", '{"hash": true, "revision": 1, "totalKey": 1, "totalSize": 1}'):
        try:
            parsing.parse_snapshot_status(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_last_line_takes_the_error_not_the_json_log_and_the_panic_of_a_crash() -> None:
    stderr = ('{"level":"warn","msg":"retrying of unary invoker failed","error":"rpc error"}\n'
              "Error: context deadline exceeded\n")
    assert parsing.last_line(stderr) == "Error: context deadline exceeded"
    crash = "unexpected fault address 0x7f\nfatal error: fault\npanic: freepages: failed\n\ngoroutine 1 [x]:\n" * 50
    assert parsing.last_line(crash) == "fatal error: fault"
    assert parsing.last_line('{"level":"error","msg":"m","error":"boom"}') == "boom"


@given(st.text(max_size=2000))
def test_last_line_is_one_short_line(text: str) -> None:
    line = parsing.last_line(text)
    assert "\n" not in line and len(line) <= parsing.OUTPUT_LIMIT + 3
