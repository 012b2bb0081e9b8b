"""A run's progress: a live per-node view on a terminal, one JSON log line per step transition otherwise.

Both go to stderr, so ``-o json`` keeps stdout for the one result document. The engine reports from
its worker threads; the view keeps the latest transition per node under a lock.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any

from upgrader.engine.context import StepEvent

CLUSTER_ROW = "(cluster)"


class Progress:
    def __init__(self, *, total: int, live: bool | None = None) -> None:
        self.total = total
        self.live = sys.stderr.isatty() if live is None else live
        self._rows: dict[str, StepEvent] = {}
        self._lock = threading.Lock()
        self._view: Any = None
        self._log: Any = None
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._view = Live(get_renderable=self._table, console=Console(stderr=True), refresh_per_second=4,
                              transient=False)
            self._view.start()
        else:
            from upgrader import logs

            logs.configure(json=True)
            self._log = logs.get_logger("upgrader.apply")
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._view is not None:
            self._view.refresh()
            self._view.stop()

    def report(self, event: StepEvent) -> None:
        with self._lock:
            self._rows[event.node or CLUSTER_ROW] = event
        if self._log is not None:
            self._log.info(f"step_{event.status}", run=event.run_id, step=event.n, action=event.action,
                           node=event.node, version=event.version, **({"detail": event.detail} if event.detail else {}))

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self._started
        table = Table(title=f"upgrader apply: {int(elapsed // 60)}m{int(elapsed % 60):02d}s", title_justify="left")
        for column in ("node", "step", "action", "version", "status", "detail"):
            table.add_column(column)
        with self._lock:
            rows = sorted(self._rows.items(), key=lambda kv: (kv[0] == CLUSTER_ROW, kv[0]))
        for node, e in rows:
            table.add_row(node, f"{e.n}/{self.total}", e.action, e.version or "", e.status, e.detail[:60])
        return table
