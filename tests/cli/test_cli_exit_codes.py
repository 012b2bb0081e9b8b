"""Exit 1 is for bugs only: inputs that used to end in a traceback's exit 1 now exit 2 with one line.

And the small ones found with them: `cluster skip` echoes the version it stored, says when it
replaced a reason, and refuses a reason that would break `cluster show`'s table.
"""

from __future__ import annotations

import pytest

from tests.cli.conftest import inventory_doc, node


@pytest.fixture
def prod(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return cli


@pytest.mark.parametrize("plan_id", ["99999999999999999999999", str(2**63), "0", "-5"])
def test_plans_show_of_an_id_no_ledger_can_hold_is_not_found(prod, plan_id):
    r = prod("plans", "show", "--", plan_id)
    assert r.code == 2, r
    assert r.err.startswith("error: no plan with id ") and r.err.count("\n") == 1


@pytest.mark.parametrize("value", ["10001", "100000000000000000000000", "0"])
def test_max_unavailable_beyond_its_bound_is_bad_usage(prod, value):
    state = prod.write("inv.json", inventory_doc(node("cp-1", "v1.30.6", cp=True), node("w-1", "v1.30.6")))
    r = prod("plan", "prod", "--to", "v1.31", "--state", str(state), "--max-unavailable", value)
    assert r.code == 2, r
    assert "--max-unavailable must be between 1 and 10000" in r.err


def test_max_unavailable_at_its_bound_plans(prod):
    state = prod.write("inv.json", inventory_doc(node("cp-1", "v1.30.6", cp=True), node("w-1", "v1.30.6")))
    r = prod("plan", "prod", "--to", "v1.31", "--state", str(state), "--max-unavailable", "10000", "-o", "json")
    assert r.code == 0, r
    assert r.json()["strategy"]["max_unavailable"] == 10000


def test_skip_echoes_the_normalised_version(prod):
    r = prod("cluster", "skip", "prod", " v1.31.3 ", "--reason", "CVE-2026-1")
    assert (r.code, r.out) == (0, "prod: plans will skip v1.31.3\n")
    r = prod("cluster", "skip", "prod", "1.31.4", "--reason", "regression", "-o", "json")
    assert r.json()["skipped"] == "v1.31.4" and r.json()["replaced_reason"] is None
    r = prod("cluster", "unskip", "prod", " 1.31.3")
    assert r.out == "prod: v1.31.3 is allowed again\n"


def test_re_skipping_says_the_reason_was_replaced(prod):
    assert prod("cluster", "skip", "prod", "v1.31.3", "--reason", "CVE-2026-1").code == 0
    r = prod("cluster", "skip", "prod", "v1.31.3", "--reason", "kube-proxy regression")
    assert r.code == 0
    assert "v1.31.3 was already skipped; its reason was 'CVE-2026-1', now it is 'kube-proxy regression'" in r.out
    r = prod("cluster", "skip", "prod", "v1.31.3", "--reason", "kube-proxy regression", "-o", "json")
    assert r.json()["replaced_reason"] is None  # the same reason again replaces nothing
    shown = prod("cluster", "show", "prod", "-o", "json").json()
    assert [(s["version"], s["reason"]) for s in shown["skipped_versions"]] == [("v1.31.3", "kube-proxy regression")]


@pytest.mark.parametrize("reason", ["line one\nline two", "tab\there", "cr\rreturn", "bell\a", "x" * 501])
def test_a_reason_that_would_break_the_table_is_refused(prod, reason):
    r = prod("cluster", "skip", "prod", "v1.31.3", "--reason", reason)
    assert r.code == 2 and "--reason" in r.err and r.err.count("\n") == 1
    shown = prod("cluster", "show", "prod")
    assert "skipped versions: none" in shown.out
