"""The schedule's webhook against a real HTTP server on loopback: what it sends, what it retries, and
that a failure is a returned reason (never an exception, never a token in the log)."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from upgrader import __version__, logs
from upgrader.web.webhook import post_summary, safe_url

FAST = {"timeout": 2.0, "wait_max": 0.02}  # retries wait at most 20 ms: the tests stay fast


@dataclass
class Receiver:
    """A webhook receiver that answers with ``statuses`` in turn (the last one repeats)."""

    statuses: list[int]
    delay: float = 0.0  # seconds before each answer
    requests: list[dict] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # extra headers of every answer
    url: str = ""


@contextmanager
def receiver(*statuses: int, headers: dict[str, str] | None = None, delay: float = 0.0) -> Iterator[Receiver]:
    state = Receiver(list(statuses), headers=headers or {}, delay=delay)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            status = state.statuses[min(len(state.requests), len(state.statuses)) - 1]
            time.sleep(state.delay)
            try:
                self.send_response(status)
                for key, value in state.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (the timeout test)
                pass

        def log_message(self, *args: object) -> None:  # keep the test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/upgrader"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Everything upgrader logs during the test, as JSON lines."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    out = io.StringIO()
    logs.configure(stream=out, json=True, level=logging.DEBUG)
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


SUMMARY = {"kind": "schedule-tick", "exit_code": 5, "clusters": [{"name": "prod", "outcome": "rolled-back"}],
           "note": "naïve ✓"}


def test_the_receiver_gets_the_exact_json_with_our_headers():
    with receiver(200) as hook:
        assert post_summary(hook.url, SUMMARY, **FAST) is None
    [request] = hook.requests
    assert json.loads(request["body"]) == SUMMARY
    assert request["path"] == "/hooks/upgrader"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == f"upgrader/{__version__}"


def test_two_server_errors_then_success_is_three_requests_and_success():
    with receiver(500, 503, 200) as hook:
        assert post_summary(hook.url, SUMMARY, **FAST) is None
    assert len(hook.requests) == 3
    assert all(json.loads(r["body"]) == SUMMARY for r in hook.requests)


def test_too_many_requests_is_retried_until_the_attempts_run_out(captured):
    with receiver(429) as hook:
        reason = post_summary(hook.url, SUMMARY, attempts=3, **FAST)
    assert len(hook.requests) == 3
    assert reason is not None and "HTTP 429" in reason and "3 attempts" in reason and "\n" not in reason
    assert "webhook_failed" in captured.getvalue()


def test_a_receiver_that_does_not_answer_in_time_is_retried_then_reported():
    with receiver(200, delay=0.5) as hook:
        reason = post_summary(hook.url, SUMMARY, timeout=0.1, attempts=2, wait_max=0.02)
        assert len(hook.requests) == 2
    assert reason is not None and "timed out" in reason and "2 attempts" in reason


def test_a_client_error_is_not_retried():
    with receiver(400) as hook:
        reason = post_summary(hook.url, SUMMARY, **FAST)
    assert len(hook.requests) == 1
    assert reason is not None and "HTTP 400" in reason and "1 attempt)" in reason


def test_a_redirect_is_not_followed():
    with receiver(200) as elsewhere, receiver(302, headers={"Location": elsewhere.url}) as hook:
        reason = post_summary(hook.url, SUMMARY, **FAST)
    assert (len(hook.requests), len(elsewhere.requests)) == (1, 0)
    assert reason is not None and "HTTP 302" in reason and "redirects are not followed" in reason


def test_nothing_listening_is_a_reason_returned_quickly(captured):
    with socket.socket() as s:  # a port that was free a moment ago, and that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    reason = post_summary(f"http://127.0.0.1:{port}/hook", SUMMARY, **FAST)
    assert time.monotonic() - started < 2.0
    assert reason is not None and "refused" in reason.lower() and "4 attempts" in reason
    assert "webhook_failed" in captured.getvalue()


def test_a_token_in_the_query_or_userinfo_never_reaches_the_log_or_the_reason(captured):
    with receiver(500) as hook:
        host = hook.url.removeprefix("http://")
        url = f"http://hookuser:PASSWORD-4711@{host}?t=QUERY-TOKEN-0815&sig=abc#frag"
        reason = post_summary(url, SUMMARY, attempts=2, **FAST)
    assert reason is not None
    logged = captured.getvalue()
    assert "webhook_failed" in logged and hook.url in logged  # the URL is named, by scheme, host and path
    for secret in ("QUERY-TOKEN-0815", "PASSWORD-4711", "hookuser", "sig=abc"):
        assert secret not in logged and secret not in reason
    # The query reached the receiver, and the userinfo went as Basic authentication, not in the URL.
    assert hook.requests[0]["path"] == "/hooks/upgrader?t=QUERY-TOKEN-0815&sig=abc"
    assert hook.requests[0]["headers"]["Authorization"] == "Basic aG9va3VzZXI6UEFTU1dPUkQtNDcxMQ=="


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "/relative/hook", "http:///no-host",
                                 "http://127.0.0.1:notaport/x", "http://exa mple.com/"])
def test_a_url_we_do_not_post_to_is_a_reason_not_a_request(url, captured):
    reason = post_summary(url, SUMMARY, **FAST)
    assert reason is not None and reason.startswith("webhook URL") and "\n" not in reason
    assert "webhook_refused" in captured.getvalue()


def test_a_document_that_is_not_json_is_a_programming_error():
    with pytest.raises(TypeError):
        post_summary("http://127.0.0.1:9/", {"when": object()}, **FAST)


def test_the_shown_url_keeps_scheme_host_port_and_path_only():
    assert safe_url("https://u:p@Hooks.Example.com:8443/a/b?token=x#f") == "https://hooks.example.com:8443/a/b"
    assert safe_url("http://[::1]:80/x?y") == "http://[::1]:80/x"
