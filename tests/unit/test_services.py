"""The use cases on the in-package fakes: no CLI, no database file, no cluster; milliseconds each.

The fakes pass the same contract tests as the real adapters (tests/integration/test_ledger_repository.py,
test_port_contracts.py), so what holds here holds on SQLite, PostgreSQL and a live cluster.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.unit.builders import cp, inventory, worker
from upgrader import errors
from upgrader.domain.inventory import inventory_to_dict
from upgrader.domain.versions import Version
from upgrader.fakes import FakeClock, FakeClusterApi, FakeTransport, InMemoryLedger
from upgrader.services import clusters, plans
from upgrader.services.wiring import Actor, AppContext

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: prod-admin, context: {cluster: prod, user: admin}}]
current-context: prod-admin
users: [{name: admin, user: {token: not-a-real-token}}]
"""

LIVE = inventory(cp("cp-1", "v1.30.6"), cp("cp-2", "v1.30.6"), worker("w-1", "v1.30.6"), worker("w-2", "v1.30.6"))


class World:
    """An AppContext on fakes, and what the fakes saw."""

    def __init__(self, tmp: Path, live: dict | None = None) -> None:
        clock = FakeClock()
        self.ledger = InMemoryLedger(clock=clock.now)
        self.api = FakeClusterApi(live if live is not None else inventory_to_dict(LIVE))
        self.app = AppContext(actor=Actor(user="alice", host="ops-1", command_line="upgrader test"), clock=clock,
                              unit_of_work_factory=self.ledger.unit_of_work,
                              cluster_api_factory=lambda record: self.api,
                              # no node answers unless a test says so (ssh, the default, is never run here)
                              transport_factory=lambda record, node: FakeTransport(unreachable=True))
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(KUBECONFIG)

    def events(self) -> list[tuple[str, str | None]]:
        with self.ledger.unit_of_work() as uow:
            return [(e.kind, e.cluster) for e in uow.repo.list_events()]

    def plan_count(self) -> int:
        with self.ledger.unit_of_work() as uow:
            return len(uow.repo.list_plans())


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def prod(world: World) -> World:
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    return world


def test_register_records_the_cluster_and_an_event(world):
    record = clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    assert (record.name, record.context, record.created_by) == ("prod", "prod-admin", "alice")
    assert [c.name for c in clusters.list_clusters(world.app)] == ["prod"]
    assert world.events() == [("cluster-added", "prod")]


@pytest.mark.parametrize("name", ["Prod", "-x", "a" * 64, ""])
def test_register_refuses_a_bad_name_and_writes_nothing(world, name):
    with pytest.raises(errors.InvalidNameError):
        clusters.register_cluster(world.app, name=name, kubeconfig=world.kubeconfig, context=None)
    assert clusters.list_clusters(world.app) == [] and world.events() == []


def test_register_twice_is_refused_and_keeps_the_first(prod):
    with pytest.raises(errors.ClusterExistsError):
        clusters.register_cluster(prod.app, name="prod", kubeconfig=prod.kubeconfig, context=None)
    assert prod.events() == [("cluster-added", "prod")]


def test_skip_and_unskip_are_recorded_with_their_reason(prod):
    skipped = clusters.skip_version(prod.app, cluster="prod", version="v1.31.13", reason=" kube-proxy regression ")
    record = skipped.record
    assert [(s.version, s.reason) for s in record.skips] == [("v1.31.13", "kube-proxy regression")]
    assert clusters.unskip_version(prod.app, cluster="prod", version="v1.31.13") == (Version.parse("v1.31.13"), True)
    assert clusters.unskip_version(prod.app, cluster="prod", version="1.31.13") == (Version.parse("v1.31.13"), False)
    assert clusters.show_cluster(prod.app, name="prod").skips == ()
    assert [k for k, _ in prod.events()] == ["cluster-added", "version-skipped", "version-unskipped"]


def test_skip_needs_a_reason_and_a_version(prod):
    with pytest.raises(errors.UsageError, match="--reason"):
        clusters.skip_version(prod.app, cluster="prod", version="v1.31.13", reason="  ")
    with pytest.raises(errors.InvalidVersionError):
        clusters.skip_version(prod.app, cluster="prod", version="1.31", reason="x")


def test_plan_from_the_live_cluster_is_recorded_with_its_observation(prod):
    result = plans.make_plan(prod.app, plans.PlanRequest(cluster="prod", target="v1.32", state=None, catalog=None))
    assert prod.api.calls == 1
    assert result.plan_id == 1 and result.plan.target.line.minor == 32
    assert [str(h.version.line) for h in result.plan.hops] == ["v1.31", "v1.32"]
    record, rebuilt = plans.show_plan(prod.app, plan_id=1)
    assert rebuilt == result.plan and record.observation_id is not None
    assert prod.events()[-1] == ("plan-created", "prod")


def test_plan_skips_a_skipped_patch(prod):
    catalog = plans.load_catalog(None, app=prod.app)
    newest = catalog.newest(Version.parse("v1.31.0").line)
    assert newest is not None
    clusters.skip_version(prod.app, cluster="prod", version=str(newest), reason="bad patch")
    result = plans.make_plan(prod.app, plans.PlanRequest(cluster="prod", target="v1.32", state=None, catalog=None))
    assert result.plan.hops[0].version != newest
    assert newest not in {s.version for s in result.plan.steps}


def test_plan_from_a_file_does_not_touch_the_cluster(prod, tmp_path):
    state = tmp_path / "inventory.json"
    state.write_text(json.dumps(inventory_to_dict(LIVE)))
    plans.make_plan(prod.app, plans.PlanRequest(cluster="prod", target="v1.31", state=state, catalog=None))
    assert prod.api.calls == 0 and prod.plan_count() == 1


@pytest.mark.parametrize(("target", "error"), [
    ("v1.29", errors.NoUpgradePathError),       # older than the cluster: use rollback
    ("v1.99", errors.NoUpgradePathError),       # not in the catalog
    ("latest", errors.InvalidVersionError),
])
def test_a_refused_plan_writes_nothing(prod, target, error):
    with pytest.raises(error):
        plans.make_plan(prod.app, plans.PlanRequest(cluster="prod", target=target, state=None, catalog=None))
    assert prod.plan_count() == 0 and [k for k, _ in prod.events()] == ["cluster-added"]


def test_an_unreachable_cluster_is_reported_not_planned(tmp_path):
    world = World(tmp_path)
    world.api = FakeClusterApi(unreachable="cluster prod: cannot reach the API at https://127.0.0.1:1")
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    with pytest.raises(errors.ClusterUnreachableError, match="cannot reach"):
        plans.make_plan(world.app, plans.PlanRequest(cluster="prod", target="v1.31", state=None, catalog=None))
    assert world.plan_count() == 0


def test_unregister_keeps_the_audit_trail(prod):
    plans.make_plan(prod.app, plans.PlanRequest(cluster="prod", target="v1.31", state=None, catalog=None))
    clusters.unregister_cluster(prod.app, name="prod")
    assert clusters.list_clusters(prod.app) == [] and prod.plan_count() == 0
    assert [k for k, _ in prod.events()] == ["cluster-added", "plan-created", "cluster-removed"]


def test_wiring_builds_the_transport_the_ledger_names(prod, tmp_path):
    from upgrader.nodes.local import LocalTransport
    from upgrader.nodes.ssh import SshTransport
    from upgrader.sandbox import SandboxTransport

    prod.app.transport_factory = None  # the real wiring (no connection is made)
    record = clusters.show_cluster(prod.app, name="prod")
    ssh = prod.app.transport(record, "cp-1")  # a registered cluster's nodes are reached over ssh by default
    assert isinstance(ssh, SshTransport) and ssh.target.address == "cp-1" and ssh.target.address_from == "name"
    assert prod.app.transport(record, "cp-1") is ssh  # one connection per node
    local = prod.app.transport(dataclasses.replace(record, transport={"kind": "local"}), "cp-1")
    assert isinstance(local, LocalTransport) and str(local.layout.root) == "/"
    sandboxed = dataclasses.replace(record, transport={"kind": "sandbox", "dir": str(tmp_path)})
    assert isinstance(prod.app.transport(sandboxed, "cp-1"), SandboxTransport)
    with pytest.raises(errors.UsageError, match="unknown node transport kind 'telnet'"):
        prod.app.transport(dataclasses.replace(record, transport={"kind": "telnet"}), "cp-1")


def test_the_audit_trail_keeps_command_lines_and_event_data_without_their_secrets(world, monkeypatch):
    monkeypatch.setattr("sys.argv", ["upgrader", "--db", "postgresql://ops:hunter2@db/ledger", "cluster", "add",
                                     "prod", "--kubeconfig", str(world.kubeconfig)])
    world.app = dataclasses.replace(world.app, actor=Actor.current())
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    # An actor built by hand (a future caller) is redacted by the recorder all the same.
    world.app = dataclasses.replace(world.app, actor=Actor(user="alice", host="ops-1", command_line=(
        "upgrader --token hunter2 cluster skip prod v1.31.13 --reason 'see https://ops:hunter2@wiki/x'")))
    clusters.skip_version(world.app, cluster="prod", version="v1.31.13", reason="see https://ops:hunter2@wiki/x")
    with world.ledger.unit_of_work() as uow:
        events = uow.repo.list_events()
        shown = uow.repo.get_cluster("prod")
    assert [e.command_line for e in events] == [
        f"upgrader --db 'postgresql://ops:***@db/ledger' cluster add prod --kubeconfig {world.kubeconfig}",
        "upgrader --token '***' cluster skip prod v1.31.13 --reason 'see https://ops:***@wiki/x'",
    ]
    assert events[1].data == {"version": "v1.31.13", "reason": "see https://ops:***@wiki/x"}
    assert shown.skips[0].reason == "see https://ops:***@wiki/x"
