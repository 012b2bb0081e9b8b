"""A real HTTP server on loopback serving a directory in the release bucket's layout (stable-1.N.txt).

Python's own static file server, as a mirror would use any web server: it sends each file's mtime as
Last-Modified and 404 for what is not there. ``redirects`` and ``statuses`` answer chosen paths
otherwise (a redirect, a 500) before the files are looked at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path in self.server.statuses:
            self.send_error(self.server.statuses[self.path])
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows stderr of failing tests only, and these lines are noise there


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: the client's parallel connections would overflow it and wait
    # a whole SYN retransmit (1 s). Web servers listen with far more (nginx 511).
    request_queue_size = 128
    redirects: dict[str, str]
    statuses: dict[str, int]
    requests: list[str]


class ListingServer:
    """``url`` is the listing's base (``http://127.0.0.1:PORT/release``); files go under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "release").mkdir(parents=True, exist_ok=True)
        self._server = _Server(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self._server.redirects, self._server.statuses, self._server.requests = {}, {}, []
        self.port = int(self._server.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.base}/release"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def redirects(self) -> dict[str, str]:
        return self._server.redirects

    @property
    def statuses(self) -> dict[str, int]:
        return self._server.statuses

    @property
    def requests(self) -> list[str]:
        return self._server.requests

    def write(self, minor: int, body: str | bytes, *, modified: datetime | None = None) -> Path:
        path = self.root / "release" / f"stable-1.{minor}.txt"
        path.write_bytes(body.encode() if isinstance(body, str) else body)
        if modified is not None:
            stamp = modified.timestamp()
            os.utime(path, (stamp, stamp))
        return path

    def remove(self, minor: int) -> None:
        (self.root / "release" / f"stable-1.{minor}.txt").unlink()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def listing_server(root: Path) -> Iterator[ListingServer]:
    server = ListingServer(root)
    try:
        yield server
    finally:
        server.close()
