"""A node that drops off the network is retried with backoff by every step's node access, not only its
commands: file reads and writes and the package-manager probe too, then the step fails naming the tries."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from upgrader.domain.plans import Plan, Strategy
from upgrader.domain.versions import Version
from upgrader.engine import steps
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.errors import NodeUnreachableError
from upgrader.fakes import FakeClock, FakeClusterApi
from upgrader.fakes.nodes import FakeTransport
from upgrader.ports import CommandResult


class Flaky(FakeTransport):
    """Unreachable for its first ``down`` operations (commands and files alike), then reachable."""

    def __init__(self, down: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.down = down
        self.calls = 0

    def _reach(self) -> None:
        self.calls += 1
        if self.calls <= self.down:
            raise NodeUnreachableError("ssh: connect to host w-1 port 22: No route to host")


def _ctx(transport: FakeTransport, clock: FakeClock) -> RunContext:
    plan = Plan(cluster="prod", source_version=Version(1, 30, 6), target=Version(1, 31, 4), source_fingerprint="x",
                strategy=Strategy(), skipped_versions=(), hops=(), steps=())

    def unused(*args: Any) -> Any:
        raise AssertionError("not used here")

    return RunContext(run_id=1, token=1, cluster="prod", plan=plan, options=ApplyOptions(), unit_of_work=unused,
                      api=FakeClusterApi(), transports=lambda node: transport, clock=clock,
                      hooks=Hooks(preflight=unused, snapshot=unused, etcd_health=unused), stop=threading.Event())


def _apt(argv: list[str]) -> CommandResult:
    return CommandResult(0, "apt 2.6.1 (amd64)\n", "")


def test_a_file_read_is_retried_with_backoff_until_the_node_answers() -> None:
    clock = FakeClock()
    transport = Flaky(2, files={"/etc/apt/sources.list.d/kubernetes.list": b"deb x /\n"})
    assert _ctx(transport, clock).read("w-1", "/etc/apt/sources.list.d/kubernetes.list") == b"deb x /\n"
    assert clock.slept == [2.0, 4.0]


def test_a_file_write_is_retried_with_backoff_until_the_node_answers() -> None:
    clock = FakeClock()
    transport = Flaky(1)
    _ctx(transport, clock).write("w-1", "/etc/apt/sources.list.d/kubernetes.list", b"deb y /\n")
    assert transport.files["/etc/apt/sources.list.d/kubernetes.list"][0] == b"deb y /\n"
    assert clock.slept == [2.0]


def test_the_package_manager_probe_is_retried_until_the_node_answers() -> None:
    clock = FakeClock()
    transport = Flaky(3, handlers={"apt-get": _apt})
    assert steps.manager(_ctx(transport, clock), "w-1") == "apt"
    assert clock.slept == [2.0, 4.0, 8.0]


def test_a_node_that_stays_unreachable_fails_the_probe_after_its_tries() -> None:
    clock = FakeClock()
    transport = Flaky(10**6, handlers={"apt-get": _apt})
    with pytest.raises(NodeUnreachableError) as lost:
        steps.manager(_ctx(transport, clock), "w-1")
    assert lost.value.message == ("node w-1 is unreachable (4 tries): ssh: connect to host w-1 port 22: "
                                  "No route to host")
    assert clock.slept == [2.0, 4.0, 8.0]
    assert transport.calls == 4
