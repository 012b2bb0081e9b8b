"""External etcd behind port forwards, on a real TLS etcd cluster: each member is reached through a
127.0.0.1 port that is not its client URL (as an SSH local forward is), and the snapshot is saved
through the forward that answered as the chosen member, never through its unforwarded client URL."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from urllib.parse import urlsplit

import pytest

from tests.integration.etcd_cluster import TlsEtcdCluster
from upgrader.etcd.tool import EtcdctlTool
from upgrader.services.etcd_access import EtcdSession
from upgrader.services.snapshots import choose_member, endpoint_of

pytestmark = [pytest.mark.etcd, pytest.mark.usefixtures("etcd_installed")]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextmanager
def forward(target: str) -> Iterator[int]:
    """A plain TCP forward from a free 127.0.0.1 port to ``target`` (host:port), closed on exit."""
    host, port = urlsplit(target).hostname, urlsplit(target).port
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection((str(host), int(port or 0)), timeout=5)
            upstream.settimeout(None)
            conns.extend((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        for c in conns:
            c.close()
        thread.join(timeout=5)


def test_a_forwarded_member_is_saved_through_its_own_forward(tls_etcd: TlsEtcdCluster, tmp_path: object) -> None:
    with ExitStack() as stack:
        ports = {m.name: stack.enter_context(forward(m.client_url)) for m in tls_etcd.members}
        endpoints = [f"https://127.0.0.1:{p}" for p in ports.values()]
        tool = EtcdctlTool()
        members = tool.members(endpoints, tls_etcd.client_tls)
        assert {m.name: m.endpoint for m in members} == {n: f"https://127.0.0.1:{p}" for n, p in ports.items()}
        session = EtcdSession(tool=tool, endpoints=endpoints, tls=tls_etcd.client_tls, external=True)
        chosen = choose_member(members)
        through = endpoint_of(session, chosen)
        assert through == f"https://127.0.0.1:{ports[chosen.name]}" and through not in chosen.client_urls
