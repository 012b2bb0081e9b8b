"""`upgrader preflight` refuses bad input with one line and exit 2, before it reads the cluster or writes the ledger."""

from __future__ import annotations

import pytest


@pytest.fixture
def prod(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return cli


@pytest.mark.parametrize(("args", "message"), [
    (("--ignore", "etcd-health", "--reason", "x"), "error: --ignore: no check named 'etcd-health' (checks: api-ready, "
     "control-plane-ready, etcd, skew, cordoned-nodes, disruption-budgets, certificates, disk-space, kubeadm-backups, "
     "images, removed-apis)"),
    (("--ignore", "etcd"), "error: --ignore needs --reason TEXT"),
    (("--reason", "because"), "error: --reason explains an --ignore"),
    (("--ignore", "etcd", "--reason", "two\nlines"), "error: --reason must be one line"),
])
def test_bad_overrides_exit_2_with_one_line(prod, args, message):
    r = prod("preflight", "prod", "--to", "v1.31", *args)
    assert r.code == 2, r
    assert r.err.startswith(message) and r.err.count("\n") == 1 and "Traceback" not in r.err


def test_an_unknown_cluster_or_version_is_bad_usage(prod):
    missing = prod("preflight", "staging", "--to", "v1.31")
    assert missing.code == 2 and "no cluster named 'staging'" in missing.err
    bad = prod("preflight", "prod", "--to", "banana")
    assert bad.code == 2 and "banana" in bad.err


def test_an_unreachable_api_is_exit_2_and_says_where(prod):
    r = prod("preflight", "prod", "--to", "v1.31", "-o", "json")
    assert r.code == 2 and r.out == ""
    assert r.err.startswith("error: cluster prod: cannot reach the API at ") and r.err.count("\n") == 1
