"""`upgrader rollback` with bad input: a one-line error and the documented exit code, nothing recorded."""

from __future__ import annotations

import pytest

from tests.cli.conftest import Cli, one_line


def test_rollback_of_an_unknown_cluster_is_refused(cli: Cli, added: None) -> None:
    for args in (("rollback", "nope"), ("rollback", "nope", "--dry-run", "-o", "json")):
        r = cli(*args)
        assert r.code == 2 and r.out == "", args
        assert one_line(r) == "error: no cluster named 'nope' (see `upgrader cluster list`)\n"


def test_rollback_without_a_snapshot_names_the_command_that_takes_one(cli: Cli, added: None) -> None:
    for args in (("rollback", "prod", "--dry-run"), ("rollback", "prod", "--to", "last-known-good", "--yes")):
        r = cli(*args)
        assert r.code == 3 and r.out == "", args
        assert "`upgrader snapshot create prod`" in one_line(r)


@pytest.mark.parametrize(("to", "said"), [("yesterday", "--to 'yesterday': expected a snapshot id or "
                                                        "last-known-good"),
                                          ("²", "--to '²': expected a snapshot id"),
                                          ("42", "no snapshot with id 42")])
def test_rollback_to_something_that_is_no_snapshot_is_refused(cli: Cli, added: None, to: str, said: str) -> None:
    r = cli("rollback", "prod", "--to", to, "--dry-run")
    assert r.code == 2 and r.out == ""
    assert said in one_line(r)
