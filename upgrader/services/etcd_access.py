"""How upgrader reaches a cluster's etcd: the contract the inventory, preflight and snapshot use cases share.

By default the etcd client tools run on the orchestrator's host against a member's client URL,
with kubeadm's etcd client certificate read over the node transport into a private temp dir (and
an SSH local forward when the port is not reachable directly). External etcd (kubeadm-config says
so) uses the configured endpoints and client certificates. See DOMAIN.md, "etcd snapshots".

Where the endpoints come from:

- local (stacked) etcd, kubeadm's default: each control-plane node's static pod manifest
  /etc/kubernetes/manifests/etcd.yaml, the etcd container's ``--advertise-client-urls``;
- external etcd: kubeadm-config's ClusterConfiguration ``etcd.external.endpoints``, with its
  ``caFile``/``certFile``/``keyFile``, which live on the control-plane nodes;
- ``"etcd_tools": "node"`` in the cluster's transport settings: the first control-plane node's own
  etcdctl, against its member at 127.0.0.1:2379 with the node's certificate paths.

The sandbox's members advertise plain http on loopback, so its sessions need no TLS at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

import yaml

from upgrader.domain.records import ClusterRecord
from upgrader.errors import ClusterUnreachableError, TransportError, UpgraderError, UsageError
from upgrader.ports import EtcdMember, EtcdTls, EtcdTool, EtcdToolInfo, NodeTransport

if TYPE_CHECKING:
    from upgrader.services.wiring import AppContext

MANIFEST = "/etc/kubernetes/manifests/etcd.yaml"
PKI = "/etc/kubernetes/pki"
CLIENT_CERTS = ((f"{PKI}/etcd/healthcheck-client.crt", f"{PKI}/etcd/healthcheck-client.key"),
                (f"{PKI}/apiserver-etcd-client.crt", f"{PKI}/apiserver-etcd-client.key"))
MANIFEST_LIMIT = 1024 * 1024
CERT_LIMIT = 256 * 1024


@dataclass
class EtcdSession:
    """A reachable etcd for one use case: the tool, client URLs reachable from here, TLS files."""

    tool: EtcdTool
    endpoints: list[str]  # reachable from this host (a forwarded 127.0.0.1:PORT when tunnelled)
    tls: EtcdTls | None
    external: bool = False
    node_of_endpoint: dict[str, str] = field(default_factory=dict)  # endpoint -> control-plane node

    def members(self, timeout: float = 10.0) -> list[EtcdMember]:
        return self.tool.members(self.endpoints, self.tls, timeout)

    def require(self, members: list[EtcdMember] | None = None, timeout: float = 10.0) -> EtcdToolInfo:
        """The tool's probe, refused (EtcdToolError, exit 2) when it is older than the newest etcd the
        members themselves report. The servers' own word, not an image tag: the sandbox's manifests name
        etcd 3.5 images while its members are the host's etcd 3.4."""
        from upgrader.etcd.parsing import major_minor

        seen = [m.version for m in (members if members is not None else self.members(timeout)) if m.version]
        known = [v for v in seen if major_minor(v) is not None]
        newest = max(known, key=lambda v: major_minor(v) or (0, 0)) if known else None
        return self.tool.require(newest)


class LazyEtcdSession:
    """The cluster's etcd session, opened as soon as it can be: a stopped control plane has none (a
    rollback, or a resume while a node's control plane is still down), so :meth:`session` is None
    until one opens, and each caller asks again later. Closed with the context."""

    def __init__(self, app: AppContext, cluster: ClusterRecord, inventory: Mapping[str, Any]) -> None:
        self._app, self._cluster, self._inventory = app, cluster, inventory
        self._stack = ExitStack()
        self._session: EtcdSession | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> Self:
        self.session()  # open now when it can be (before a rollback stops the control plane)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def session(self) -> EtcdSession | None:
        with self._lock:
            if self._session is None:
                try:
                    self._session = self._stack.enter_context(etcd_session(self._app, self._cluster,
                                                                           self._inventory))
                except UpgraderError:
                    return None
            return self._session


@contextmanager
def etcd_session(app: AppContext, cluster: ClusterRecord,
                 inventory: Mapping[str, Any] | None = None) -> Iterator[EtcdSession]:
    """Open a session on the cluster's etcd; temp files and forwards are gone when it closes."""
    if app.etcd_session_factory is not None:  # tests: a session over upgrader.fakes.FakeEtcdTool
        with app.etcd_session_factory(cluster, inventory) as session:
            yield session
        return
    api = app.cluster_api(cluster)
    if inventory is None:
        inventory = api.observe_inventory()
    nodes = control_plane_nodes(inventory)
    if not nodes:
        raise ClusterUnreachableError(f"cluster {cluster.name}: no control-plane node in the inventory")
    transports = {n: app.transport(cluster, n, inventory=inventory) for n in nodes}
    if dict(cluster.transport or {}).get("etcd_tools") == "node":
        yield _node_session(app, transports)
        return
    external = external_etcd(_cluster_configuration(api))
    tmp: Path | None = None
    try:
        if external is not None:
            endpoints = list(external["endpoints"])
            node_of: dict[str, str] = {}
            files = (external.get("caFile"), external.get("certFile"), external.get("keyFile"))
            if any(e.startswith("https://") for e in endpoints):
                if not all(files):
                    raise UsageError(f"cluster {cluster.name}: kubeadm-config's external etcd has https endpoints "
                                     "but no caFile/certFile/keyFile")
                if not all(isinstance(f, str) and f.startswith("/") for f in files):
                    raise UsageError(f"cluster {cluster.name}: kubeadm-config's external etcd caFile/certFile/keyFile "
                                     "must be absolute paths on the control-plane nodes")
                tmp = _private_dir()
                tls = _fetch_tls(transports, [(str(files[0]), str(files[1]), str(files[2]))], tmp)
            else:
                tls = None
        else:
            endpoints, node_of = _local_endpoints(transports)
            tls = None
            if any(e.startswith("https://") for e in endpoints):
                tmp = _private_dir()
                tls = _fetch_tls(transports, [(f"{PKI}/etcd/ca.crt", c, k) for c, k in CLIENT_CERTS], tmp,
                                 prefer=[node_of[e] for e in endpoints if e in node_of])
        endpoints, node_of = _reachable(endpoints, node_of, transports,
                                        via=next(iter(transports.values())) if external is not None else None)
        yield EtcdSession(tool=app.etcd_tool(), endpoints=endpoints, tls=tls, external=external is not None,
                          node_of_endpoint=node_of)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def control_plane_nodes(inventory: Mapping[str, Any]) -> list[str]:
    nodes = inventory.get("nodes") if isinstance(inventory, Mapping) else None
    return [str(n["name"]) for n in (nodes if isinstance(nodes, list) else [])
            if isinstance(n, Mapping) and n.get("control_plane") is True and isinstance(n.get("name"), str)]


def _cluster_configuration(api: Any) -> Mapping[str, Any] | None:
    """kubeadm-config's ClusterConfiguration, or None when it cannot be had (then etcd is taken as local)."""
    getter = getattr(api, "get_configmap", None)
    if getter is None:
        return None
    try:
        data = getter("kube-system", "kubeadm-config")
    except ClusterUnreachableError:
        return None  # a stacked etcd is still found through the nodes; an external one then fails clearly
    text = (data or {}).get("ClusterConfiguration")
    if not text or len(text) > MANIFEST_LIMIT:
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, Mapping) else None


def external_etcd(config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """``etcd.external`` of a ClusterConfiguration when it names endpoints, else None (stacked etcd)."""
    etcd = (config or {}).get("etcd")
    external = etcd.get("external") if isinstance(etcd, Mapping) else None
    if not isinstance(external, Mapping):
        return None
    endpoints = external.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints or not all(isinstance(e, str) for e in endpoints):
        return None
    return external


def advertised_client_urls(manifest: bytes) -> list[str]:
    """The etcd container's ``--advertise-client-urls`` in a static pod manifest (or kubeadm's annotation)."""
    if len(manifest) > MANIFEST_LIMIT:
        raise ValueError(f"{len(manifest)} bytes is too large for a static pod manifest")
    try:
        doc = yaml.safe_load(manifest.decode("utf-8", errors="replace"))
    except yaml.YAMLError as e:
        raise ValueError(f"not YAML ({type(e).__name__})") from e
    spec = doc.get("spec") if isinstance(doc, Mapping) else None
    containers = spec.get("containers") if isinstance(spec, Mapping) else None
    for container in containers if isinstance(containers, list) else []:
        if not isinstance(container, Mapping):
            continue
        argv = [a for key in ("command", "args") for a in (container.get(key) or []) if isinstance(a, str)]
        for i, arg in enumerate(argv):
            if arg.startswith("--advertise-client-urls="):
                return _split_urls(arg.split("=", 1)[1])
            if arg == "--advertise-client-urls" and i + 1 < len(argv):
                return _split_urls(argv[i + 1])
    metadata = doc.get("metadata") if isinstance(doc, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if isinstance(annotations, Mapping):
        value = annotations.get("kubeadm.kubernetes.io/etcd.advertise-client-urls")
        if isinstance(value, str):
            return _split_urls(value)
    raise ValueError("no --advertise-client-urls in the etcd container's command")


def _cut(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit] + "..."


def _split_urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]


def _local_endpoints(transports: Mapping[str, NodeTransport]) -> tuple[list[str], dict[str, str]]:
    endpoints: list[str] = []
    node_of: dict[str, str] = {}
    failures = []
    for node, transport in transports.items():
        try:
            urls = advertised_client_urls(transport.read_file(MANIFEST))
        except TransportError as e:
            failures.append(f"{node}: {_cut(e.message)}")
            continue
        except ValueError as e:
            failures.append(f"{node}: {MANIFEST}: {_cut(str(e))}")
            continue
        url = urls[0] if urls else None
        if url and url not in node_of:
            endpoints.append(url)
            node_of[url] = node
    if not endpoints:
        raise ClusterUnreachableError("no etcd endpoint found on the control-plane nodes: " + "; ".join(failures))
    return endpoints, node_of


def _private_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="upgrader-etcd-tls-"))  # 0700, ours alone


def _fetch_tls(transports: Mapping[str, NodeTransport], candidates: list[tuple[str, str, str]], tmp: Path,
               prefer: list[str] | None = None) -> EtcdTls:
    """The first complete (ca, cert, key) that a control-plane node serves, copied into ``tmp`` (0600)."""
    order = [*(prefer or []), *transports]
    tried = []
    for node in dict.fromkeys(order):
        transport = transports.get(node)
        if transport is None:
            continue
        for ca, cert, key in candidates:
            try:
                blobs = [transport.read_file(p) for p in (ca, cert, key)]
            except UpgraderError as e:
                tried.append(f"{node}: {_cut(e.message)}")
                continue
            if any(len(b) > CERT_LIMIT or not b for b in blobs):
                tried.append(f"{node}: {cert}: empty or too large")
                continue
            paths = [tmp / "ca.crt", tmp / "client.crt", tmp / "client.key"]
            for path, blob in zip(paths, blobs, strict=True):
                _write_private(path, blob)
            return EtcdTls(cacert=paths[0], cert=paths[1], key=paths[2])
    raise ClusterUnreachableError("the etcd client certificate could not be read from any control-plane node: "
                                  + "; ".join(tried))


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _reachable(endpoints: list[str], node_of: dict[str, str], transports: Mapping[str, NodeTransport],
               via: NodeTransport | None = None) -> tuple[list[str], dict[str, str]]:
    """Each endpoint as this host reaches it: as is, or through its node's (external etcd: ``via``'s) SSH
    forward when the transport has one."""
    from upgrader.etcd.diagnose import host_port, reachable

    result: list[str] = []
    mapping: dict[str, str] = {}
    for endpoint in endpoints:
        node = node_of.get(endpoint)
        forward = getattr(transports.get(node) if node else via, "forward", None)
        address = host_port(endpoint)
        if forward is not None and address is not None and not reachable(endpoint, 1.0):
            local_host, local_port = forward(address[0], address[1])
            scheme = urlsplit(endpoint).scheme or "https"
            endpoint = f"{scheme}://{local_host}:{local_port}"
        result.append(endpoint)
        if node:
            mapping[endpoint] = node
    return result, mapping


def _node_session(app: AppContext, transports: Mapping[str, NodeTransport]) -> EtcdSession:
    from upgrader.etcd.node_tool import NODE_ENDPOINT, NODE_TLS, NodeEtcdTool
    from upgrader.etcd.tool import EtcdctlTool

    node, transport = next(iter(transports.items()))
    host = app.etcd_tool()
    tool = NodeEtcdTool(transport, host_tool=host if isinstance(host, EtcdctlTool) else None)
    return EtcdSession(tool=tool, endpoints=[NODE_ENDPOINT], tls=NODE_TLS, node_of_endpoint={NODE_ENDPOINT: node})
