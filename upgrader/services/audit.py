"""The audit trail: every use case that changes the ledger appends an event in the same transaction.

No secret reaches it: the command line and the event's text are redacted here, whoever built the
actor (upgrader.domain.redaction says what a secret looks like).
"""

from __future__ import annotations

from typing import Any, cast

from upgrader.domain.redaction import redact_command_line, redact_value
from upgrader.ports import UnitOfWork
from upgrader.services.wiring import AppContext


def record_event(
    app: AppContext, uow: UnitOfWork, kind: str, *, cluster: str | None, data: dict[str, Any] | None = None,
    run_id: int | None = None,
) -> None:
    uow.repo.append_event(
        kind=kind,
        actor=app.actor.user,
        host=app.actor.host,
        command_line=redact_command_line(app.actor.command_line),
        cluster=cluster,
        run_id=run_id,
        data=cast("dict[str, Any] | None", redact_value(data)),
    )

