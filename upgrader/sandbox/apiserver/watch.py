"""``?watch=true``: Kubernetes watch events from etcd's own watch stream.

A reader thread follows etcd's streaming ``/v3/watch`` gateway call (reconnecting to another member
from the last revision seen if one dies) and feeds a queue; the request thread turns etcd PUT/DELETE
events into ADDED/MODIFIED/DELETED for the client's selectors, as the real watch cache does (an
object that stops matching a selector is DELETED for that watcher).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

from upgrader.sandbox.etcd.kv import EtcdKV, KeyValue, kv_from_json, prefix_range_end

Obj = dict[str, Any]
Event = tuple[str, KeyValue, KeyValue | None]  # etcd type (PUT/DELETE), kv, prev_kv


class EtcdWatchStream:
    """Events under ``prefix`` from ``start_revision`` on; ``close()`` ends :meth:`events` from any thread."""

    def __init__(self, kv: EtcdKV, prefix: str, start_revision: int) -> None:
        self._kv, self._prefix, self._next = kv, prefix, start_revision
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._closed = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        threading.Thread(target=self._run, name="etcd-watch", daemon=True).start()

    def _run(self) -> None:
        endpoint = 0
        while not self._closed.is_set():
            # a dead member or a cut stream: follow the next endpoint from the last revision seen
            with contextlib.suppress(OSError, ValueError, http.client.HTTPException):
                self._follow(self._kv.endpoints[endpoint % len(self._kv.endpoints)])
            endpoint += 1
            self._closed.wait(0.2)
        self._queue.put(None)

    def _follow(self, endpoint: str) -> None:
        url = urllib.parse.urlsplit(endpoint)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=5)
        self._conn = conn
        body = {"create_request": {"key": base64.b64encode(self._prefix.encode()).decode(),
                                   "range_end": prefix_range_end(self._prefix), "start_revision": str(self._next),
                                   "prev_kv": True}}
        try:
            conn.request("POST", "/v3/watch", json.dumps(body), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if conn.sock is not None:
                conn.sock.settimeout(None)  # a quiet prefix is not an error; close() unblocks us
            while not self._closed.is_set():
                line = resp.readline()
                if not line:
                    return
                for ev in json.loads(line).get("result", {}).get("events", []):
                    kv = kv_from_json(ev["kv"])
                    prev = kv_from_json(ev["prev_kv"]) if "prev_kv" in ev else None
                    self._next = kv.mod_revision + 1
                    self._queue.put((ev.get("type", "PUT"), kv, prev))
        finally:
            conn.close()

    def events(self, *, timeout: float) -> Iterator[Event | None]:
        """Yield events; yields None every ``timeout`` seconds of silence so the caller can stop."""
        while True:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                yield None
                continue
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._closed.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)


def translate(
    event: Event, decode: Callable[[KeyValue], Obj], matches: Callable[[Obj], bool]
) -> tuple[str, Obj] | None:
    """One etcd event as the Kubernetes event this watcher should see, or None."""
    kind, kv, prev = event
    old = decode(prev) if prev is not None else None
    if kind == "DELETE":
        if old is None or not matches(old):
            return None
        old["metadata"]["resourceVersion"] = str(kv.mod_revision)
        return "DELETED", old
    new = decode(kv)
    new_ok, old_ok = matches(new), old is not None and matches(old)
    if new_ok:
        return ("MODIFIED" if old_ok else "ADDED"), new
    if old_ok:
        return "DELETED", new
    return None


def stream(
    watch: EtcdWatchStream, *, decode: Callable[[KeyValue], Obj], matches: Callable[[Obj], bool],
    deadline: float, write: Callable[[str, Obj], None], client_gone: Callable[[], bool],
) -> None:
    """Write events until the deadline passes, the client hangs up, or ``write`` raises."""
    try:
        for event in watch.events(timeout=0.5):
            if time.monotonic() >= deadline:
                return
            if event is None:
                if client_gone():
                    return
                continue
            out = translate(event, decode, matches)
            if out is not None:
                write(*out)
    finally:
        watch.close()
