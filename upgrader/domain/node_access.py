"""How upgrader reaches a cluster's nodes: the settings kept in the ledger, and the rules they obey.

A cluster's ``transport`` column holds one JSON document. For SSH (the default for a registered
cluster) it is::

    {"kind": "ssh", "user": "ops", "port": 22, "identity": "~/.ssh/id_ed25519", "jump": "bastion",
     "options": {"ServerAliveInterval": "10"}, "known_hosts": "/etc/upgrader/known_hosts",
     "nodes": {"cp-1": {"address": "10.0.0.11", "user": "admin"}}}

every field optional; ``"etcd_tools": "node"`` runs etcdctl on the first control-plane node
instead of this host (``"host"``, the default); ``nodes`` holds per-node overrides (and a node's
address, which otherwise is its InternalIP from the latest observation, else its name). ``{"kind": "local"}`` is this
machine, ``{"kind": "sandbox", "dir": ...}`` a sandbox cluster's node directories.

Every value is validated here, at the edge, before it is stored and again before it is used: a
value reaches ssh's argv, so nothing may start with ``-`` or hold whitespace or control
characters, and only the ``-o`` options of :data:`ALLOWED_OPTIONS` (connection tuning and
algorithms) are accepted: nothing that could switch off what keeps node access safe (host-key
checking, batch mode, our own multiplexing), forward anything or run a local command.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upgrader.domain.names import validate_node_name
from upgrader.domain.text import excerpt
from upgrader.errors import UsageError

KINDS = ("ssh", "local", "sandbox")
FIELDS = ("user", "port", "identity", "jump", "options", "known_hosts", "etcd_tools")  # cluster-wide
ETCD_TOOLS = ("host", "node")  # where etcdctl runs: this host (the default) or the first control-plane node
NODE_FIELDS = ("address", "user", "port", "identity", "jump", "options")  # what a node may override

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}", re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}", re.ASCII)  # a host name or an IPv4 address
_JUMP_HOP = re.compile(r"(?:ssh://)?(?:[A-Za-z_][A-Za-z0-9_.-]{0,63}@)?(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}"
                       r"|\[[0-9A-Fa-f:.%]+\])(?::[0-9]{1,5})?", re.ASCII)
_OPTION_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}", re.ASCII)
_PATH_BAD = re.compile(r"[\s\"'\\\x00-\x1f\x7f]")
MAX_OPTION_VALUE = 1024

# The only -o options an operator may add: an ALLOWLIST (ssh's names are case-insensitive). Each
# one tunes the connection or the algorithms; none runs a local program, loads a library, forwards
# anything, sends local data or weakens host-key checking. Anything else is refused: ssh has many
# options that do (XAuthLocation, ForwardAgent, *Forward, Tunnel, UpdateHostKeys, VerifyHostKeyDNS,
# HostKeyAlias, Canonicalize*, SendEnv, Include, ...), and new ones appear with new releases.
# Everything else belongs in the user's own ssh config, which applies.
ALLOWED_OPTIONS = {name.lower(): name for name in (
    "ServerAliveInterval", "ServerAliveCountMax", "ConnectTimeout", "ConnectionAttempts", "TCPKeepAlive",
    "Ciphers", "KexAlgorithms", "MACs", "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "CASignatureAlgorithms", "RequiredRSASize", "RekeyLimit", "Compression",
    "AddressFamily", "BindAddress", "BindInterface", "IPQoS", "IdentitiesOnly", "CertificateFile",
    "PreferredAuthentications", "PubkeyAuthentication", "PasswordAuthentication",
    "KbdInteractiveAuthentication", "GSSAPIAuthentication", "HashKnownHosts", "FingerprintHash", "IdentityAgent",
)}
# For a refused option that has a flag of its own, or a reason worth saying, the hint.
OPTION_HINTS = {
    "stricthostkeychecking": "host keys are always checked (use --accept-new-host-keys with `node exec` to "
                             "trust a first key)",
    "userknownhostsfile": "use --ssh-known-hosts",
    "proxycommand": "it runs a local command (use --ssh-jump for a bastion)",
    "proxyjump": "use --ssh-jump",
    "hostname": "use `upgrader cluster node-address`",
    "user": "use --ssh-user",
    "port": "use --ssh-port",
    "identityfile": "use --ssh-identity",
}
_PATH_OPTIONS = ("certificatefile",)
# Allowed with these values only: IdentityAgent=none keeps ssh off the agent; a socket path would
# hand it another agent, and that belongs in the ssh config.
_ONLY_VALUES = {"identityagent": ("none",)}


def _plain(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{what} must not be empty")
    if value.startswith("-"):
        raise UsageError(f"{what} {excerpt(value)} must not start with '-'")


def validate_user(user: str) -> str:
    _plain(user, "ssh user")
    if not _USER.fullmatch(user):
        raise UsageError(f"invalid ssh user {excerpt(user)}: letters, digits, '_', '.', '-', up to 64 characters")
    return user


def validate_address(address: str) -> str:
    """A host name, an IPv4 or an IPv6 address (no brackets, no user@, no port)."""
    _plain(address, "node address")
    if ":" in address:  # only an IPv6 address has one (a port is --ssh-port)
        try:
            ipaddress.IPv6Address(address)
            return address
        except ValueError:
            pass
    elif _HOST.fullmatch(address):
        return address
    raise UsageError(f"invalid node address {excerpt(address)}: a host name or an IP address, "
                     "without spaces, user@ or :port")


def validate_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"invalid ssh port {excerpt(port)}: a number from 1 to 65535")
    return port


def validate_jump(jump: str) -> str:
    """ssh's ProxyJump: ``[user@]host[:port]``, comma-separated for several hops, or ``none``."""
    _plain(jump, "ssh jump host")
    if jump != "none" and not all(_JUMP_HOP.fullmatch(hop) for hop in jump.split(",")):
        raise UsageError(f"invalid ssh jump host {excerpt(jump)}: [user@]host[:port], comma-separated for "
                         "several hops, without spaces")
    return jump


def validate_etcd_tools(value: object) -> str:
    """Where etcdctl runs for the cluster: ``host`` (this machine, the default) or ``node``."""
    if value not in ETCD_TOOLS:
        raise UsageError(f"invalid etcd tools setting {excerpt(value)}: host (run etcdctl here, the default) "
                         "or node (run it on the first control-plane node)")
    return str(value)


def validate_path(path: str, what: str) -> str:
    """A local file path for ssh (an identity or known_hosts file): ssh splits option values on
    spaces and reads quotes, so those are refused rather than quoted."""
    _plain(path, what)
    if _PATH_BAD.search(path):
        raise UsageError(f"invalid {what} {excerpt(path)}: no spaces, quotes, backslashes or control characters")
    return path


def validate_option(key: str, value: str) -> tuple[str, str]:
    """One ``-o KEY=VALUE`` for ssh; refuses the options that would make node access unsafe."""
    if not isinstance(key, str) or not _OPTION_KEY.fullmatch(key):
        raise UsageError(f"invalid ssh option name {excerpt(key)}: letters and digits, e.g. ServerAliveInterval")
    if key.lower() not in ALLOWED_OPTIONS:
        hint = OPTION_HINTS.get(key.lower())
        raise UsageError(f"ssh option {key} is not allowed{': ' + hint if hint else ''} (allowed: "
                         f"{', '.join(sorted(ALLOWED_OPTIONS.values(), key=str.lower))}; put anything else "
                         "in your ssh config)")
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"ssh option {key} needs a value (KEY=VALUE)")
    if len(value) > MAX_OPTION_VALUE or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"invalid value for ssh option {key}: {excerpt(value)} (one line, no control characters)")
    only = _ONLY_VALUES.get(key.lower())
    if only is not None and value.lower() not in only:
        raise UsageError(f"ssh option {key} takes only {' or '.join(only)} here (put anything else in your ssh config)")
    if key.lower() in _PATH_OPTIONS:
        validate_path(value, f"ssh option {key}")
    return key, value


def parse_option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` as typed after --ssh-option; ``KEY=`` (no value) removes the option."""
    key, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"--ssh-option takes KEY=VALUE (or KEY= to remove it), got {excerpt(text)}")
    key, value = key.strip(), value.strip()
    if not value:
        validate_option(key, "x")
        return key, ""
    return validate_option(key, value)


def _validate_fields(doc: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in allowed:
            raise UsageError(f"{where}: unknown node access setting {excerpt(key)} (known: {', '.join(allowed)})")
        if value is None:
            continue
        if key == "user":
            out[key] = validate_user(value)
        elif key == "port":
            out[key] = validate_port(value)
        elif key == "identity":
            out[key] = validate_path(value, "ssh identity file")
        elif key == "known_hosts":
            out[key] = validate_path(value, "known_hosts file")
        elif key == "jump":
            out[key] = validate_jump(value)
        elif key == "address":
            out[key] = validate_address(value)
        elif key == "etcd_tools":
            out[key] = validate_etcd_tools(value)
        elif key == "options":
            if not isinstance(value, Mapping):
                raise UsageError(f"{where}: ssh options must be a KEY: VALUE mapping")
            out[key] = dict(validate_option(k, v) for k, v in value.items())
    return out


def validate_transport(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A whole transport document, as stored; a UsageError names the first bad value."""
    if doc is None:
        return None
    if not isinstance(doc, Mapping):
        raise UsageError("node transport settings must be a mapping")
    kind = doc.get("kind", "ssh")
    if kind not in KINDS:
        raise UsageError(f"unknown node transport kind {excerpt(kind)} (known: {', '.join(KINDS)})")
    if kind != "ssh":
        return dict(doc)
    out: dict[str, Any] = {"kind": "ssh"}
    out |= _validate_fields({k: v for k, v in doc.items() if k not in ("kind", "nodes")}, FIELDS, "ssh settings")
    nodes = doc.get("nodes") or {}
    if not isinstance(nodes, Mapping):
        raise UsageError("ssh settings: nodes must be a mapping of node name to settings")
    checked = {}
    for node, overrides in nodes.items():
        validate_node_name(node)
        if not isinstance(overrides, Mapping):
            raise UsageError(f"ssh settings of node {node}: must be a mapping")
        fields = _validate_fields(overrides, NODE_FIELDS, f"ssh settings of node {node}")
        if fields:
            checked[node] = fields
    if checked:
        out["nodes"] = checked
    return out


@dataclass(frozen=True, slots=True)
class SshTarget:
    """Everything ssh needs to reach one node, cluster settings and the node's overrides merged."""

    address: str
    address_from: str  # "set" (node-address), "InternalIP" (the latest observation) or "name"
    user: str | None = None  # None: ssh's own default (~/.ssh/config, else the local user)
    port: int | None = None
    identity: str | None = None
    jump: str | None = None
    known_hosts: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "address_from": self.address_from, "user": self.user, "port": self.port,
                "identity": self.identity, "jump": self.jump, "known_hosts": self.known_hosts,
                "options": dict(self.options)}


def ssh_target(doc: Mapping[str, Any] | None, node: str, internal_ip: str | None = None) -> SshTarget:
    """The node's effective SSH settings: its own override, else the cluster's; its address is
    the one set for it, else its InternalIP, else its name."""
    settings = validate_transport(doc) or {"kind": "ssh"}
    if settings.get("kind", "ssh") != "ssh":
        raise UsageError(f"node {node} is not reached over ssh (transport kind {settings.get('kind')})")
    validate_node_name(node)
    own = settings.get("nodes", {}).get(node, {})

    def pick(key: str) -> Any:
        return own[key] if key in own else settings.get(key)

    if "address" in own:
        address, source = own["address"], "set"
    elif internal_ip:
        address, source = validate_address(internal_ip), "InternalIP"
    else:
        address, source = node, "name"
    return SshTarget(address=address, address_from=source, user=pick("user"), port=pick("port"),
                     identity=pick("identity"), jump=pick("jump"), known_hosts=settings.get("known_hosts"),
                     options=dict(settings.get("options", {})) | dict(own.get("options", {})))


def update_ssh(doc: Mapping[str, Any] | None, *, node: str | None, changes: Mapping[str, Any],
               unset: tuple[str, ...] = ()) -> dict[str, Any]:
    """The settings after ``changes`` (options are merged key by key) and ``unset`` (field names;
    ``node`` drops all of a node's overrides), at cluster level or for one node. Refuses to turn a
    sandbox cluster into an SSH one."""
    # The stored settings are not validated before the change, only the result: a setting that an
    # older upgrader accepted and this one refuses can then still be unset or overwritten.
    if doc is not None and not isinstance(doc, Mapping):
        raise UsageError("the stored node access settings are not a mapping")
    current = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in (doc or {"kind": "ssh"}).items()}
    if current.get("kind") == "sandbox":
        raise UsageError("this is a sandbox cluster: its nodes are reached through the sandbox, not ssh")
    if current.get("kind") == "local":
        current = {"kind": "ssh"}
    allowed = NODE_FIELDS if node is not None else FIELDS
    target: dict[str, Any]
    if node is not None:
        validate_node_name(node)
        nodes = {k: dict(v) for k, v in current.get("nodes", {}).items()}
        target = nodes.setdefault(node, {})
    else:
        target = current
    for name in unset:
        if name == "node" and node is not None:
            target.clear()
        elif name in allowed:
            target.pop(name, None)
        else:
            raise UsageError(f"cannot unset {excerpt(name)} here (known: {', '.join(allowed)}"
                             f"{', node' if node is not None else ''})")
    for key, value in changes.items():
        if key not in allowed:
            raise UsageError(f"{key} cannot be set {'per node' if node is not None else 'for a cluster'}")
        if key == "options":
            merged = dict(target.get("options", {})) | dict(value)
            target["options"] = {k: v for k, v in merged.items() if v}
        else:
            target[key] = value
    if node is not None:
        if target:
            current["nodes"] = nodes
        else:
            nodes.pop(node, None)
            current["nodes"] = nodes
        if not current["nodes"]:
            current.pop("nodes")
    if not current.get("options", True):
        current.pop("options")
    return validate_transport(current) or {"kind": "ssh"}
