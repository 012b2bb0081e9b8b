"""The controlPlaneEndpoint: a TCP load balancer on loopback in front of the API servers.

Like the haproxy of kubeadm's HA guide, it health-checks every backend (``/readyz``) and passes
each new connection to a healthy one, round robin. When none is healthy it still passes
connections to any backend that accepts TCP, so clients see the API's own errors (a /readyz 500)
rather than a refused connection; when no backend is up at all, connections are closed.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Callable

from upgrader.sandbox.kubeclient import KubeClient

CHECK_PERIOD = 0.5


def _check(url: str) -> str:
    """'ready', 'up' (answers but not ready) or 'down'."""
    code = KubeClient(url, timeout=1).readyz()
    return "ready" if code == 200 else ("down" if code == 0 else "up")


class LoadBalancer:
    def __init__(self, port: int, backends: Callable[[], list[int]]) -> None:
        """backends() returns the API server ports that should currently be considered."""
        self.port = port
        self._backends = backends
        self._state: dict[int, str] = {}
        self._rr = itertools.count()
        self._stop = threading.Event()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))  # OSError here is a port clash: the caller reports it
        self._sock.listen(256)

    def start(self) -> None:
        threading.Thread(target=self._health_loop, name="lb-health", daemon=True).start()
        threading.Thread(target=self._accept_loop, name="lb-accept", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()

    def states(self) -> dict[int, str]:
        return dict(self._state)

    def _health_loop(self) -> None:
        while not self._stop.is_set():
            self._state = {p: _check(f"http://127.0.0.1:{p}") for p in self._backends()}
            self._stop.wait(CHECK_PERIOD)

    def pick(self) -> int | None:
        state = self._state
        for wanted in ("ready", "up"):
            ports = [p for p, s in sorted(state.items()) if s == wanted]
            if ports:
                return ports[next(self._rr) % len(ports)]
        return None

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        port = self.pick()
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=2) if port else None
        except OSError:
            upstream = None
        if upstream is None:
            client.close()
            return
        upstream.settimeout(None)
        # Small request/response writes must not wait for Nagle's delayed-ACK dance (40 ms each).
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        src.close()
