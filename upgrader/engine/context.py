"""What a run's steps work with: the run's identity and lease token, its options, and the ports.

The engine sees only ports (ledger, cluster API, node transports, clock) and three hooks the
services provide for what needs a use case of theirs: the preflight, a snapshot under the run's
lease, and etcd's health. Every node command and file goes through :meth:`RunContext.run`,
:meth:`~RunContext.read`, :meth:`~RunContext.write` or :meth:`~RunContext.node`, which retry an
unreachable node with backoff. The context hands steps its transports and API wrapped so that,
per thread, the time spent on nodes, the API and waiting is counted however a step reaches them
(see :mod:`upgrader.engine.timing`), and the run can report its own overhead per step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from upgrader.domain.plans import Plan, Step
from upgrader.engine.timing import Kind, StepTimer, TimedApi, TimedTransport, WaitingClock
from upgrader.errors import NodeUnreachableError, TransportError
from upgrader.ports import Clock, ClusterApi, CommandResult, NodeTransport, UnitOfWork

T = TypeVar("T")
UNREACHABLE = 255  # ssh's own failure (and the sandbox transport's)
TIMED_OUT = 124  # `timeout`'s exit code


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    """``apply``'s flags, stored with the run so ``resume`` continues with the same ones."""

    auto_rollback: bool = True
    drain_timeout: float = 600.0
    gate_timeout: float = 600.0
    force_drain: bool = False
    gate_passes: int = 3  # consecutive good readings before a gate passes (flap damping)
    gate_interval: float = 2.0  # seconds between readings
    command_timeout: float = 900.0  # seconds a node command may take (kubeadm waits up to 5 min per component)
    node_attempts: int = 4  # tries of a command on an unreachable node before the step fails
    node_backoff: float = 2.0  # first wait between those tries, doubling
    evict_retry: float = 5.0  # seconds between evictions a PodDisruptionBudget refused (kubectl's 5 s)
    rehearse: bool = False  # rehearse the rollback to each hop's snapshot before the hop (`apply --rehearse`)
    scheduled: bool = False  # started by `upgrader schedule tick`: the next tick resumes it if it stops

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ApplyOptions:
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class RollbackHooks:
    """What a rollback's steps need from the use case: the snapshot's files (read from its store on this
    host), whether a node's etcd member still answers, and the check of the cluster's objects."""

    snapshot_file: Callable[[], bytes]  # the etcd snapshot, verified (its contents are never logged)
    artefacts: Callable[[str], list[tuple[str, str, bytes]]]  # node -> (kind, node path, data) to reinstate
    member_up: Callable[[str], bool]  # whether the etcd member of this node still answers
    verify_objects: Callable[[], tuple[bool, str]]  # objects match the snapshot; what was seen


@dataclass(frozen=True, slots=True)
class Hooks:
    """Use cases the engine calls back into (they live in services, above it)."""

    preflight: Callable[[], dict[str, Any]]  # PreflightError when refused
    snapshot: Callable[[Step], dict[str, Any]]  # a verified snapshot under the run's lease: {"snapshot_id": ...}
    etcd_health: Callable[[], tuple[bool, str]]  # every member healthy and one leader; what was seen
    event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None  # an audit event (an override)
    rollback: RollbackHooks | None = None  # only for a rollback's run


@dataclass(frozen=True, slots=True)
class RunbookHooks:
    """What a runbook run's steps need from the use cases (services/runbooks.py sets them).

    ``confirm``: asked before each step not yet started; None to go on, else why the run stops there
    (resumable): the person declined, or no one can be asked. ``act``/``observe``/``describe``: per
    runbook action name, the parts of its handler that run a use case (a rollback, a certificate
    renewal, the resume of an upgrade run) as a child run under this run's lease."""

    confirm: Callable[[RunContext, Step], str | None] = lambda ctx, step: None
    act: Mapping[str, Callable[[RunContext, Step], dict[str, Any]]] = field(default_factory=dict)
    observe: Mapping[str, Callable[[RunContext, Step], dict[str, Any] | None]] = field(default_factory=dict)
    describe: Mapping[str, Callable[[RunContext, Step], list[str]]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepEvent:
    """A step's transition, for the progress view and the JSON log."""

    run_id: int
    n: int
    action: str
    node: str | None
    version: str | None
    status: str  # running, succeeded, failed, skipped, observed
    detail: str = ""


@dataclass
class RunContext:
    run_id: int
    token: int
    cluster: str
    plan: Plan
    options: ApplyOptions
    unit_of_work: Callable[[], UnitOfWork]
    api: ClusterApi
    transports: Callable[[str], NodeTransport]
    clock: Clock
    hooks: Hooks
    report: Callable[[StepEvent], None] = lambda event: None
    stop: threading.Event = field(default_factory=threading.Event)  # Ctrl-C: stop at the next safe point
    lost: threading.Event = field(default_factory=threading.Event)  # the lease was taken over
    timer: StepTimer = field(default_factory=StepTimer)
    managers: dict[str, str] = field(default_factory=dict)  # node -> apt | dnf | yum, found once
    repo_files: dict[str, str | None] = field(default_factory=dict)  # node -> its Kubernetes repository file
    document: Mapping[str, Any] = field(default_factory=dict)  # the plan's document (a rollback's spec)
    finalize_step: int | None = None  # `upgrader finalize`: this soak step ends now (the operator said so)
    # a scheduled run: asked before each step that has not started; a reason stops the run there,
    # resumable (the maintenance window closes before what starts at this step could finish)
    pause: Callable[[Step], str | None] | None = None
    runbook: RunbookHooks | None = None  # only for a runbook's run

    def __post_init__(self) -> None:
        # What steps reach through ``ctx.api`` and ``ctx.transports(node)`` is timed (see engine/timing.py).
        raw = self.transports
        self.api = TimedApi(self.api, self.timer, self.clock)
        self.transports = lambda node: TimedTransport(raw(node), self.timer, self.clock)

    def counting(self, kind: Kind) -> AbstractContextManager[None]:
        """Time spent inside counts as ``kind`` ("node", "wait", ...) for the step's timing, once."""
        return self.timer.counting(kind, self.clock)

    @property
    def waiting_clock(self) -> Clock:
        """The run's clock, whose sleeps count as waiting: for library code that sleeps on a Clock (the drain)."""
        return WaitingClock(self.clock, self.timer)

    def run(self, node: str, argv: list[str], *, timeout: float | None = None, check: bool = True) -> CommandResult:
        """argv on ``node``; an unreachable node is retried with backoff (``node_attempts``) and then
        NodeUnreachableError; with ``check`` a non-zero exit is a StepCommandError carrying its output."""
        limit = timeout or self.options.command_timeout

        def once() -> CommandResult:
            result = self.transports(node).run(argv, limit)
            error = _ssh_failure(result)
            if error is not None:
                raise NodeUnreachableError(error)
            return result

        result = self._reaching(node, once)
        if check and not result.ok:
            raise StepCommandError(node, argv, result)
        return result

    def read(self, node: str, path: str) -> bytes:
        return self._reaching(node, lambda: self.transports(node).read_file(path))

    def write(self, node: str, path: str, data: bytes, mode: int = 0o644) -> None:
        self._reaching(node, lambda: self.transports(node).write_file(path, data, mode))

    def node(self, node: str) -> NodeTransport:
        """The node's transport with these retries, for code written against the port (the package probe)."""
        return _Reaching(self, node)

    def _reaching(self, node: str, call: Callable[[], T]) -> T:
        """``call`` until the node answers: ``node_attempts`` tries, ``node_backoff`` doubling between them."""
        delay = self.options.node_backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except NodeUnreachableError as e:
                error = e.message
            if attempt >= self.options.node_attempts:
                raise NodeUnreachableError(f"node {node} is unreachable ({attempt} tries): {error}")
            self.sleep(delay)
            delay *= 2

    def sleep(self, seconds: float) -> None:
        with self.counting("wait"):
            self.clock.sleep(seconds)


class _Reaching:
    """A node's transport whose every call goes through the run's retries (see :meth:`RunContext.node`)."""

    def __init__(self, ctx: RunContext, node: str) -> None:
        self._ctx, self._node = ctx, node

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        return self._ctx.run(self._node, argv, timeout=timeout, check=False)

    def read_file(self, path: str) -> bytes:
        return self._ctx.read(self._node, path)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._ctx.write(self._node, path, data, mode)


class StepCommandError(TransportError):
    """A node command the step needs exited non-zero; its last output lines are kept with the step."""

    exit_code = 6

    def __init__(self, node: str, argv: list[str], result: CommandResult) -> None:
        self.node, self.argv, self.result = node, argv, result
        what = " ".join(argv[:4]) + (" ..." if len(argv) > 4 else "")
        last = last_lines(result.stderr or result.stdout, 1)
        super().__init__(f"{what} failed on {node} (exit {result.exit_code}){': ' + last if last else ''}")

    def tail(self, lines: int = 20) -> str:
        return last_lines(self.result.stdout + ("\n" if self.result.stdout else "") + self.result.stderr, lines)


def last_lines(text: str, lines: int) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])[-4000:]


def _ssh_failure(result: CommandResult) -> str | None:
    """ssh's own one-line failure (exit 255, ``ssh: ...``): no command ran; None for a command's exit."""
    lines = result.stderr.strip().splitlines()
    if result.exit_code == UNREACHABLE and lines and lines[-1].startswith(("ssh:", "kex_exchange", "Connection ")):
        return lines[-1].strip()
    return None


class StopRequestedError(Exception):
    """The operator asked the run to stop (Ctrl-C, SIGTERM): raised at the next safe point."""


class PausedError(StopRequestedError):
    """The run stops at a safe point for a reason of its caller's (``RunContext.pause``), resumable."""

    def __init__(self, step: Step, reason: str) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason


class SoakPendingError(Exception):
    """A two-step hop is soaking: the run pauses here, its soak step left ``running``, until
    ``upgrader finalize`` ends the soak (or ``upgrader rollback`` swaps the binaries back)."""

    def __init__(self, *, step: int, hop: int, version: str, emulated: str, started: str, until: str,
                 hold_etcd: bool, finalize_refused: str | None = None) -> None:
        self.details: dict[str, Any] = {"step": step, "hop": hop, "version": version, "emulated": emulated,
                                        "started": started, "until": until, "etcd_held": hold_etcd}
        if finalize_refused is not None:  # finalize was asked and refused before changing anything
            self.details["finalize_refused"] = finalize_refused
        super().__init__(f"soaking at {version} emulating {emulated} until {until}")
