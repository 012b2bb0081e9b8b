"""The sandbox Kubernetes API server: HTTP plumbing over the handlers (and :mod:`.negotiation` of formats).

Plain HTTP/1.1 on loopback, no authentication (the sandbox kubeconfig has no credentials). One
thread per connection (``ThreadingHTTPServer``); all state is in etcd, so several servers (one per
control-plane node) can run against the same cluster and any of them can be restarted.
"""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from upgrader.sandbox.apiserver import discovery, errors, handlers, health, metrics, negotiation, routing, watch
from upgrader.sandbox.apiserver.errors import ApiError
from upgrader.sandbox.apiserver.selectors import field_matcher, label_matcher
from upgrader.sandbox.apiserver.storage import Store
from upgrader.sandbox.etcd.errors import EtcdError
from upgrader.sandbox.etcd.kv import EtcdKV

_JSON = "application/json"
_DEFAULT_WATCH_SECONDS = 1800
_SERVED_SUBRESOURCES = (None, "status", "scale", "eviction", "finalize", "log")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What ``python -m upgrader.sandbox.apiserver`` takes on its command line."""

    etcd_endpoints: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 0
    git_version: str = "v1.30.6"
    node_name: str | None = None
    unready: bool = False
    etcd_prefix: str = "/registry"
    emulated_minor: int | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: ServerConfig) -> None:
        super().__init__((config.host, config.port), _Handler)
        self.config = config
        self.store = Store(EtcdKV(config.etcd_endpoints), prefix=config.etcd_prefix)
        self.unready = config.unready
        self.version = health.version_info(config.git_version, emulated_minor=config.emulated_minor)
        self.deprecated = metrics.DeprecatedRequests(config.git_version)
        # open client connections: a stopped server must also drop keep-alive connections and watches,
        # or a pooled client would still be answered by a server that is supposed to be gone
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def drop_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


_TOKEN = re.compile(r"Bearer sandbox-[a-z0-9][a-z0-9:.-]{0,252}")


def _authenticate(authorization: str | None) -> None:
    """Bearer tokens as a token-auth file would take them: the sandbox's kubeconfigs carry
    ``sandbox-<user>``; any other credential is refused with 401, as kube-apiserver refuses an
    unknown or expired one even when anonymous requests are allowed. No credentials at all is an
    anonymous request (the sandbox's own controllers), which the sandbox trusts on loopback."""
    if authorization is not None and not _TOKEN.fullmatch(authorization):
        raise errors.unauthorized()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without NODELAY, Nagle + delayed ACK add 40 ms each
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # stdout/stderr stay quiet
        pass

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, code: int, body: bytes, content_type: str = _JSON) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if content_type.startswith("text/plain"):
            self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, code: int, obj: Any, content_type: str = _JSON) -> None:
        self._send(code, json.dumps(obj).encode(), content_type)

    def _dispatch(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        body = self._read_body()
        try:
            _authenticate(self.headers.get("Authorization"))
            self._route(url.path, query, body)
        except ApiError as e:
            self._send_json(e.code, e.status)
        except EtcdError as e:
            self._send_json(500, errors.internal(f"etcdserver: {e}").status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the sandbox: answer like the real server, keep serving
            traceback.print_exc(file=sys.stderr)
            self._send_json(500, errors.internal(repr(e)).status)

    def _route(self, path: str, query: dict[str, list[str]], body: bytes) -> None:
        segments = [s for s in path.split("/") if s]
        head = segments[0] if segments else ""
        if head == "version" and len(segments) == 1:
            return self._send_json(200, self.server.version)
        if head in ("healthz", "livez", "readyz") and len(segments) <= 2:
            return self._health(head, query, segments[1] if len(segments) == 2 else None)
        if segments == ["metrics"]:
            return self._send(200, self.server.deprecated.text().encode(), "text/plain; version=0.0.4; charset=utf-8")
        accept = self.headers.get("Accept", "")
        if segments in (["api"], ["apis"]):
            return self._discovery_root(head, accept)
        if len(segments) == 2 and head == "apis":
            if segments[1] not in discovery.GROUPS or not segments[1]:
                raise errors.path_not_found()
            return self._send_json(200, discovery.api_group(segments[1]))
        gv = routing.group_version(segments)
        if gv is None:
            raise errors.path_not_found()
        group, version, rest = gv
        self.server.deprecated.note(group, version, rest)
        if not rest:
            doc = discovery.resource_list(group, version)
            if doc is None:
                raise errors.path_not_found()
            return self._send_json(200, doc)
        self._resource(routing.resolve(group, version, rest), query, body, accept)

    def _health(self, endpoint: str, query: dict[str, list[str]], only: str | None) -> None:
        def etcd_ok() -> bool:
            try:
                self.server.store.kv.revision(timeout=2.0)
            except EtcdError:
                return False
            return True

        probe = health.probe_for(etcd_ok=etcd_ok, unready=self.server.unready, endpoint=endpoint)
        code, text = health.run_checks(endpoint, probe, query=query, only=only)
        self._send(code, text.encode(), "text/plain; charset=utf-8")

    def _discovery_root(self, head: str, accept: str) -> None:
        address = f"{self.server.config.host}:{self.server.server_address[1]}"
        doc, content_type = discovery.root(head, accept, server_address=address)
        self._send_json(200, doc, content_type or _JSON)

    def _resource(self, route: routing.Route, query: dict[str, list[str]], body: bytes, accept: str) -> None:
        is_watch = query.get("watch", ["false"])[0] in ("true", "1")
        verb = routing.verb(self.command, route, watch=is_watch)
        if not routing.allowed(route, verb):
            raise errors.method_not_allowed()
        req = handlers.Request(self.command, route.rt, route.namespace, route.name, route.subresource, query, body,
                               self.headers.get("Content-Type", _JSON))
        store = self.server.store
        if route.subresource not in _SERVED_SUBRESOURCES:
            raise errors.method_not_allowed()  # exec, attach, proxy...: there are no containers to reach
        if route.subresource == "log":
            handlers.get(store, req)
            return self._send(200, b"", "text/plain")  # a sandbox container writes no logs
        if verb == "watch":
            return self._watch(req, accept)
        if verb == "list":
            items, revision = handlers.list_objects(store, req)
            return self._send_read(req, items, str(revision), accept, single=False)
        if verb == "get" and route.subresource in (None, "status"):
            _, obj = handlers.get(store, req)
            return self._send_read(req, [obj], obj["metadata"]["resourceVersion"], accept, single=True)
        actions = {"get": handlers.get, "update": handlers.update, "patch": handlers.patch,
                   "delete": handlers.delete, "deletecollection": handlers.delete_collection,
                   "create": handlers.evict if route.subresource == "eviction" else handlers.create}
        action = actions[verb]
        code, obj = action(store, req)
        self._send_json(code, obj)

    def _send_read(self, req: handlers.Request, items: list[Any], rv: str, accept: str, *, single: bool) -> None:
        body, content_type = negotiation.read(req, items, rv, accept, single=single)
        self._send_json(200, body, content_type)

    def _watch(self, req: handlers.Request, accept: str) -> None:
        store = self.server.store
        labels = label_matcher(req.param("labelSelector"))
        fields = field_matcher(req.rt.plural, req.param("fieldSelector"))
        timeout = int(req.param("timeoutSeconds") or _DEFAULT_WATCH_SECONDS)
        rv = req.param("resourceVersion")
        initial: list[Any] = []
        if rv in ("", "0"):
            initial, revision = handlers.list_objects(store, req)
        else:
            revision = int(rv)
        stream = watch.EtcdWatchStream(store.kv, store.collection_prefix(req.rt, req.namespace), revision + 1)
        fmt = negotiation.table_format(accept)
        self.send_response(200)
        self.send_header("Content-Type", _JSON)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def write(kind: str, obj: Any) -> None:
            data = negotiation.watch_event(store, req, fmt, kind, obj)
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        try:
            for obj in initial:
                write("ADDED", obj)
            watch.stream(stream, decode=Store.decode, matches=lambda o: labels(o) and fields(o),
                         deadline=time.monotonic() + timeout, write=write, client_gone=self._client_gone)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            stream.close()
        self.close_connection = True

    def _client_gone(self) -> bool:
        """A watcher that hung up: its socket reads as closed (it never sends anything mid-watch)."""
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


class ApiServer:
    """A running API server (in a thread of this process); ``stop()`` shuts it down."""

    def __init__(self, config: ServerConfig) -> None:
        self._httpd = _HTTPServer(config)
        self.config = config
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def store(self) -> Store:
        return self._httpd.store

    def set_unready(self, unready: bool) -> None:
        """Flip the "apiserver-unready" fault at run time (only /readyz changes)."""
        self._httpd.unready = unready

    def start(self) -> ApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"sandbox-apiserver-{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.1)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.drop_connections()
        if self._thread is not None:
            self._thread.join(5)


def serve_in_thread(config: ServerConfig) -> ApiServer:
    """Start an API server on a background thread (port 0 = pick a free one); for fast tests."""
    return ApiServer(config).start()
