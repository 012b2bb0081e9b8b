"""Settings and the per-invocation context the CLI hands to the services.

Precedence: command-line flag > UPGRADER_* environment variable > default.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upgrader.ledger.db import Ledger


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, for the audit trail."""

    user: str
    host: str
    command_line: str

    @classmethod
    def current(cls) -> Actor:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(user=user, host=socket.gethostname(), command_line=shlex.join(["upgrader", *sys.argv[1:]]))


@dataclass
class AppContext:
    """What every command needs: where the ledger is, and who is acting. The ledger opens lazily."""

    db: str | None = None
    debug: bool = False
    actor: Actor = field(default_factory=Actor.current)
    _ledger: Ledger | None = None

    def ledger(self) -> Ledger:
        if self._ledger is None:
            from upgrader.ledger.db import open_ledger, resolve_url

            self._ledger = open_ledger(resolve_url(self.db, os.environ))
        return self._ledger

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.engine.dispose()
            self._ledger = None
