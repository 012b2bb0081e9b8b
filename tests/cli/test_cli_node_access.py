"""`cluster add|set --ssh-*`, `cluster node-address`, `cluster show` and `node exec` (local kind), end to end."""

from __future__ import annotations

from upgrader.ledger import db


def _events(cli, kind: str) -> list:
    with db.open_ledger(str(cli.db)) as ledger, ledger.unit_of_work() as uow:
        return [e for e in uow.repo.list_events() if e.kind == kind]


def test_ssh_settings_are_stored_per_cluster_and_per_node_and_shown(cli, kubeconfig):
    added = cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig), "--ssh-user", "ops", "--ssh-port", "2200",
                "--ssh-identity", "/keys/id_ed25519", "--ssh-jump", "ops@bastion:22", "--ssh-option",
                "ServerAliveInterval=10", "--ssh-known-hosts", "/keys/known_hosts", "-o", "json")
    assert added.code == 0, added.err
    assert added.json()["transport"] == {
        "kind": "ssh", "user": "ops", "port": 2200, "identity": "/keys/id_ed25519", "jump": "ops@bastion:22",
        "options": {"ServerAliveInterval": "10"}, "known_hosts": "/keys/known_hosts"}
    assert cli("cluster", "set", "prod", "--node", "cp-1", "--ssh-user", "root", "--ssh-option",
               "Compression=yes").code == 0
    assert cli("cluster", "node-address", "prod", "cp-1", "10.0.0.11").code == 0
    assert cli("cluster", "node-address", "prod", "cp-2", "fe80::2").code == 0
    shown = cli("cluster", "show", "prod", "-o", "json").json()
    nodes = {n["node"]: n for n in shown["node_access"]["nodes"]}
    assert nodes["cp-1"]["address"] == "10.0.0.11"
    assert (nodes["cp-1"]["user"], nodes["cp-1"]["port"], nodes["cp-1"]["address_from"]) == ("root", 2200, "set")
    assert nodes["cp-1"]["options"] == {"ServerAliveInterval": "10", "Compression": "yes"}
    assert (nodes["cp-2"]["user"], nodes["cp-2"]["address"]) == ("ops", "fe80::2")
    table = cli("cluster", "show", "prod")
    assert "nodes via:   ssh user=ops port=2200 identity=/keys/id_ed25519 jump=ops@bastion:22" in table.out
    assert "cp-1  10.0.0.11  set" in table.out
    # clearing: a node's address, a node's overrides, a cluster setting
    assert cli("cluster", "node-address", "prod", "cp-2", "--clear").code == 0
    assert cli("cluster", "set", "prod", "--node", "cp-1", "--unset", "node").code == 0
    assert cli("cluster", "set", "prod", "--unset", "jump", "--ssh-option", "ServerAliveInterval=").code == 0
    transport = cli("cluster", "show", "prod", "-o", "json").json()["transport"]
    assert transport == {"kind": "ssh", "user": "ops", "port": 2200, "identity": "/keys/id_ed25519",
                         "known_hosts": "/keys/known_hosts"}
    changes = _events(cli, "node-access-changed")
    assert len(changes) == 6 and changes[0].data["after"]["nodes"]["cp-1"]["user"] == "root"


def test_a_cluster_without_settings_is_reached_over_ssh_at_its_nodes_internal_ip(cli, kubeconfig):
    from datetime import UTC, datetime

    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    with db.open_ledger(str(cli.db)) as ledger, ledger.unit_of_work() as uow:  # as `inventory` stores one
        uow.repo.record_observation(cluster="prod", observed_at=datetime.now(UTC), fingerprint="f", source="live",
                                    inventory={"cluster": "prod", "nodes": [{"name": "cp-1", "internal_ip": "10.1.2.3"},
                                                                            {"name": "worker-1"}]})
        uow.commit()
    assert cli("cluster", "node-address", "prod", "worker-2", "w2.example.com").code == 0
    shown = cli("cluster", "show", "prod", "-o", "json").json()
    assert shown["node_access"]["kind"] == "ssh"
    found = {n["node"]: (n["address"], n["address_from"]) for n in shown["node_access"]["nodes"]}
    assert found == {"cp-1": ("10.1.2.3", "InternalIP"), "worker-1": ("worker-1", "name"),
                     "worker-2": ("w2.example.com", "set")}


def test_unsafe_or_malformed_settings_are_refused_with_one_line_and_nothing_stored(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    for args, says in [
        (["--ssh-option", "StrictHostKeyChecking=no"], "not allowed"),
        (["--ssh-option", "UserKnownHostsFile=/dev/null"], "not allowed"),
        (["--ssh-option", "ProxyCommand=nc %h %p"], "runs a local command"),
        (["--ssh-option", "LocalCommand=id"], "not allowed"),
        (["--ssh-option", "permitlocalcommand=yes"], "not allowed"),
        (["--ssh-option", "XAuthLocation=/tmp/run-me"], "allowed: AddressFamily"),
        (["--ssh-option", "ForwardAgent=yes"], "not allowed"),
        (["--ssh-option", "NoValue"], "KEY=VALUE"),
        (["--ssh-user", "-oProxyCommand=sh"], "must not start with '-'"),
        (["--ssh-user", "ops admin"], "invalid ssh user"),
        (["--ssh-jump", "bastion; rm -rf /"], "invalid ssh jump"),
        (["--ssh-identity", "/keys/my key"], "no spaces"),
        (["--node", "cp-1", "--unset", "colour"], "cannot unset"),
        (["--node", "Bad_Node", "--ssh-user", "ops"], "invalid node name"),
        ([], "nothing to change"),
    ]:
        result = cli("cluster", "set", "prod", *args)
        assert result.code == 2, (args, result.err)
        assert says in result.err and result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    bad = cli("cluster", "node-address", "prod", "cp-1", "10.0.0.1:22")
    assert bad.code == 2 and "invalid node address" in bad.err
    port = cli("cluster", "set", "prod", "--ssh-port", "70000")
    assert port.code == 2
    assert cli("cluster", "show", "prod", "-o", "json").json()["transport"] is None
    assert _events(cli, "node-access-changed") == []


def test_a_sandbox_cluster_keeps_its_transport(cli, kubeconfig):
    assert cli("cluster", "add", "demo", "--kubeconfig", str(kubeconfig)).code == 0
    with db.open_ledger(str(cli.db)) as ledger, ledger.unit_of_work() as uow:
        uow.repo.set_cluster_transport("demo", {"kind": "sandbox", "dir": str(cli.tmp)})
        uow.commit()
    result = cli("cluster", "set", "demo", "--ssh-user", "ops")
    assert result.code == 2 and "sandbox" in result.err
    assert "nodes via:   sandbox" in cli("cluster", "show", "demo").out


def test_node_exec_runs_through_a_local_transport_and_passes_the_exit_code(cli, kubeconfig):
    assert cli("cluster", "add", "here", "--kubeconfig", str(kubeconfig), "--transport", "local").code == 0
    result = cli("node", "exec", "here", "cp-1", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.code, result.out, result.err) == (3, "out\n", "err\n")
    as_json = cli("node", "exec", "here", "cp-1", "-o", "json", "--", "printf", "%s|", "a b", "$(x)")
    assert as_json.code == 0 and as_json.json() == {"exit_code": 0, "stdout": "a b|$(x)|", "stderr": ""}
    slow = cli("node", "exec", "here", "cp-1", "--timeout", "1s", "--", "sleep", "20")
    assert slow.code == 124 and "timed out" in slow.err
    assert cli("node", "exec", "here", "cp-1").code == 2  # no command
    missing = cli("node", "exec", "nope", "cp-1", "--", "true")
    assert missing.code == 2 and "no cluster named 'nope'" in missing.err
    assert "nodes via:   this machine" in cli("cluster", "show", "here").out
    mixed = cli("cluster", "add", "other", "--kubeconfig", str(kubeconfig), "--transport", "local", "--ssh-user", "x")
    assert mixed.code == 2 and "--transport ssh" in mixed.err
    assert cli("cluster", "set", "here", "--transport", "ssh").code == 0
    assert cli("cluster", "show", "here", "-o", "json").json()["transport"] == {"kind": "ssh"}
    assert cli("cluster", "set", "here", "--transport", "telnet").code == 2


def test_node_exec_on_an_unreachable_node_exits_2_saying_so(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig), "--ssh-port", "1",
               "--ssh-known-hosts", str(cli.tmp / "known_hosts")).code == 0
    assert cli("cluster", "node-address", "prod", "cp-1", "127.0.0.1").code == 0
    result = cli("node", "exec", "prod", "cp-1", "--", "true")
    assert result.code == 2
    assert result.err.startswith("error: node cp-1 (127.0.0.1 port 1) is unreachable:"), result.err
    assert "refused" in result.err


def test_sigterm_unwinds_like_ctrl_c_and_stops_the_node_command(cli, kubeconfig, tmp_path):
    """`kill PID` ends a command as Ctrl-C does: exit 130, no traceback, and the command it ran is stopped."""
    import signal
    import subprocess
    import sys
    import time

    assert cli("cluster", "add", "here", "--kubeconfig", str(kubeconfig), "--transport", "local").code == 0
    marker = tmp_path / "still-running"
    proc = subprocess.Popen([sys.executable, "-m", "upgrader", "node", "exec", "here", "cp-1", "--", "sh", "-c",
                             f"echo started; sleep 3; touch {marker}"],
                            env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(p.name == "sh" for p in _children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "Traceback" not in err, (proc.returncode, err)  # not -15: it unwound
    time.sleep(4)
    assert not marker.exists()  # the node command was stopped with it


def _children(pid):
    from pathlib import Path

    class Child:
        def __init__(self, name):
            self.name = name

    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                found.append(Child(Path(f"/proc/{child}/comm").read_text().strip()))
            except OSError:
                continue
    return found


def test_where_etcdctl_runs_is_a_cluster_setting_of_an_ssh_cluster(cli, kubeconfig):
    added = cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig), "--ssh-user", "ops", "--etcd-tools", "node",
                "-o", "json")
    assert added.code == 0, added.err
    assert added.json()["transport"] == {"kind": "ssh", "user": "ops", "etcd_tools": "node"}
    shown = cli("cluster", "show", "prod", "-o", "json").json()
    assert shown["node_access"]["etcd_tools"] == "node" and shown["transport"]["etcd_tools"] == "node"
    assert "etcd tools:  on the first control-plane node (node)" in cli("cluster", "show", "prod").out
    assert cli("cluster", "set", "prod", "--etcd-tools", "host").code == 0
    assert cli("cluster", "show", "prod", "-o", "json").json()["node_access"]["etcd_tools"] == "host"
    assert cli("cluster", "set", "prod", "--unset", "etcd_tools").code == 0
    assert "etcd_tools" not in cli("cluster", "show", "prod", "-o", "json").json()["transport"]
    assert "etcd tools:  this machine's (host)" in cli("cluster", "show", "prod").out
    # a setting the stored document and the etcd access read: refused when it is anything else
    for args, says in [(["--etcd-tools", "both"], "invalid etcd tools setting"),
                       (["--node", "cp-1", "--etcd-tools", "node"], "whole cluster"),
                       (["--transport", "local", "--etcd-tools", "node"], "--etcd-tools")]:
        before = cli("cluster", "show", "prod", "-o", "json").json()["transport"]
        refused = cli("cluster", "set", "prod", *args)
        assert refused.code == 2 and says in refused.err and refused.err.count("\n") <= 2, (args, refused.err)
        assert cli("cluster", "show", "prod", "-o", "json").json()["transport"] == before
    assert cli("cluster", "add", "other", "--kubeconfig", str(kubeconfig), "--transport", "local",
               "--etcd-tools", "node").code == 2
