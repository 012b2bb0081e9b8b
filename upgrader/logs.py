"""The single ``structlog.configure()``: a console renderer on a TTY, JSON lines otherwise.

Every long-running part of upgrader (the sandbox supervisor today, the apply engine next) calls
:func:`configure` once at start-up and logs events in past tense with bound context
(``log.info("member_started", member="cp-1")``). Records from the standard ``logging`` module
(libraries, older modules) go through the same renderer, so a log file has one format.
Never log kubeconfigs, tokens or snapshot contents; in case one slips through, every string in an
event (its message, its values, a formatted traceback) is redacted just before it is rendered
(upgrader.domain.redaction says what a secret looks like).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog

from upgrader.domain.redaction import redact_value

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def redact_event(_logger: object, _method: str, event_dict: structlog.types.EventDict) -> structlog.types.EventDict:
    """A structlog processor: the event with every secret in its strings hidden."""
    return cast(structlog.types.EventDict, redact_value(dict(event_dict)))  # keys too: password="x" is hidden


def configure(*, stream: TextIO | None = None, level: int = logging.INFO, json: bool | None = None) -> None:
    """Route structlog and the standard logging module to ``stream`` (default stderr).

    ``json=None`` decides by the stream: a console renderer for a person at a TTY, JSON lines for
    files and pipes (what the supervisor's log and CI collect).
    """
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=[*_SHARED, structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    # Tracebacks are formatted before redaction, so that a secret in an exception's text is hidden too.
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=_SHARED, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
        redact_event, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for one part of upgrader, e.g. ``get_logger("upgrader.sandbox.supervisor")``."""
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
