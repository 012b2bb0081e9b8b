"""A plan's steps, written in bulk: plans for large fleets have 10^5 steps.

SqlRepository.save_plan builds the rows (plain tuples) before its write transaction takes the lock,
and inserts them here with one executemany, not an ORM object per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from upgrader.ledger.models import PlanStep

COLUMNS = ("n", "action", "node", "version", "batch", "reversibility")
_SQLITE_INSERT = (
    f"INSERT INTO {PlanStep.__tablename__} (plan_id, {', '.join(COLUMNS)}) "
    f"VALUES ({{plan_id}}, {', '.join('?' * len(COLUMNS))})"
)


def row(step: Mapping[str, Any]) -> tuple[Any, ...]:
    """A plan_steps row in COLUMNS order, without its plan (which has no id yet)."""
    return (step["n"], step["action"], step.get("node"), step.get("version"), step.get("batch"), step["reversibility"])


def insert(session: Session, plan_id: int, rows: list[tuple[Any, ...]]) -> None:
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # Straight to the driver, under the write lock: SQLAlchemy's processing of each row's
        # parameters was a third of the write (the values are plain str and int already). The
        # plan id, an integer the database just gave us, is written into the statement.
        connection.exec_driver_sql(_SQLITE_INSERT.format(plan_id=int(plan_id)), rows)
    else:
        values = [{"plan_id": plan_id, **dict(zip(COLUMNS, each, strict=True))} for each in rows]
        connection.execute(sa.insert(PlanStep.__table__), values)  # type: ignore[arg-type]
