"""Where a step's time went: node commands, waiting, the cluster API and the ledger, per thread.

A run reports its own overhead per step as the step's wall time minus the time spent waiting on
the cluster (``outputs.timing`` in `upgrader runs show`). For that difference to mean "upgrader's own
work", every node command, file transfer, API call and sleep a step makes must be counted, however
it is reached: through :meth:`RunContext.run`, or through a node transport or the cluster API handed
to a library function (the package-manager probe, the drain), which is why steps only ever see
transports and the API wrapped here. The timer is per thread: a worker batch runs one thread per
node, each timing its own step. All time comes from the run's Clock, so engine tests on a fake clock
see exact figures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, TypeVar

from upgrader.ports import Clock, ClusterApi, CommandResult, NodeTransport

Kind = Literal["node", "wait", "api", "ledger"]
T = TypeVar("T")


class StepTimer(threading.local):
    """Seconds the current thread spent, since its step began, inside node commands and transfers
    (``node``), sleeps and health gates (``wait``), cluster API calls (``api``) and ledger writes (``ledger``)."""

    node: float = 0.0
    wait: float = 0.0
    api: float = 0.0
    ledger: float = 0.0

    def reset(self) -> None:
        self.node = self.wait = self.api = self.ledger = 0.0

    def add(self, kind: Kind, seconds: float) -> None:
        setattr(self, kind, getattr(self, kind) + seconds)

    @contextmanager
    def counting(self, kind: Kind, clock: Clock) -> Iterator[None]:
        """Everything inside counts as ``kind``, once: a health gate's readings (API calls, etcd health)
        are part of waiting for it, not API time on top of it."""
        saved = (self.node, self.wait, self.api, self.ledger)
        started = clock.monotonic()
        try:
            yield
        finally:
            self.node, self.wait, self.api, self.ledger = saved
            self.add(kind, clock.monotonic() - started)


class TimedTransport:
    """A node transport whose calls count as node time."""

    def __init__(self, inner: NodeTransport, timer: StepTimer, clock: Clock) -> None:
        self._inner, self._timer, self._clock = inner, timer, clock

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        with self._timer.counting("node", self._clock):
            return self._inner.run(argv, timeout)

    def read_file(self, path: str) -> bytes:
        with self._timer.counting("node", self._clock):
            return self._inner.read_file(path)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        with self._timer.counting("node", self._clock):
            self._inner.write_file(path, data, mode)


class TimedApi:
    """A ClusterApi whose calls count as API time (explicit methods, so mypy checks it against the port)."""

    def __init__(self, inner: ClusterApi, timer: StepTimer, clock: Clock) -> None:
        self._inner, self._timer, self._clock = inner, timer, clock

    def _call(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._timer.counting("api", self._clock):
            return call(*args, **kwargs)

    def observe_inventory(self) -> dict[str, Any]:
        return self._call(self._inner.observe_inventory)

    def readyz(self) -> tuple[int, str]:
        return self._call(self._inner.readyz)

    def get_path(self, path: str, *, timeout: float) -> tuple[int, str]:
        return self._call(self._inner.get_path, path, timeout=timeout)

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._call(self._inner.list_nodes)

    def list_pods(self) -> list[dict[str, Any]]:
        return self._call(self._inner.list_pods)

    def list_pdbs(self) -> list[dict[str, Any]]:
        return self._call(self._inner.list_pdbs)

    def metrics(self) -> str:
        return self._call(self._inner.metrics)

    def get_node(self, name: str) -> dict[str, Any] | None:
        return self._call(self._inner.get_node, name)

    def list_control_plane_pods(self) -> list[dict[str, Any]]:
        return self._call(self._inner.list_control_plane_pods)

    def list_node_pods(self, node: str) -> list[dict[str, Any]]:
        return self._call(self._inner.list_node_pods, node)

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(self._inner.patch_node, name, patch)

    def evict_pod(self, namespace: str, name: str) -> tuple[int, str]:
        return self._call(self._inner.evict_pod, namespace, name)

    def delete_pod(self, namespace: str, name: str, *, grace_seconds: int = 0) -> bool:
        return self._call(self._inner.delete_pod, namespace, name, grace_seconds=grace_seconds)

    def get_configmap(self, namespace: str, name: str) -> dict[str, str] | None:
        return self._call(self._inner.get_configmap, namespace, name)

    def server_version(self) -> dict[str, Any]:
        return self._call(self._inner.server_version)

    def patch_configmap(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        self._call(self._inner.patch_configmap, namespace, name, data)


class WaitingClock:
    """The run's clock, whose sleeps count as waiting (what a drain sleeps while evicted pods terminate)."""

    def __init__(self, inner: Clock, timer: StepTimer) -> None:
        self._inner, self._timer = inner, timer

    def now(self) -> datetime:
        return self._inner.now()

    def monotonic(self) -> float:
        return self._inner.monotonic()

    def sleep(self, seconds: float) -> None:
        with self._timer.counting("wait", self._inner):
            self._inner.sleep(seconds)
