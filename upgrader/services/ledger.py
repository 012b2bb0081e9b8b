"""Ledger administration: the schema revision, and explicit migrations (PostgreSQL is never migrated
implicitly; a SQLite file is migrated on first use)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from upgrader.errors import SchemaMismatchError
from upgrader.services.wiring import AppContext


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None  # None: an empty database
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_state(app: AppContext) -> SchemaState:
    from upgrader.ledger import db

    return SchemaState(current=db.current(_url(app), busy_timeout=app.busy_timeout), head=db.head())


def upgrade_schema(app: AppContext) -> SchemaState:
    from upgrader.ledger import db

    db.upgrade(_url(app), busy_timeout=app.busy_timeout)
    return schema_state(app)


def check_schema(app: AppContext) -> SchemaState:
    """The state when it is up to date; SchemaMismatchError (exit 2) with the remedy otherwise."""
    state = schema_state(app)
    if not state.up_to_date:
        raise SchemaMismatchError(f"ledger schema is at {state.current or 'no revision'}, this upgrader needs "
                                  f"{state.head}: run `upgrader db upgrade`")
    return state


def _url(app: AppContext) -> str:
    from upgrader.ledger.db import resolve_url

    return resolve_url(app.db, os.environ)
