"""``etcdctl`` on a sandbox node: the real etcdctl, only ever pointed at this sandbox's etcd.

As on a kubeadm node, the operator names the local member as ``127.0.0.1:2379`` (kubeadm's
``--endpoints=https://127.0.0.1:2379``, ``localhost:2379``, ``http://...``, ``ETCDCTL_ENDPOINTS``, or no
endpoint at all: etcdctl's default) with its client certificates. Every loopback ``:2379`` endpoint is
mapped onto the node's own member (the sandbox's etcd listens on plain http on loopback, so the
scheme and the certificate flags go); an endpoint of another member of this sandbox is kept; any
other endpoint is refused, so no command on a sandbox node reaches an etcd outside it.

A worker (or a control-plane node whose member is unknown) has no local member: its etcdctl runs
the real etcdctl against a loopback port where nothing listens, and shows that port as
127.0.0.1:2379, so the operator gets etcdctl's own "connection refused" failure.

On an isolated node the real binary is where the node's wrapper says (``UPGRADER_SANDBOX_REAL_ETCDCTL``,
on no PATH of the node: its ``/usr/bin/etcdctl`` is this tool); on a best-effort node it is the
machine's /usr/bin/etcdctl.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from upgrader.sandbox.node import manifests
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.sandbox_config import SandboxConfig

TLS_FLAGS = ("--cacert", "--cert", "--key")
ENDPOINT_FLAGS = ("--endpoints",)
REFUSED_FLAGS = ("--discovery-srv", "--discovery-srv-name")
REFUSED_COMMANDS = ("make-mirror",)  # writes into another etcd cluster
DROPPED_ENV = ("ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY", "ETCDCTL_DISCOVERY_SRV",
               "ETCDCTL_DISCOVERY_SRV_NAME", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "ETCDCTL_INSECURE_TRANSPORT")
REAL = "/usr/bin/etcdctl"
REAL_ENV = "UPGRADER_SANDBOX_REAL_ETCDCTL"
LOCAL_PORT = 2379
NO_MEMBER = "no-local-member"


class EndpointError(Exception):
    """An endpoint outside this sandbox's etcd."""


def _flag_value(args: list[str], i: int, names: tuple[str, ...]) -> tuple[str | None, int]:
    """(value, args consumed) when args[i] is one of the flags names (``--f v`` or ``--f=v``), else (None, 0)."""
    arg = args[i]
    if arg in names:
        return (args[i + 1] if i + 1 < len(args) else ""), 2
    for name in names:
        if arg.startswith(name + "="):
            return arg[len(name) + 1:], 1
    return None, 0


def split_args(args: list[str]) -> tuple[list[str], list[str] | None]:
    """(args without TLS and endpoint flags, the endpoints named by --endpoints or None)."""
    rest: list[str] = []
    endpoints: list[str] | None = None
    i = 0
    while i < len(args):
        if args[i] == "--":
            rest.extend(args[i:])
            break
        value, used = _flag_value(args, i, ENDPOINT_FLAGS)
        if used:
            endpoints = [*(endpoints or []), *(e for e in (value or "").split(",") if e)]
            i += used
            continue
        _, used = _flag_value(args, i, TLS_FLAGS)
        if used or args[i] == "--insecure-skip-tls-verify" or args[i].startswith("--insecure-skip-tls-verify="):
            i += used or 1
            continue
        rest.append(args[i])
        i += 1
    return rest, endpoints


def _host_port(endpoint: str) -> tuple[str, int | None]:
    parsed = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme not in ("http", "https") or (parsed.path not in ("", "/")):
        raise EndpointError(endpoint)
    try:
        return (parsed.hostname or ""), parsed.port
    except ValueError as e:
        raise EndpointError(endpoint) from e


def _loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def map_endpoint(endpoint: str, *, own: str | None, members: dict[int, str]) -> str:
    """One endpoint as the operator wrote it -> the sandbox URL it means (or NO_MEMBER)."""
    host, port = _host_port(endpoint)
    if not _loopback(host):
        raise EndpointError(endpoint)
    if port in (None, LOCAL_PORT):
        return own or NO_MEMBER
    if port in members:
        return members[port]
    raise EndpointError(endpoint)


def _config(node: Node) -> SandboxConfig | None:
    try:
        return SandboxConfig.load(node.sandbox_dir) if node.sandbox_dir else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _manifest_endpoint(node: Node) -> str | None:
    pod = manifests.load(node.layout.host_path("/etc/kubernetes/manifests/etcd.yaml"))
    if pod is None:
        backup = node.layout.host_path("/etc/kubernetes/tmp")
        candidates = sorted(backup.glob("**/etcd.yaml"))  # the manifest may be moved away mid-restore
        pod = manifests.load(candidates[-1]) if candidates else None
    if pod is None:
        return None
    return manifests.flags(pod).get("advertise-client-urls", "").split(",")[0] or None


def members(node: Node) -> tuple[str | None, dict[int, str]]:
    """(this node's member client URL or None, {port: client URL} of every member of this sandbox)."""
    cfg = _config(node)
    if cfg is not None:
        urls = {cfg.etcd_client_ports[n]: cfg.etcd_client_url(n) for n in cfg.control_planes
                if n in cfg.etcd_client_ports}
        own = cfg.etcd_client_url(node.name) if node.name in cfg.control_planes else None
        return own, urls
    own = _manifest_endpoint(node)
    port = urlsplit(own).port if own else None
    return own, ({port: own} if own and port else {})


def local_endpoint(node: Node) -> str | None:
    """This node's own member, as ``127.0.0.1:2379`` means on it (None on a worker)."""
    return members(node)[0]


def real_binary(node: Node) -> str | None:
    if node.layout.root == Path("/"):  # an isolated node: its /usr/bin/etcdctl is this tool
        real = os.environ.get(REAL_ENV)
        return real if real and os.path.isfile(real) else None
    if os.path.exists(REAL):
        return REAL
    return shutil.which("etcdctl", path="/usr/local/bin:/usr/bin:/bin") or REAL


@dataclass(frozen=True, slots=True)
class Resolved:
    """The real etcdctl's command line for what the operator typed: binary, mapped endpoints, the rest."""

    binary: str
    endpoints: list[str]
    rest: list[str]
    env: dict[str, str]


def resolve(node: Node, args: list[str], *, reachable: bool = True) -> Resolved | int:
    """The real command for ``etcdctl ARGS`` on this node, or the exit code after saying why not.

    ``reachable=False`` (a container without the host's network) leaves no member reachable."""
    rest, endpoints = split_args(args)
    if any(_flag_value(rest, i, REFUSED_FLAGS)[1] for i in range(len(rest))):
        node.warn("Error: --discovery-srv is not supported on a sandbox node: name the member with --endpoints")
        return 1
    if any(word in REFUSED_COMMANDS for word in rest if not word.startswith("-")):
        node.warn("Error: make-mirror is not supported on a sandbox node: it writes into another etcd cluster")
        return 1
    if endpoints is None:
        endpoints = [e for e in os.environ.get("ETCDCTL_ENDPOINTS", "").split(",") if e] or ["127.0.0.1:2379"]
    own, urls = members(node)
    try:
        mapped = [map_endpoint(e, own=own, members=urls) for e in endpoints]
    except EndpointError as e:
        known = ", ".join(urls.values()) or "none"
        node.warn(f"Error: endpoint {e} is not an etcd member of this sandbox (its members: {known}); "
                  "a sandbox node never reaches an etcd outside its sandbox")
        return 1
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV and k != REAL_ENV} | {"ETCDCTL_API": "3"}
    binary = real_binary(node)
    if binary is None:
        node.warn("etcdctl: command not found")
        return 127
    return Resolved(binary, mapped if reachable else [NO_MEMBER] * len(mapped), rest, env)


def main(node: Node, args: list[str]) -> int:
    r = resolve(node, args)
    if isinstance(r, int):
        return r
    if NO_MEMBER not in r.endpoints:
        os.execve(r.binary, [r.binary, f"--endpoints={','.join(dict.fromkeys(r.endpoints))}", *r.rest], r.env)
    done = run_captured(r)
    for text, stream in ((done.stdout, node.out), (done.stderr, node.err)):
        stream.write(text)
        stream.flush()
    return done.returncode


def run_captured(r: Resolved, *, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real etcdctl, its output captured; a missing local member is a bound loopback port that never
    listens, so the operator gets etcdctl's own "connection refused" failure, shown as 127.0.0.1:2379."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused; nobody else can take it
        port = closed.getsockname()[1]
        dead = f"http://127.0.0.1:{port}"
        endpoints = ",".join(dict.fromkeys(dead if m == NO_MEMBER else m for m in r.endpoints))
        done = subprocess.run([r.binary, f"--endpoints={endpoints}", *r.rest], env=r.env, capture_output=True,
                              text=True, check=False, cwd=cwd)
    for name in ("stdout", "stderr"):
        text = getattr(done, name)
        setattr(done, name, text.replace(dead, "127.0.0.1:2379").replace(f"127.0.0.1:{port}", "127.0.0.1:2379"))
    return done
