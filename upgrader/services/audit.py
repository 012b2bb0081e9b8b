"""The audit trail: every use case that changes the ledger appends an event in the same transaction."""

from __future__ import annotations

from typing import Any

from upgrader.ports import UnitOfWork
from upgrader.services.wiring import AppContext


def record_event(
    app: AppContext, uow: UnitOfWork, kind: str, *, cluster: str | None, data: dict[str, Any] | None = None
) -> None:
    uow.repo.append_event(
        kind=kind,
        actor=app.actor.user,
        host=app.actor.host,
        command_line=app.actor.command_line,
        cluster=cluster,
        data=data,
    )
