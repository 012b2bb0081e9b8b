"""The preflight use case on the in-package fakes: facts gathered, judged, overrides recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.unit.builders import cp, inventory, worker
from upgrader import errors
from upgrader.domain.inventory import inventory_to_dict
from upgrader.fakes import FakeClock, FakeClusterApi, FakeTransport, InMemoryLedger
from upgrader.ports import CommandResult, EtcdMember
from upgrader.services import preflight as service
from upgrader.services.etcd_access import EtcdSession
from upgrader.services.preflight import PreflightRequest, run_preflight
from upgrader.services.wiring import Actor, AppContext

LIVE = inventory(cp("cp-1", "v1.30.6"), worker("w-1", "v1.30.6"), cluster="prod")
CERTS = ("CERTIFICATE   EXPIRES   RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n"
         "apiserver     Dec 01, 2027 10:00 UTC   364d   ca   no\n")
DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 1000000 1000 900000 1% /\n"


def _ok(stdout: str) -> Any:
    return lambda argv: CommandResult(0, stdout, "")


class FakeEtcd:
    def __init__(self, members: list[EtcdMember]) -> None:
        self.members_ = members

    def members(self, endpoints: Any, tls: Any, timeout: float = 10.0) -> list[EtcdMember]:
        return self.members_


class World:
    def __init__(self, tmp: Path, *, api: FakeClusterApi | None = None, etcd: list[EtcdMember] | None = None) -> None:
        self.ledger = InMemoryLedger()
        self.api = api or FakeClusterApi(inventory_to_dict(LIVE))
        self.node = FakeTransport(handlers={
            "df": _ok(DF), "stat": _ok("4096\n"), "ls": _ok("kubeadm-backup-etcd-2026\n"),
            "kubeadm": lambda argv: CommandResult(0, CERTS if argv[1] == "certs" else "[config/images] Pulled x\n",
                                                  "")})
        self.app = AppContext(actor=Actor(user="alice", host="ops-1", command_line="upgrader preflight"),
                              clock=FakeClock(), unit_of_work_factory=self.ledger.unit_of_work,
                              cluster_api_factory=lambda record: self.api,
                              transport_factory=lambda record, node: self.node, snapshot_dir=tmp / "snapshots")
        with self.ledger.unit_of_work() as uow:
            uow.repo.add_cluster(name="prod", kubeconfig="/k", context=None, transport=None, actor="alice")
            uow.commit()
        self.etcd = etcd

    def events(self) -> list[Any]:
        with self.ledger.unit_of_work() as uow:
            return list(uow.repo.list_events("prod"))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    member = EtcdMember(id="1", name="cp-1", peer_urls=(), client_urls=(), healthy=True, leader=True, db_size=4096)
    w = World(tmp_path, etcd=[member])

    @contextmanager
    def session(app: Any, cluster: Any, inventory_doc: Any = None) -> Iterator[EtcdSession]:
        if w.etcd is None:
            raise NotImplementedError("etcd access is being built (issue 9)")
        yield EtcdSession(tool=FakeEtcd(w.etcd), endpoints=["https://cp-1:2379"], tls=None)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "etcd_session", session)
    yield w


def _by_name(report: service.PreflightReport) -> dict[str, Any]:
    return {c.name: c for c in report.checks}


def test_a_healthy_cluster_passes_every_check(world: World) -> None:
    report = run_preflight(world.app, PreflightRequest("prod", "v1.31"))
    assert report.passed, [c.to_dict() for c in report.checks if c.status != "passed"]
    assert all(c.status == "passed" for c in report.checks)
    assert report.target.startswith("v1.31.")
    assert ["kubeadm", "config", "images", "pull", "--kubernetes-version", report.target] in world.node.ran
    assert [e.kind for e in world.events()] == ["preflight"]


def test_quick_lists_the_images_and_only_warns(world: World) -> None:
    world.node.handlers["kubeadm"] = lambda argv: (CommandResult(0, CERTS, "") if argv[1] == "certs"
                                                   else CommandResult(1, "", "boom\n"))
    report = run_preflight(world.app, PreflightRequest("prod", "v1.31", quick=True))
    images = _by_name(report)["images"]
    assert images.status == "failed" and images.severity == "warning" and report.passed
    assert any(argv[:4] == ["kubeadm", "config", "images", "list"] for argv in world.node.ran)


def test_an_etcd_session_that_cannot_open_fails_the_etcd_check_with_why(world: World) -> None:
    world.etcd = None
    report = run_preflight(world.app, PreflightRequest("prod", "v1.31"))
    etcd = _by_name(report)["etcd"]
    assert not report.passed and etcd.reason == "EtcdUnreachable" and "being built" in etcd.message


def test_a_blocking_failure_and_its_override(world: World) -> None:
    world.api.pdbs = [{"metadata": {"name": "db", "namespace": "demo"},
                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}},
                       "status": {"disruptionsAllowed": 0}}]
    world.api.pods = [{"metadata": {"name": "db-0", "namespace": "demo", "labels": {"app": "db"}},
                       "status": {"phase": "Running"}}]
    refused = run_preflight(world.app, PreflightRequest("prod", "v1.31"))
    pdb = _by_name(refused)["disruption-budgets"]
    assert not refused.passed and pdb.reason == "DrainBlockedByBudget" and "demo/db" in pdb.message
    allowed = run_preflight(world.app, PreflightRequest("prod", "v1.31", ignore=("disruption-budgets",),
                                                        reason="db is drained by hand at 02:00"))
    assert allowed.passed and _by_name(allowed)["disruption-budgets"].status == "ignored"
    override = [e for e in world.events() if e.kind == "preflight-override"]
    assert len(override) == 1 and override[0].actor == "alice"
    assert override[0].data["check"] == "disruption-budgets"
    assert override[0].data["reason"] == "db is drained by hand at 02:00"


def test_bad_overrides_are_refused_before_anything_is_read(world: World) -> None:
    with pytest.raises(errors.UsageError, match=r"no check named 'nope'.*checks: api-ready"):
        run_preflight(world.app, PreflightRequest("prod", "v1.31", ignore=("nope",), reason="x"))
    with pytest.raises(errors.UsageError, match="--ignore needs --reason"):
        run_preflight(world.app, PreflightRequest("prod", "v1.31", ignore=("etcd",)))
    assert world.api.calls == 0 and world.events() == []


def test_unreachable_node_and_cordons_and_not_ready(tmp_path: Path, world: World) -> None:
    live = inventory(cp("cp-1", "v1.30.6", ready=False), worker("w-1", "v1.30.6", cordoned=True), cluster="prod")
    world.api = FakeClusterApi(inventory_to_dict(live), readyz=(500, "[-]etcd failed: reason withheld\n"))
    world.node.unreachable = True
    checks = _by_name(run_preflight(world.app, PreflightRequest("prod", "v1.31")))
    assert checks["api-ready"].reason == "ApiNotReady" and "etcd" in checks["api-ready"].message
    assert checks["control-plane-ready"].details["nodes"] == ["cp-1"]
    assert checks["cordoned-nodes"].details["nodes"] == ["w-1"] and checks["cordoned-nodes"].severity == "warning"
    assert checks["disk-space"].reason == "DiskSpaceUnknown" and "unreachable" in checks["disk-space"].message
    assert checks["certificates"].reason == "CertificatesUnreadable"


def test_no_upgrade_path_fails_skew_and_skips_images(world: World) -> None:
    report = run_preflight(world.app, PreflightRequest("prod", "v1.29"))
    checks = _by_name(report)
    assert checks["skew"].reason == "NoUpgradePath" and checks["images"].status == "skipped"


def test_an_unreachable_api_is_bad_input(world: World) -> None:
    world.api = FakeClusterApi(None, unreachable="cluster prod: cannot reach the API at https://10.0.0.1:6443")
    with pytest.raises(errors.ClusterUnreachableError):
        run_preflight(world.app, PreflightRequest("prod", "v1.31"))
