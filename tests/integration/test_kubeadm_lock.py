"""The node's kubeadm lock (engine/kubeadm_lock.py) on a sandbox node, through its real transport.

A kubeadm upgrade left running by an upgrader that died holds flock on the node's /etc/kubernetes;
here this process holds that same kernel lock (the node's directory is the same inode inside and
outside the node's namespaces) and the engine's wait and run must respect it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from upgrader.domain.plans import Plan, Strategy
from upgrader.domain.versions import Version
from upgrader.engine import kubeadm_lock
from upgrader.engine.context import ApplyOptions, Hooks, RunContext, StepCommandError
from upgrader.fakes import FakeClock, FakeClusterApi
from upgrader.sandbox.node import provision as noderoot
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import SandboxConfig, new_config


@pytest.fixture
def cfg(tmp_path: Path) -> SandboxConfig:
    made = new_config(name="t", sandbox_dir=tmp_path / "sbx", version="v1.30.6", control_planes=1, workers=0)
    made.dir.mkdir(parents=True)
    made.save()
    noderoot.create(made, "cp-1")
    return made


def _ctx(cfg: SandboxConfig, command_timeout: float = 60.0) -> RunContext:
    plan = Plan(cluster="t", source_version=Version(1, 30, 6), target=Version(1, 31, 4), source_fingerprint="x",
                strategy=Strategy(), skipped_versions=(), hops=(), steps=())

    def unused(*args: Any) -> Any:
        raise AssertionError("not used by the kubeadm lock")

    return RunContext(run_id=1, token=1, cluster="t", plan=plan, options=ApplyOptions(command_timeout=command_timeout),
                      unit_of_work=unused, api=FakeClusterApi(), transports=lambda n: SandboxTransport(cfg.dir, n),
                      clock=FakeClock(), hooks=Hooks(preflight=unused, snapshot=unused, etcd_health=unused),
                      stop=threading.Event())


@pytest.fixture
def held(cfg: SandboxConfig) -> Iterator[int]:
    """The lock an earlier kubeadm would hold, taken here on the node's directory; yields its descriptor."""
    fd = os.open(cfg.node_root("cp-1") / "etc/kubernetes", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)


def _free(cfg: SandboxConfig) -> bool:
    fd = os.open(cfg.node_root("cp-1") / "etc/kubernetes", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_wait_lasts_as_long_as_an_earlier_kubeadm_holds_the_node(cfg: SandboxConfig, held: int) -> None:
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (kubeadm_lock.wait(_ctx(cfg), "cp-1"), done.set()))
    waiter.start()
    assert not done.wait(3), "the wait returned while the lock was held"
    fcntl.flock(held, fcntl.LOCK_UN)  # the earlier kubeadm ended
    assert done.wait(30)
    waiter.join()


def test_a_lock_that_stays_taken_fails_the_step_saying_why(cfg: SandboxConfig, held: int) -> None:
    with pytest.raises(kubeadm_lock.NodeBusyError) as e:
        kubeadm_lock.run(_ctx(cfg, command_timeout=1), "cp-1", ["kubeadm", "upgrade", "node"])
    assert e.value.message == ("a kubeadm upgrade started earlier still runs on cp-1 after 1s (it holds "
                               "/etc/kubernetes); let it end or stop it, then resume")
    assert e.value.exit_code == 6


def test_kubeadm_runs_holding_the_lock_and_its_failure_names_kubeadm(cfg: SandboxConfig) -> None:
    ran: list[Any] = []
    runner = threading.Thread(target=lambda: ran.append(
        kubeadm_lock.run(_ctx(cfg), "cp-1", ["sh", "-c", "kubeadm version -o short && sleep 3"])))
    runner.start()
    deadline = time.monotonic() + 30
    while _free(cfg) and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runner.is_alive() and not _free(cfg), "the command did not hold the node's lock while it ran"
    runner.join(60)
    assert ran and ran[0].stdout.strip() == "v1.30.6"
    assert _free(cfg)

    with pytest.raises(StepCommandError) as e:
        kubeadm_lock.run(_ctx(cfg), "cp-1", ["kubeadm", "upgrade", "apply"])
    assert e.value.message.startswith("kubeadm upgrade apply failed on cp-1 (exit 1)"), e.value.message
