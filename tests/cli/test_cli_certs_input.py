"""`upgrader certs` and `sandbox certs` with bad input: a one-line error and exit 2, nothing recorded."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli, one_line


@pytest.mark.parametrize("horizon", ["soon", "-1d", "99999d", "3w"])
def test_a_bad_horizon_is_refused(cli: Cli, added: None, horizon: str) -> None:
    for verb in ("check", "renew"):
        r = cli("certs", verb, "prod", "--horizon", horizon, "-o", "json")
        assert r.code == 2 and r.out == "", (verb, r)
        assert "invalid horizon" in one_line(r)


def test_an_unknown_cluster_is_refused(cli: Cli, added: None) -> None:
    for args in (("certs", "check", "nope"), ("certs", "renew", "nope", "--yes")):
        r = cli(*args)
        assert r.code == 2 and r.out == "", args
        assert one_line(r) == "error: no cluster named 'nope' (see `upgrader cluster list`)\n"


def test_an_unreachable_cluster_renews_nothing(cli: Cli, added: None) -> None:
    r = cli("certs", "renew", "prod", "--yes")
    assert r.code == 2 and r.out == ""
    assert "prod" in one_line(r)
    assert cli("runs", "list", "-o", "json").json() == []


@pytest.mark.parametrize(("value", "said"), [("10", "expected days or hours"), ("10x", "expected days or hours")])
def test_sandbox_certs_needs_days_or_hours(cli: Cli, value: str, said: str) -> None:
    r = cli("sandbox", "certs", "demo", "--expire-in", value)
    assert r.code == 2 and said in one_line(r)
