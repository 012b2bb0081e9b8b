"""Every kind of name is validated as a whole ASCII string, through the real entry point.

A trailing newline (which ``^...$`` lets through), a NUL, ``..``, a slash and non-ASCII digits
(``\\d`` accepts U+0661 as 1) are refused for clusters, nodes, sandboxes and snapshot labels, with
exit 2, a one-line message, and nothing written to the ledger.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cli.conftest import inventory_doc, node
from upgrader.domain.names import validate_name, validate_node_name, validate_snapshot_label
from upgrader.errors import InvalidNameError

ARABIC_ONE = "\u0661"
BAD = {
    "trailing newline": "prod\n",
    "leading newline": "\nprod",
    "dot-dot": "..",
    "climb": "../prod",
    "slash": "a/b",
    "non-ascii digit": f"prod{ARABIC_ONE}",
    "fullwidth letter": "pr\uff4fd",
    "space": "prod ",
    "upper case": "Prod",
    "empty": "",
    "too long": "p" * 64,
}
BAD_WITH_NUL = {**BAD, "nul": "prod\x00x"}  # argv cannot carry a NUL: tested on the rule itself


def _rows(cli, table: str) -> int:
    if not cli.db.exists():
        return 0
    with sqlite3.connect(cli.db) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


@pytest.mark.parametrize("name", list(BAD.values()), ids=list(BAD))
def test_cluster_add_refuses_the_name_and_writes_nothing(cli, kubeconfig, name):
    r = cli("cluster", "add", name, "--kubeconfig", str(kubeconfig))
    assert r.code == 2, r
    assert "invalid cluster name" in r.err and r.err.count("\n") == 1
    assert _rows(cli, "clusters") == 0


def test_every_cluster_verb_validates_the_name_before_the_ledger(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    state = cli.write("inv.json", inventory_doc(node("cp-1", "v1.30.6", cp=True)))
    for argv in (["cluster", "show", "prod\n"], ["cluster", "remove", "prod\n"],
                 ["cluster", "skip", "prod\n", "v1.31.3", "--reason", "x"], ["cluster", "unskip", "prod\n", "v1.31.3"],
                 ["plan", "prod\n", "--to", "v1.31", "--state", str(state)], ["plans", "list", "--cluster", "../prod"]):
        r = cli(*argv)
        assert (r.code, "invalid cluster name" in r.err) == (2, True), (argv, r)
    assert _rows(cli, "skipped_versions") == 0 and _rows(cli, "plans") == 0
    assert cli("cluster", "show", "prod").code == 0


@pytest.mark.parametrize("bad", ["worker-1\n", "worker-1\x00", "../worker-1", "a/b", f"worker-{ARABIC_ONE}", "..", ""])
def test_an_inventory_node_name_is_matched_whole(cli, kubeconfig, bad):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    doc = inventory_doc(node("cp-1", "v1.30.6", cp=True), node("worker-1", "v1.30.6"), node(bad, "v1.30.6"))
    r = cli("plan", "prod", "--to", "v1.31", "--state", str(cli.write("inv.json", doc)))
    assert r.code == 2, r
    assert "nodes[2].name" in r.err and _rows(cli, "plans") == 0


def test_a_node_listed_twice_with_a_trailing_newline_is_not_upgraded_twice(cli, kubeconfig):
    """The reported case: `worker-1` and `worker-1\\n` passed the duplicate check."""
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    doc = inventory_doc(node("cp-1", "v1.30.6", cp=True), node("worker-1", "v1.30.6"), node("worker-1\n", "v1.30.6"))
    r = cli("plan", "prod", "--to", "v1.31", "--state", str(cli.write("inv.json", doc)))
    assert r.code == 2 and "not a valid node name" in r.err


@pytest.mark.parametrize("name", list(BAD_WITH_NUL.values()), ids=list(BAD_WITH_NUL))
@pytest.mark.parametrize("what", ["cluster", "sandbox"])
def test_cluster_and_sandbox_names_share_the_rule(name, what):
    with pytest.raises(InvalidNameError, match=f"invalid {what} name"):
        validate_name(name, what=what)


@pytest.mark.parametrize("label", ["pre\n", "pre\x00", "..", "a/b", f"pre-{ARABIC_ONE}", "-pre", "pre-", "", "x" * 64,
                                   "Pre", "pré"])
def test_snapshot_labels_are_matched_whole(label):
    with pytest.raises(InvalidNameError, match="invalid snapshot label"):
        validate_snapshot_label(label)


@pytest.mark.parametrize("name", ["cp-1\n", "cp-1\x00", "..", "a/b", f"cp-{ARABIC_ONE}", "-cp", "cp.", "x" * 254])
def test_node_names_are_matched_whole(name):
    with pytest.raises(InvalidNameError, match="invalid node name"):
        validate_node_name(name)


def test_good_names_of_each_kind_pass_unchanged():
    assert validate_name("prod-eu-1") == "prod-eu-1"
    assert validate_name("s" * 63, what="sandbox") == "s" * 63
    assert validate_node_name("ip-10-0-0-1.eu-west-1.compute.internal") == "ip-10-0-0-1.eu-west-1.compute.internal"
    assert validate_snapshot_label("before-v1.31_2") == "before-v1.31_2"


@given(st.text(max_size=70))
def test_an_accepted_name_is_plain_ascii_with_no_path_or_control_character(text):
    try:
        validate_name(text)
    except InvalidNameError:
        return
    assert text.isascii() and text.isprintable() and "/" not in text and "." not in text
    assert 1 <= len(text) <= 63 and text == text.strip()


@given(st.text(max_size=80))
def test_an_accepted_label_or_node_name_has_no_path_or_control_character(text):
    for check in (validate_snapshot_label, validate_node_name):
        try:
            check(text)
        except InvalidNameError:
            continue
        assert text.isascii() and text.isprintable() and "/" not in text and text not in {".", ".."}
        assert text == text.strip() and not text.startswith(".")
