"""upgrader.logs: one configuration; JSON lines for files and pipes, a console renderer at a TTY."""

from __future__ import annotations

import io
import json
import logging

import pytest

from upgrader import logs


@pytest.fixture(autouse=True)
def _restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_pipe_gets_json_lines_from_structlog_and_stdlib_loggers_alike():
    out = io.StringIO()  # not a TTY
    logs.configure(stream=out)
    logs.get_logger("upgrader.test").info("member_started", member="cp-1")
    logging.getLogger("upgrader.legacy").warning("plain %s", "message")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert (first["event"], first["member"], first["level"], first["logger"]) == (
        "member_started", "cp-1", "info", "upgrader.test")
    assert (second["event"], second["level"]) == ("plain message", "warning")
    assert first["timestamp"].endswith("Z")


def test_a_terminal_gets_one_readable_line_per_event():
    out = io.StringIO()
    logs.configure(stream=out, json=False)
    logs.get_logger("upgrader.test").info("gate_failed", gate="readyz")
    line = out.getvalue().strip()
    assert "gate_failed" in line and "gate=readyz" in line and not line.startswith("{")


def test_below_the_level_nothing_is_written():
    out = io.StringIO()
    logs.configure(stream=out, level=logging.WARNING)
    logs.get_logger("upgrader.test").info("step_started")
    assert out.getvalue() == ""


def test_secrets_in_messages_values_and_tracebacks_are_hidden():
    out = io.StringIO()
    logs.configure(stream=out)
    log = logs.get_logger("upgrader.test")
    log.info("ledger_opened", url="postgresql://ops:hunter2@db/ledger", tried=["token=hunter2"])
    try:
        raise RuntimeError("connect to host=db password=hunter2 failed")
    except RuntimeError:
        log.exception("ledger_failed")
        logging.getLogger("upgrader.legacy").exception("retrying %s", "postgresql://ops@db/x?password=hunter2")
    first, second, third = (json.loads(line) for line in out.getvalue().splitlines())
    assert "hunter2" not in out.getvalue()
    assert (first["url"], first["tried"]) == ("postgresql://ops:***@db/ledger", ["token=***"])
    assert "password=*** failed" in second["exception"]
    assert third["event"] == "retrying postgresql://ops@db/x?password=***" and "RuntimeError" in third["exception"]


def test_a_field_named_as_a_secret_is_hidden_whatever_its_value():
    out = io.StringIO()
    logs.configure(stream=out)
    logs.get_logger("upgrader.test").info("connected", password="hunter2", api_token="hunter2", user="ops")
    line = json.loads(out.getvalue())
    assert (line["password"], line["api_token"], line["user"]) == ("***", "***", "ops")


def test_a_terminal_never_sees_a_secret_either():
    out = io.StringIO()
    logs.configure(stream=out, json=False)
    log = logs.get_logger("upgrader.test")
    try:
        raise RuntimeError("Authorization: Bearer eyJhbGciOi.hunter2")
    except RuntimeError:
        log.exception("request_failed", url="https://admin:hunter2@10.0.0.1:6443")
    assert "hunter2" not in out.getvalue() and "Bearer ***" in out.getvalue()
