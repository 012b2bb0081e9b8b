"""What a rollback loses, on real etcd: a snapshot of the 3-member TLS cluster (laid out as kubeadm lays it
out), restored into a real scratch etcd by this host's etcdctl and etcd, compared with the live members
through the real etcd session; the rehearsal recorded in a real SQLite ledger.

Keys are shaped as the kube-apiserver writes them (/registry/configmaps/NS/NAME, ...). Each test uses
its own namespace; nothing else writes to the cluster while a test runs, so the loss sets are exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.etcd_cluster import TlsEtcdCluster
from upgrader.domain.records import ClusterRecord, NewSnapshot, SnapshotRecord
from upgrader.errors import EtcdToolError, IntegrityError
from upgrader.etcd.scratch import ProcessScratchEtcd, scratch_etcd
from upgrader.etcd.tool import EtcdctlTool
from upgrader.fakes import FakeClusterApi
from upgrader.ledger import db
from upgrader.nodes.local import LocalTransport
from upgrader.ports import NodeLayout
from upgrader.services.rollback_loss import loss_since, objects_match, rehearse
from upgrader.services.wiring import AppContext

pytestmark = [pytest.mark.etcd, pytest.mark.usefixtures("etcd_installed")]

INVENTORY = {"cluster": "tls", "nodes": [
    {"name": n, "control_plane": True, "kubelet": "v1.30.6", "ready": True} for n in ("cp-1", "cp-2", "cp-3")]}
STACKED = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.30.6\n"
SECRET_VALUE = "s3cr3t-value-never-shown"


class World:
    """An AppContext on the TLS cluster's node roots and a SQLite ledger; the scratch etcds it starts are kept."""

    def __init__(self, etcd: TlsEtcdCluster, tmp: Path) -> None:
        self.etcd = etcd
        self.store = tmp / "store"
        url = f"sqlite:///{tmp / 'ledger.db'}"
        db.upgrade(url)
        self.scratches: list[ProcessScratchEtcd] = []
        api = FakeClusterApi(INVENTORY,
                             configmaps={("kube-system", "kubeadm-config"): {"ClusterConfiguration": STACKED}})
        nodes = {m.name: LocalTransport(NodeLayout(m.root)) for m in etcd.members}
        self.app = AppContext(db=url, cluster_api_factory=lambda c: api, transport_factory=lambda c, n: nodes[n],
                              scratch_etcd_factory=self._scratch, snapshot_dir=self.store)
        with self.app.unit_of_work() as uow:
            self.cluster: ClusterRecord = uow.repo.add_cluster(name="tls", kubeconfig="/nonexistent", context=None,
                                                               transport={"kind": "local"}, actor="test")
            uow.commit()

    @contextlib.contextmanager
    def _scratch(self, path: Path, version: str | None) -> Iterator[ProcessScratchEtcd]:
        with scratch_etcd(EtcdctlTool(), path, snapshot_etcd=version) as scratch:
            self.scratches.append(scratch)
            yield scratch

    def put(self, key: str, value: str = "v") -> None:
        assert self.etcd.etcdctl("put", key, value).returncode == 0

    def delete(self, key: str) -> None:
        done = self.etcd.etcdctl("del", key)
        assert done.returncode == 0 and done.stdout.strip() == "1"

    def snapshot(self, label: str) -> SnapshotRecord:
        """A snapshot as `snapshot create` records it: ROOT/CLUSTER/N/etcd.db, 0600, sha256, the tool's status."""
        tool = EtcdctlTool()
        directory = self.store / "tls" / label
        directory.mkdir(parents=True, mode=0o700)
        path = directory / "etcd.db"
        tool.save(endpoint=self.etcd.endpoints[1], tls=self.etcd.client_tls, path=path)
        status = tool.status(path)
        members = tool.members(self.etcd.endpoints, self.etcd.client_tls)
        new = NewSnapshot(
            cluster="tls", created_at=datetime.now(UTC), created_by="test", label=label, path=str(path),
            size=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            etcd_status={"hash": status.hash, "revision": status.revision, "total_keys": status.total_keys,
                         "total_size": status.total_size, "version": status.version, "etcd_version": "3.4.23",
                         "member_ids": sorted(m.id for m in members)},
            source_member="cp-2", external=False, versions={}, artefacts=(), known_good=True, known_good_reason="t")
        with self.app.unit_of_work() as uow:
            record = uow.repo.add_snapshot(new)
            uow.commit()
        return record

    def events(self, kind: str) -> list[Any]:
        with self.app.unit_of_work() as uow:
            return [e.data for e in uow.repo.list_events() if e.kind == kind]

    def assert_scratches_gone(self) -> None:
        assert self.scratches, "no scratch etcd was started"
        for scratch in self.scratches:
            assert not Path(f"/proc/{scratch.pid}").exists(), f"scratch etcd {scratch.pid} still runs"
            assert not scratch.data_dir.parent.exists(), f"{scratch.data_dir.parent} was left behind"


@pytest.fixture
def world(tls_etcd: TlsEtcdCluster, tmp_path: Path) -> Iterator[World]:
    w = World(tls_etcd, tmp_path)
    try:
        yield w
    finally:
        w.app.close()


def _seen(objects: Any) -> set[tuple[str, str | None, str, str]]:
    return {(o.resource, o.namespace, o.name, o.change) for o in objects}


def test_the_loss_is_exactly_what_was_written_since_the_snapshot(world: World) -> None:
    ns = "loss-exact"
    for key in (f"/registry/configmaps/{ns}/kept", f"/registry/configmaps/{ns}/edited",
                f"/registry/deployments/{ns}/web", "/registry/minions/node-a",
                "/registry/leases/kube-node-lease/node-a"):
        world.put(key)
    world.put(f"/registry/secrets/{ns}/deleted", SECRET_VALUE)
    record = world.snapshot("exact")
    world.put(f"/registry/configmaps/{ns}/edited", "changed")
    world.put(f"/registry/configmaps/{ns}/created")
    world.put(f"/registry/services/specs/{ns}/api")
    world.delete(f"/registry/secrets/{ns}/deleted")
    world.put("/registry/leases/kube-node-lease/node-a", "renewed")
    world.put(f"/registry/events/{ns}/web.1")

    report = loss_since(world.app, world.cluster, record)

    assert _seen(report.objects) == {
        ("configmaps", ns, "edited", "reverts"), ("configmaps", ns, "created", "vanishes"),
        ("services", ns, "api", "vanishes"), ("secrets", ns, "deleted", "reappears")}
    assert dict(report.excluded) == {"leases": 1, "events": 1}
    assert report.snapshot_revision == record.etcd_status["revision"]
    assert report.revisions_since == 6 == report.live_revision - report.snapshot_revision
    assert 0 <= report.seconds_since < 300 and report.snapshot_id == record.id
    text = json.dumps(report.to_dict())
    assert SECRET_VALUE not in text and '"name": "deleted"' in text
    world.assert_scratches_gone()


def test_an_untouched_cluster_loses_nothing(world: World) -> None:
    world.put("/registry/configmaps/loss-none/a")
    record = world.snapshot("none")
    report = loss_since(world.app, world.cluster, record)
    assert report.objects == () and report.excluded == () and report.revisions_since == 0
    assert report.keys_compared >= 1
    world.assert_scratches_gone()


def test_a_rehearsal_checks_the_restore_and_is_recorded(world: World) -> None:
    ns = "loss-rehearse"
    world.put(f"/registry/configmaps/{ns}/before")
    record = world.snapshot("rehearse")
    world.put(f"/registry/configmaps/{ns}/after")

    result = rehearse(world.app, cluster="tls", snapshot_id=record.id)

    assert result.ok, result.checks
    checks = {c.name: c.detail for c in result.checks}
    assert set(checks) == {"integrity", "revision", "hash", "keys"}
    assert f"restored at revision {record.etcd_status['revision']}" in checks["revision"]
    assert f"etcd status hash {record.etcd_status['hash']}" in checks["hash"]
    assert "same members" in checks["integrity"]
    assert result.restore_tool == "etcdctl" and result.bumped_by == 0  # etcdctl 3.4: no bump flags
    assert result.loss is not None and _seen(result.loss.objects) == {("configmaps", ns, "after", "vanishes")}
    assert 0 < result.restored_keys <= record.etcd_status["total_keys"]
    [event] = world.events("rollback-rehearsed")
    assert event["snapshot"] == record.id and event["ok"] is True and event["hashkv"] == result.hashkv
    assert event["loss"]["counts"] == {"reverts": 0, "vanishes": 1, "reappears": 0}
    world.assert_scratches_gone()


def test_a_corrupt_snapshot_is_refused_before_any_restore(world: World) -> None:
    record = world.snapshot("corrupt")
    path = Path(record.path)
    data = bytearray(path.read_bytes())
    data[4096] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as e:
        rehearse(world.app, cluster="tls", snapshot_id=record.id)
    assert e.value.exit_code == 8 and "sha256" in e.value.message
    assert world.scratches == [] and world.events("rollback-rehearsed") == []


def _scratch_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("upgrader-scratch-etcd-*")}


def test_a_flipped_file_given_straight_to_the_scratch_fails_its_restore_and_leaves_nothing(
        world: World, tmp_path: Path) -> None:
    record = world.snapshot("flipped")
    data = bytearray(Path(record.path).read_bytes())
    data[100] ^= 0x01
    flipped = tmp_path / "flipped.db"
    flipped.write_bytes(bytes(data))
    before = _scratch_dirs()
    with pytest.raises(IntegrityError, match="expected sha256"), scratch_etcd(EtcdctlTool(), flipped):
        pass
    assert _scratch_dirs() == before


def test_tools_that_cannot_restore_name_what_to_install(world: World) -> None:
    record = world.snapshot("tools")
    before = _scratch_dirs()
    with pytest.raises(EtcdToolError, match=r"install etcd 3\.4 or newer") as e, scratch_etcd(
            EtcdctlTool(), Path(record.path), snapshot_etcd="3.4.23", etcd="/nonexistent/etcd"):
        pass
    assert e.value.exit_code == 2
    with pytest.raises(EtcdToolError, match="install etcdutl"), scratch_etcd(
            EtcdctlTool(etcdctl="/nonexistent/etcdctl", etcdutl="/nonexistent/etcdutl"), Path(record.path)):
        pass
    with pytest.raises(EtcdToolError, match=r"cannot open a data dir of etcd 3\.6"), scratch_etcd(
            EtcdctlTool(), Path(record.path), snapshot_etcd="3.6.5"):
        pass
    assert _scratch_dirs() == before
    assert os.access(record.path, os.R_OK)  # the snapshot itself is untouched
    # etcdutl 3.6 (answers recorded from its sources) restores data this host's etcd 3.4 cannot open
    from tests.integration.test_etcd_tool import _recorded_36

    with pytest.raises(EtcdToolError, match=r"etcdutl 3\.6\.5 writes data that etcd 3\.4\.23 here cannot open"), \
            scratch_etcd(EtcdctlTool(runner=_recorded_36(etcdutl=True)), Path(record.path)):
        pass
    assert _scratch_dirs() == before


# A sandbox cluster: its apiserver writes objects as kube-apiserver lays them out in its real etcd.

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_on_a_sandbox_the_loss_names_the_objects_written_through_the_api(tmp_path: Path) -> None:
    from tests.e2e.conftest import Cli

    cli = Cli(tmp_path / "home")
    try:
        kubeconfig = cli.up("lossbox", "--control-planes", "1", "--workers", "1")["kubeconfig"]
        for name in ("kept", "edited", "deleted"):
            cli.kubectl(kubeconfig, "create", "configmap", name, "--from-literal=k=v")
        made = json.loads(cli.run("snapshot", "create", "lossbox", "-o", "json").stdout)
        cli.kubectl(kubeconfig, "create", "configmap", "created", "--from-literal=k=v")
        cli.kubectl(kubeconfig, "label", "configmap", "edited", "changed=yes")
        cli.kubectl(kubeconfig, "delete", "configmap", "deleted")
        app = AppContext(db=str(cli.home / "ledger.db"))
        try:
            with app.unit_of_work() as uow:
                cluster = uow.repo.get_cluster("lossbox")
                record = uow.repo.get_snapshot(made["id"])
            report = loss_since(app, cluster, record)
            rehearsal = rehearse(app, cluster="lossbox", snapshot_id=record.id)
            with app.unit_of_work() as uow:
                events = [e.data for e in uow.repo.list_events() if e.kind == "rollback-rehearsed"]
        finally:
            app.close()
    finally:
        cli.down_all()
    # the nodes' status heartbeats are writes too (they revert); everything else is exactly what kubectl did
    assert _seen(o for o in report.objects if o.resource != "nodes") == {
        ("configmaps", "default", "created", "vanishes"), ("configmaps", "default", "edited", "reverts"),
        ("configmaps", "default", "deleted", "reappears")}
    assert {o.change for o in report.objects if o.resource == "nodes"} <= {"reverts"}
    assert report.revisions_since >= 3
    assert rehearsal.ok and rehearsal.loss is not None and rehearsal.restore_tool == "etcdctl"
    assert ("configmaps", "default", "created", "vanishes") in _seen(rehearsal.loss.objects)
    assert len(events) == 1 and events[0]["snapshot"] == record.id and events[0]["ok"] is True


def test_after_a_rollback_the_loss_list_is_checked_against_the_live_keys(world: World) -> None:
    ns = "loss-match"
    world.put(f"/registry/configmaps/{ns}/edited")
    world.put(f"/registry/configmaps/{ns}/deleted")
    record = world.snapshot("match")
    world.put(f"/registry/configmaps/{ns}/edited", "changed")
    world.put(f"/registry/configmaps/{ns}/created")
    world.delete(f"/registry/configmaps/{ns}/deleted")
    before = loss_since(world.app, world.cluster, record)
    assert len(before.objects) == 3

    undone = objects_match(world.app, world.cluster, before)
    assert not undone.ok and {(o.name, why) for o, why in undone.wrong} == {
        ("created", "still exists"), ("deleted", "missing")}
    world.delete(f"/registry/configmaps/{ns}/created")  # as the restore would have done
    world.put(f"/registry/configmaps/{ns}/deleted")
    done = objects_match(world.app, world.cluster, before)
    assert done.ok and done.checked == 3 and done.to_dict()["wrong"] == []


HOLDER = """
import sys, time
from pathlib import Path
from upgrader.etcd.scratch import scratch_etcd
from upgrader.etcd.tool import EtcdctlTool
with scratch_etcd(EtcdctlTool(), Path(sys.argv[1])) as scratch:
    print(scratch.pid, scratch.data_dir.parent, flush=True)
    time.sleep(300)
"""


@pytest.mark.timeout(120)
def test_a_killed_upgrader_takes_its_scratch_etcd_along_and_the_next_one_sweeps_its_dir(world: World) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.processes import stop
    from upgrader.etcd.scratch import sweep_orphans

    record = world.snapshot("killed")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, record.path], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout is not None
        pid_text, base_text = holder.stdout.readline().split()
        etcd_pid, base = int(pid_text), Path(base_text)
        assert Path(f"/proc/{etcd_pid}").exists() and base.is_dir()
        holder.send_signal(signal.SIGKILL)  # no finally runs
        holder.wait(10)
    finally:
        stop(holder)
        if holder.stdout is not None:
            holder.stdout.close()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{etcd_pid}").exists():  # the kernel's SIGTERM; init reaps it
        if time.monotonic() > deadline:
            os.kill(etcd_pid, signal.SIGKILL)  # the etcd this test started, by its pid
            shutil.rmtree(base, ignore_errors=True)
            pytest.fail(f"scratch etcd {etcd_pid} outlived its upgrader")
        time.sleep(0.2)
    assert base.is_dir()  # nothing ran to remove it...
    assert base in sweep_orphans()  # ...until the next scratch etcd looks
    assert not base.exists()
