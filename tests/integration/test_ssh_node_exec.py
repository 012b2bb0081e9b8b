"""`upgrader node exec` over SSH to a real OpenSSH server: host-key refusals exit 2, the opt-in is an event."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli.conftest import KUBECONFIG, Cli
from tests.integration.sshd import keygen
from upgrader.ledger import db


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def _register(cli: Cli, server, known_hosts: Path) -> None:
    kubeconfig = cli.write("kubeconfig", KUBECONFIG)
    added = cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig), "--ssh-user", "root", "--ssh-port",
                str(server.port), "--ssh-identity", str(server.user_key), "--ssh-known-hosts", str(known_hosts))
    assert added.code == 0, added.err
    assert cli("cluster", "node-address", "prod", "cp-1", "127.0.0.1").code == 0


def _events(cli: Cli, kind: str) -> list:
    with db.open_ledger(str(cli.db)) as ledger, ledger.unit_of_work() as uow:
        return [e for e in uow.repo.list_events() if e.kind == kind]


def test_output_exit_code_and_arguments_pass_through(sshd_server, cli):
    _register(cli, sshd_server, sshd_server.known_hosts())
    result = cli("node", "exec", "prod", "cp-1", "--", "sh", "-c", 'echo "$1"; echo oops >&2; exit 7', "sh",
                 "it's a $(test); `x`")
    assert (result.code, result.out, result.err) == (7, "it's a $(test); `x`\n", "oops\n")
    as_json = cli("node", "exec", "prod", "cp-1", "-o", "json", "--", "echo", "hi")
    assert as_json.code == 0 and as_json.json() == {"exit_code": 0, "stdout": "hi\n", "stderr": ""}
    marker = cli.tmp / "late"
    slow = cli("node", "exec", "prod", "cp-1", "--timeout", "1", "--", "sh", "-c", f"sleep 2; touch {marker}")
    assert slow.code == 124 and "timed out after 1s" in slow.err
    time.sleep(2.5)
    assert not marker.exists()  # the command was stopped on the node, not only locally


def test_an_unknown_key_is_refused_and_the_opt_in_is_recorded(sshd_server, cli):
    known = cli.tmp / "known_hosts"
    known.write_text("")
    _register(cli, sshd_server, known)
    refused = cli("node", "exec", "prod", "cp-1", "--", "true")
    assert refused.code == 2
    assert "host key of node cp-1 (127.0.0.1 port" in refused.err
    assert "`upgrader node exec prod cp-1 --accept-new-host-keys -- true`" in refused.err
    assert refused.err.count("\n") == 1 and known.read_text() == ""
    accepted = cli("node", "exec", "prod", "cp-1", "--accept-new-host-keys", "--", "echo", "trusted")
    assert (accepted.code, accepted.out) == (0, "trusted\n"), accepted.err
    assert known.read_text().strip()
    [event] = _events(cli, "host-key-opt-in")
    assert event.cluster == "prod" and event.actor and event.host
    assert event.data["node"] == "cp-1" and event.data["address"] == "127.0.0.1"
    assert "Permanently added" in event.data["added"][0]
    assert "--accept-new-host-keys" in event.command_line
    assert cli("node", "exec", "prod", "cp-1", "--", "true").code == 0  # known now: strict mode is enough


def test_a_changed_key_is_refused_even_with_the_opt_in(sshd_server, cli, tmp_path):
    other = keygen(tmp_path / "impostor", "impostor")
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    known = cli.write("known_hosts", f"[127.0.0.1]:{sshd_server.port} {kind} {blob}\n")
    _register(cli, sshd_server, known)
    for extra in ([], ["--accept-new-host-keys"]):
        result = cli("node", "exec", "prod", "cp-1", *extra, "--", "true")
        assert result.code == 2 and "has CHANGED" in result.err and "man-in-the-middle" in result.err, result.err
