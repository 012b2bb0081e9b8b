"""The node access rules (upgrader.domain.node_access) and how SshTransport builds ssh's argv."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.node_access import (
    ALLOWED_OPTIONS,
    OPTION_HINTS,
    SshTarget,
    parse_option,
    ssh_target,
    update_ssh,
    validate_address,
    validate_jump,
    validate_option,
    validate_path,
    validate_transport,
    validate_user,
)
from upgrader.errors import UsageError
from upgrader.nodes.ssh import SshTransport

VALIDATORS = [validate_user, validate_address, validate_jump, lambda v: validate_path(v, "identity")]
BAD_CHARS = st.sampled_from([" ", "\t", "\n", "\r", "\x00", "\x1b", "\x7f"])


@given(st.text(max_size=30), st.sampled_from(VALIDATORS))
def test_nothing_starting_with_a_dash_reaches_ssh(rest, validate):
    with pytest.raises(UsageError):
        validate("-" + rest)


@given(st.text(alphabet="abc", min_size=1, max_size=5), BAD_CHARS, st.text(alphabet="xyz", max_size=5),
       st.sampled_from(VALIDATORS))
def test_whitespace_and_control_characters_are_refused(head, bad, tail, validate):
    with pytest.raises(UsageError):
        validate(head + bad + tail)


# Every option this OpenSSH knows (`ssh -G` prints them), and those the review named: only the
# allowlisted ones pass.
SSH_OPTIONS = sorted({
    "host", "user", "hostname", "port", "addressfamily", "batchmode", "canonicalizefallbacklocal",
    "canonicalizehostname", "checkhostip", "compression", "controlmaster", "enablesshkeysign", "clearallforwardings",
    "exitonforwardfailure", "fingerprinthash", "forwardx11", "forwardx11trusted", "gatewayports",
    "gssapiauthentication", "gssapikeyexchange", "gssapidelegatecredentials", "gssapitrustdns",
    "hashknownhosts", "hostbasedauthentication", "identitiesonly", "kbdinteractiveauthentication",
    "nohostauthenticationforlocalhost", "passwordauthentication", "permitlocalcommand", "proxyusefdpass",
    "pubkeyauthentication", "requesttty", "sessiontype", "stdinnull", "forkafterauthentication",
    "streamlocalbindunlink", "stricthostkeychecking", "tcpkeepalive", "tunnel", "verifyhostkeydns",
    "visualhostkey", "updatehostkeys", "enableescapecommandline", "canonicalizemaxdots", "connectionattempts",
    "forwardx11timeout", "numberofpasswordprompts", "serveralivecountmax", "serveraliveinterval",
    "requiredrsasize", "ciphers", "hostkeyalgorithms", "hostbasedacceptedalgorithms", "kexalgorithms",
    "casignaturealgorithms", "loglevel", "macs", "securitykeyprovider", "pubkeyacceptedalgorithms",
    "xauthlocation", "identityfile", "canonicaldomains", "globalknownhostsfile", "userknownhostsfile",
    "sendenv", "setenv", "logverbose", "permitremoteopen", "addkeystoagent", "forwardagent", "connecttimeout",
    "tunneldevice", "canonicalizepermittedcnames", "controlpersist", "controlpath", "escapechar", "ipqos",
    "rekeylimit", "streamlocalbindmask", "syslogfacility", "remoteforward", "localforward", "dynamicforward",
    "hostkeyalias", "include", "match", "proxycommand", "proxyjump", "localcommand", "knownhostscommand",
    "pkcs11provider", "remotecommand", "identityagent", "certificatefile", "bindaddress", "bindinterface",
    "preferredauthentications", "pubkeyacceptedkeytypes", "ignoreunknown", "revokedhostkeys", "obscurekeystroketiming",
})
DANGEROUS = ("xauthlocation", "forwardx11", "forwardagent", "remoteforward", "localforward", "dynamicforward",
             "tunnel", "tunneldevice", "updatehostkeys", "verifyhostkeydns", "hostkeyalias", "canonicalizehostname",
             "include", "match", "permitremoteopen", "streamlocalbindunlink", "controlpath", "sendenv", "setenv",
             "stricthostkeychecking", "userknownhostsfile", "proxycommand", "localcommand", "permitlocalcommand",
             "knownhostscommand", "pkcs11provider", "securitykeyprovider", "nohostauthenticationforlocalhost",
             "loglevel", "batchmode", "controlmaster", "controlpersist", "remotecommand")


def _cased(key: str, data: st.DataObject) -> str:
    return "".join(c.upper() if data.draw(st.booleans()) else c for c in key)


@given(st.sampled_from(SSH_OPTIONS) | st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,20}", fullmatch=True), st.data())
def test_nothing_outside_the_allowlist_passes_whatever_its_case(key, data):
    cased = _cased(key, data)
    if key.lower() in ALLOWED_OPTIONS:
        assert validate_option(cased, "none") == (cased, "none")
        return
    with pytest.raises(UsageError, match="not allowed") as refused:
        validate_option(cased, "yes")
    assert "allowed: " in str(refused.value) and "ServerAliveInterval" in str(refused.value)
    with pytest.raises(UsageError, match="not allowed"):
        parse_option(f"{cased}=no")


def test_the_options_that_run_programs_forward_or_weaken_checks_are_not_on_the_allowlist():
    assert not set(DANGEROUS) & set(ALLOWED_OPTIONS)
    assert set(OPTION_HINTS) <= set(SSH_OPTIONS) and not set(OPTION_HINTS) & set(ALLOWED_OPTIONS)


def test_the_options_that_matter_most_are_refused():
    for text in ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "ProxyCommand=nc %h %p",
                 "LocalCommand=id", "PermitLocalCommand=yes", "KnownHostsCommand=/bin/true",
                 "XAuthLocation=/tmp/evil", "ForwardX11=yes", "ForwardAgent=yes", "RemoteForward=8080 localhost:80",
                 "LocalForward=8080 x:80", "DynamicForward=1080", "Tunnel=yes", "UpdateHostKeys=yes",
                 "VerifyHostKeyDNS=yes", "HostKeyAlias=other", "CanonicalizeHostname=yes", "Include=/tmp/x",
                 "Match=all", "PermitRemoteOpen=any", "ControlPath=/tmp/x", "SendEnv=LANG LC_ALL"):
        with pytest.raises(UsageError, match="not allowed"):
            parse_option(text)
    assert parse_option("ServerAliveInterval=10") == ("ServerAliveInterval", "10")
    assert parse_option("kexalgorithms=curve25519-sha256") == ("kexalgorithms", "curve25519-sha256")
    assert parse_option("Compression=") == ("Compression", "")  # the CLI's way to remove one
    assert parse_option("IdentityAgent=none") == ("IdentityAgent", "none")
    with pytest.raises(UsageError, match="takes only none"):
        parse_option("IdentityAgent=/tmp/other-agent.sock")
    with pytest.raises(UsageError, match=r"CertificateFile .* no spaces"):
        parse_option("CertificateFile=/a b")
    for bad in ("NoEquals", "Bad-Key=1", "Key=a\nb", "=x"):
        with pytest.raises(UsageError):
            parse_option(bad)


def test_good_values_pass():
    assert validate_user("ops_admin.1") == "ops_admin.1"
    for address in ("10.0.0.1", "cp-1.example.com", "fe80::1", "::1", "fe80::1%eth0"):
        assert validate_address(address) == address
    for jump in ("bastion", "ops@bastion:2222", "a@b,c@d:22", "ssh://ops@bastion:22", "[::1]:22", "none"):
        assert validate_jump(jump) == jump
    for bad in ("root@10.0.0.1", "10.0.0.1:22", "a b", "[::1]"):
        with pytest.raises(UsageError):
            validate_address(bad)


SETTINGS = {"kind": "ssh", "user": "ops", "port": 22, "identity": "/k/id", "jump": "bastion",
            "options": {"ServerAliveInterval": "10", "Compression": "yes"}, "known_hosts": "/k/known",
            "nodes": {"cp-1": {"address": "10.0.0.9", "user": "root", "options": {"Compression": "no"}},
                      "cp-2": {"port": 2222}}}


def test_a_node_override_wins_and_the_address_falls_back_to_internal_ip_then_name():
    one = ssh_target(SETTINGS, "cp-1", "192.168.1.1")
    assert (one.address, one.address_from, one.user, one.port, one.jump) == ("10.0.0.9", "set", "root", 22, "bastion")
    assert one.options == {"ServerAliveInterval": "10", "Compression": "no"}
    two = ssh_target(SETTINGS, "cp-2", "192.168.1.2")
    assert (two.address, two.address_from, two.user, two.port) == ("192.168.1.2", "InternalIP", "ops", 2222)
    three = ssh_target(None, "worker-1")
    assert (three.address, three.address_from, three.user, three.known_hosts) == ("worker-1", "name", None, None)
    with pytest.raises(UsageError):
        ssh_target(SETTINGS, "cp-2", "-oProxyCommand=x")  # an InternalIP from an inventory is input too


def test_updates_merge_unset_and_refuse_sandboxes():
    doc = update_ssh(None, node=None, changes={"user": "ops", "options": {"Ciphers": "x", "MACs": "y"}})
    assert doc == {"kind": "ssh", "user": "ops", "options": {"Ciphers": "x", "MACs": "y"}}
    doc = update_ssh(doc, node=None, changes={"options": {"Ciphers": "", "IPQoS": "z"}})
    assert doc["options"] == {"MACs": "y", "IPQoS": "z"}
    doc = update_ssh(doc, node="cp-1", changes={"address": "10.0.0.1", "port": 2200})
    assert doc["nodes"] == {"cp-1": {"address": "10.0.0.1", "port": 2200}}
    doc = update_ssh(doc, node="cp-1", changes={}, unset=("address",))
    assert doc["nodes"] == {"cp-1": {"port": 2200}}
    doc = update_ssh(doc, node="cp-1", changes={}, unset=("node",))
    assert "nodes" not in doc
    assert update_ssh(doc, node=None, changes={}, unset=("options", "user")) == {"kind": "ssh"}
    with pytest.raises(UsageError, match="sandbox"):
        update_ssh({"kind": "sandbox", "dir": "/x"}, node=None, changes={"user": "ops"})
    with pytest.raises(UsageError, match="cannot unset"):
        update_ssh(doc, node=None, changes={}, unset=("address",))
    with pytest.raises(UsageError):
        update_ssh(doc, node=None, changes={"address": "10.0.0.1"})  # an address is per node


@given(st.sampled_from(["user", "port", "jump", "identity"]), st.sampled_from([None, "cp-1"]))
def test_unsetting_a_field_removes_exactly_that_field_and_nothing_else(field, node):
    value = {"user": "ops", "port": 2222, "jump": "bastion", "identity": "/k/id"}[field]
    before = update_ssh(SETTINGS, node=None, changes={})
    changed = update_ssh(before, node=node, changes={field: value})
    assert changed != before or (node is None and before.get(field) == value)
    restored = update_ssh(changed, node=node, changes={}, unset=(field,))
    expected = dict(before) if node is not None else {k: v for k, v in before.items() if k != field}
    if node is not None:
        own = {k: v for k, v in before["nodes"]["cp-1"].items() if k != field}
        expected["nodes"] = {**before["nodes"], "cp-1": own}
    assert restored == expected


def test_stored_settings_are_checked_again_when_read():
    for bad in ({"kind": "telnet"}, {"kind": "ssh", "user": "-x"}, {"kind": "ssh", "colour": "red"},
                {"kind": "ssh", "options": {"ProxyCommand": "sh"}}, {"kind": "ssh", "nodes": {"Bad Node": {}}},
                {"kind": "ssh", "port": True}, {"kind": "ssh", "port": 70000}):
        with pytest.raises(UsageError):
            validate_transport(bad)
    assert validate_transport(SETTINGS) == SETTINGS


def _transport(**extra) -> SshTransport:
    return SshTransport(SshTarget(address="10.0.0.1", address_from="set", **extra), node="cp-1",
                        program="/usr/bin/ssh")


@given(st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=6))
def test_the_remote_command_is_argv_quoted_behind_sudo_unless_root(argv):
    as_root = _transport(user="root").remote_command(argv)
    assert shlex.split(as_root) == argv
    as_ops = _transport(user="ops").remote_command(argv)
    assert shlex.split(as_ops) == ["sudo", "-n", "--", *argv]


def test_our_safety_options_come_first_and_user_options_cannot_override_them(tmp_path):
    t = _transport(user="ops", port=2222, identity="/k/id", jump="bastion", known_hosts="/k/known",
                   options={"ServerAliveInterval": "5"})
    t._dir = tmp_path  # no connection is made: only the argv is looked at
    argv = t._base()
    # the operator's (allowlisted) options first, so they replace our defaults: ssh keeps a first value
    assert argv[:5] == ["/usr/bin/ssh", "-o", "ServerAliveInterval=5", "-o", "BatchMode=yes"]
    assert argv[5:7] == ["-o", "StrictHostKeyChecking=yes"]
    assert argv[argv.index("-l") + 1] == "ops" and argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-J") + 1] == "bastion" and argv[argv.index("-i") + 1] == "/k/id"
    assert "UserKnownHostsFile=/k/known" in argv and argv[-2:] == ["-J", "bastion"]
    assert _transport(options={"connecttimeout": "3"}).connect_timeout == 3
    assert f"ControlPath={tmp_path / 'm'}" in argv
    t.accept_new_host_keys = True
    assert "StrictHostKeyChecking=accept-new" in t._base()
    with pytest.raises(UsageError):
        _transport(options={"StrictHostKeyChecking": "no"})


def test_where_etcdctl_runs_is_a_validated_cluster_setting():
    assert validate_transport({"kind": "ssh", "etcd_tools": "node"}) == {"kind": "ssh", "etcd_tools": "node"}
    assert update_ssh(None, node=None, changes={"etcd_tools": "host"}) == {"kind": "ssh", "etcd_tools": "host"}
    assert update_ssh({"kind": "ssh", "etcd_tools": "node"}, node=None, changes={}, unset=("etcd_tools",)) == {
        "kind": "ssh"}
    for bad in ({"kind": "ssh", "etcd_tools": "both"}, {"kind": "ssh", "etcd_tools": 1},
                {"kind": "ssh", "nodes": {"cp-1": {"etcd_tools": "node"}}}):
        with pytest.raises(UsageError):
            validate_transport(bad)
    with pytest.raises(UsageError):
        update_ssh(None, node="cp-1", changes={"etcd_tools": "node"})
    # the transport built from such settings ignores it (it is for the etcd access)
    assert ssh_target({"kind": "ssh", "etcd_tools": "node"}, "cp-1").address == "cp-1"


@given(st.lists(st.text(min_size=0, max_size=20), min_size=1, max_size=6),
       st.floats(min_value=0.1, max_value=100000, allow_nan=False))
def test_the_remote_command_runs_under_the_nodes_own_timeout(argv, timeout):
    words = shlex.split(_transport(user="root")._wrapped(argv, timeout))
    assert words[:4] == ["timeout", "-k", "5", "--"] and words[5:] == argv  # argv verbatim, after the duration
    assert abs(float(words[4]) - timeout) < 0.001 and "e" not in words[4]  # a plain decimal, as coreutils wants
    # outside sudo: a sudoers entry for kubeadm/apt-get/systemctl only still matches what sudo runs
    as_ops = shlex.split(_transport(user="ops")._wrapped(argv, timeout))
    assert as_ops[:4] == ["timeout", "-k", "5", "--"] and as_ops[5:] == ["sudo", "-n", "--", *argv]


def test_a_setting_an_older_upgrader_stored_can_still_be_removed_but_not_kept():
    """The allowlist came after settings were stored: such a cluster refuses ssh until it is repaired,
    and the repair itself (unset, or an empty value) must work."""
    stored = {"kind": "ssh", "user": "ops", "options": {"LogLevel": "ERROR", "ServerAliveInterval": "5"}}
    assert update_ssh(stored, node=None, changes={}, unset=("options",)) == {"kind": "ssh", "user": "ops"}
    assert update_ssh(stored, node=None, changes={"options": {"LogLevel": ""}}) == {
        "kind": "ssh", "user": "ops", "options": {"ServerAliveInterval": "5"}}
    with pytest.raises(UsageError, match="LogLevel is not allowed"):
        update_ssh(stored, node=None, changes={"user": "admin"})  # a change that keeps it is still refused
