"""Certificate renewal: the pure rules (what is due, what counts as renewed, the plan's order) and the
recorded run on the in-package fakes: renewed and restarted node by node, a restart that cannot stop
its pods puts the manifests back, one that cannot put them back says the control plane is stopped,
and a resume finishes the run without renewing twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fake_node import MANIFESTS, FakeNode, ok
from tests.unit.node_world import CLUSTER, NodeWorld, mirror_pod
from upgrader.domain.certificates import CertReport, NodeCerts, days_left, plan_renewal, renewed
from upgrader.domain.node_output import CertExpiry, parse_cert_expiration
from upgrader.domain.plans import Action, plan_from_dict
from upgrader.domain.runs import RunStatus, StepStatus
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.engine.steps import HANDLERS
from upgrader.errors import PreflightError
from upgrader.ports import CommandResult
from upgrader.services import apply, certificates

NOW = datetime(2026, 12, 1, tzinfo=UTC)
LEAVES = ("admin.conf", "apiserver", "etcd-server")
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
OPTIONS = ApplyOptions(auto_rollback=False, gate_timeout=60, gate_interval=1, node_attempts=1)


def cert(name: str, days: float, *, authority: bool = False) -> CertExpiry:
    return CertExpiry(name, NOW + timedelta(days=days), f"{int(days)}d", authority)


# -- the pure rules ----------------------------------------------------------------------------------

def test_due_counts_renewable_certificates_within_the_horizon_and_only_reports_authorities() -> None:
    report = CertReport(CLUSTER, 30, NOW, (
        NodeCerts("cp-1", (cert("apiserver", 200), cert("ca", 10, authority=True))),
        NodeCerts("cp-2", (cert("apiserver", 40), cert("etcd-peer", 45))),
        NodeCerts("cp-3", error="ssh: connect to host cp-3 port 22: Connection refused")))
    assert not report.due  # the CA expires in 10 days, but kubeadm does not renew authorities
    assert report.soonest == NOW + timedelta(days=40)
    assert report.authorities_due() == ["cp-1/ca"]
    assert report.unread == ["cp-3"]
    doc = report.to_dict()
    assert doc["due"] is False and doc["nodes"][1]["certificates"][0] == {
        "name": "apiserver", "authority": False, "expires": (NOW + timedelta(days=40)).isoformat(),
        "residual": "40d", "days_left": 40, "within_horizon": False}
    soon = CertReport(CLUSTER, 30, NOW, (NodeCerts("cp-1", (cert("apiserver", 10),)),))
    assert soon.due and soon.to_dict()["nodes"][0]["certificates"][0]["within_horizon"]
    assert days_left(NOW - timedelta(hours=1), NOW) == -1  # expired an hour ago: negative


def test_the_sandbox_and_real_kubeadm_tables_parse_to_the_same_rows() -> None:
    text = CertNode.table({n: NOW + timedelta(days=9) for n in LEAVES}, NOW + timedelta(days=3650))
    rows, missing = parse_cert_expiration(text)
    assert missing == [] and [r.name for r in rows if not r.authority] == list(LEAVES)
    assert [r.name for r in rows if r.authority] == ["ca"]


@given(st.lists(st.integers(min_value=-5, max_value=5), min_size=1, max_size=5))
def test_renewed_only_when_every_recorded_certificate_now_expires_later(shifts: list[int]) -> None:
    before = {f"c{i}": (NOW + timedelta(days=10)).isoformat() for i in range(len(shifts))}
    after = [CertExpiry(f"c{i}", NOW + timedelta(days=10 + s), "", False) for i, s in enumerate(shifts)]
    assert renewed(before, after) == all(s > 0 for s in shifts)
    assert not renewed(before, after[1:])  # a certificate that is gone is not renewed
    assert not renewed({}, after)  # nothing recorded before: cannot tell, so act


def test_the_plan_renews_restarts_and_checks_one_node_after_the_other() -> None:
    v = Version.parse("v1.33.6")
    plan = plan_renewal(CLUSTER, {"cp-2": v, "cp-1": v})
    each = (Action.RENEW_CERTIFICATES, Action.RESTART_CONTROL_PLANE, Action.HEALTH_GATE)
    assert [(s.n, s.action, s.node) for s in plan.steps] == [
        (i, a, n) for i, (n, a) in enumerate(((n, a) for n in ("cp-1", "cp-2") for a in each), start=1)]
    assert all(s.batch is None and s.version == v for s in plan.steps)


# -- the run on fakes --------------------------------------------------------------------------------

class CertNode:
    """A FakeNode's certificates, files moved by mv, and a kubelet that stops a static pod whose manifest
    left /etc/kubernetes/manifests and starts it (a new container start in its mirror pod) when it is back."""

    def __init__(self, world: NodeWorld, node: FakeNode, *, days_left: float = 9) -> None:
        self.world, self.node = world, node
        self.expires = {n: world.clock.now() + timedelta(days=days_left) for n in LEAVES}
        self.running = set(COMPONENTS)
        self.stuck: set[str] = set()  # containers the kubelet never stops
        self.mv_fails_back = False
        self.renewals = 0
        self.kubeadm = node.handlers["kubeadm"]
        node.handlers |= {"kubeadm": self._kubeadm, "crictl": self._crictl, "mv": self._mv, "test": self._test,
                          "mkdir": lambda argv: ok(), "rm": self._rm}
        world.api.pods.append(mirror_pod("etcd", node.name, "3.5.15-0"))
        for pod in self._pods():
            pod["status"]["containerStatuses"] = [{"state": {"running": {"startedAt": "2026-11-01T00:00:00Z"}}}]

    @staticmethod
    def table(expires: dict[str, datetime], ca: datetime) -> str:
        def when(t: datetime) -> str:
            return t.strftime("%b %d, %Y %H:%M UTC")
        rows = "".join(f"{n:<25}{when(t):<26}{'9d':<16}{'ca':<24}no\n" for n, t in expires.items())
        return (f"{'CERTIFICATE':<25}{'EXPIRES':<26}{'RESIDUAL TIME':<16}{'CERTIFICATE AUTHORITY':<24}EXTERNALLY "
                f"MANAGED\n{rows}\n{'CERTIFICATE AUTHORITY':<25}{'EXPIRES':<26}{'RESIDUAL TIME':<16}EXTERNALLY "
                f"MANAGED\n{'ca':<25}{when(ca):<26}{'9y':<16}no\n")

    def _pods(self) -> list[dict]:
        return [p for p in self.world.api.pods if p["spec"].get("nodeName") == self.node.name]

    def _kubeadm(self, argv: list[str]) -> CommandResult:
        if argv[1:3] == ["certs", "check-expiration"]:
            return ok(self.table(self.expires, self.world.clock.now() + timedelta(days=3000)))
        if argv[1:4] == ["certs", "renew", "all"]:
            self.renewals += 1
            self.expires = {n: self.world.clock.now() + timedelta(days=365) for n in LEAVES}
            return ok("Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
                      "kube-scheduler and etcd, so that they can use the new certificates.\n")
        return self.kubeadm(argv)

    def _crictl(self, argv: list[str]) -> CommandResult:
        return ok(json.dumps({"containers": [{"metadata": {"name": c}} for c in sorted(self.running)]}))

    def _test(self, argv: list[str]) -> CommandResult:
        return CommandResult(0 if argv[-1] in self.node.files else 1, "", "")

    def _rm(self, argv: list[str]) -> CommandResult:
        self.node.files.pop(argv[-1], None)
        return ok()

    def _mv(self, argv: list[str]) -> CommandResult:
        src, dst = argv[-2], argv[-1]
        if src not in self.node.files:
            return CommandResult(1, "", f"mv: cannot stat '{src}': No such file or directory\n")
        if self.mv_fails_back and dst.startswith(MANIFESTS):
            return CommandResult(1, "", f"mv: cannot move '{src}': Read-only file system\n")
        self.node.files[dst] = self.node.files.pop(src)
        component = Path(src).stem
        if src.startswith(MANIFESTS + "/") and component not in self.stuck:
            self.running.discard(component)
        if dst.startswith(MANIFESTS + "/"):
            self.running.add(component)
            self.world.clock.advance(1)
            stamp = self.world.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
            for pod in self._pods():
                if pod["metadata"]["labels"]["component"] == component:
                    pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"] = stamp
        return ok()

    def manifests_in_place(self) -> bool:
        return all(f"{MANIFESTS}/{c}.yaml" in self.node.files for c in COMPONENTS)


@pytest.fixture
def world(tmp_path: Path) -> NodeWorld:
    return NodeWorld(tmp_path, control_planes=2, workers=0, version="v1.33.6")


def nodes(world: NodeWorld) -> dict[str, CertNode]:
    return {n: CertNode(world, world.nodes[n]) for n in ("cp-1", "cp-2")}


def test_renew_renews_restarts_and_checks_each_control_plane_node_in_turn(world: NodeWorld) -> None:
    certs = nodes(world)
    before = certificates.expiring(world.app, CLUSTER, horizon_days=30, now=world.clock.now())
    assert before.due and before.unread == []
    done = certificates.renew(world.app, CLUSTER, options=OPTIONS)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert [(s.action, s.node, s.status) for s in done.run.steps] == [
        (a, n, StepStatus.SUCCEEDED) for n in ("cp-1", "cp-2")
        for a in ("renew-certificates", "restart-control-plane", "health-gate")]
    restart = done.run.steps[1].outputs
    assert restart["restarted"] == ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"]
    assert restart["started_before"]["kube-apiserver"] == "2026-11-01T00:00:00Z"
    for c in certs.values():
        assert c.renewals == 1 and c.manifests_in_place() and c.running == set(COMPONENTS)
    after = certificates.expiring(world.app, CLUSTER, horizon_days=30, now=world.clock.now())
    assert not after.due
    assert "certificate-renewal-started" in world.events() and "run-succeeded" in world.events()
    with world.ledger.unit_of_work() as uow:
        document = uow.repo.get_plan(done.run.plan_id).document
    assert document["kind"] == "certificate-renewal" and set(document["certificates"]["before"]) == {"cp-1", "cp-2"}


def test_pods_that_never_stop_fail_the_step_with_every_manifest_back_and_the_next_node_untouched(
        world: NodeWorld) -> None:
    certs = nodes(world)
    certs["cp-1"].stuck = {"kube-apiserver"}
    done = certificates.renew(world.app, CLUSTER, options=OPTIONS)
    assert done.run.status is RunStatus.FAILED
    outcome = done.run.outcome or {}
    assert outcome["action"] == "restart-control-plane" and outcome["node"] == "cp-1"
    assert "kube-apiserver still run on cp-1" in outcome["error"]
    assert outcome["control_plane_stopped"] is None
    assert outcome["next"][0] == f"find and fix the cause, then continue: upgrader resume {done.run.id}"
    assert certs["cp-1"].manifests_in_place() and not [p for p in world.nodes["cp-1"].files if "upgrader-certs" in p
                                                       and p.endswith(".yaml")]
    assert certs["cp-2"].renewals == 0  # one node at a time: cp-2 was never touched


def test_manifests_that_cannot_go_back_are_named_and_a_resume_puts_them_back_without_renewing_again(
        world: NodeWorld) -> None:
    certs = nodes(world)
    certs["cp-1"].mv_fails_back = True
    failed = certificates.renew(world.app, CLUSTER, options=OPTIONS)
    outcome = failed.run.outcome or {}
    assert failed.run.status is RunStatus.FAILED and outcome["control_plane_stopped"] == "cp-1"
    assert "the control plane of cp-1 is STOPPED" in outcome["error"]
    assert "upgrader-certs-" in outcome["next"][0] and not certs["cp-1"].manifests_in_place()

    certs["cp-1"].mv_fails_back = False
    done = apply.resume(world.app, failed.run.id)
    assert done.run.status is RunStatus.SUCCEEDED, done.run.outcome
    assert certs["cp-1"].manifests_in_place() and certs["cp-1"].renewals == 1 and certs["cp-2"].renewals == 1


def context(world: NodeWorld, run_id: int) -> RunContext:
    with world.ledger.unit_of_work() as uow:
        document = uow.repo.get_plan(uow.repo.get_run(run_id).plan_id).document
    return RunContext(run_id=run_id, token=1, cluster=CLUSTER, plan=plan_from_dict(dict(document)), options=OPTIONS,
                      unit_of_work=world.ledger.unit_of_work, api=world.api, transports=lambda n: world.nodes[n],
                      clock=world.clock, hooks=Hooks(preflight=dict, snapshot=lambda s: {},
                                                     etcd_health=lambda: (True, "ok")), document=document)


def test_a_resumed_step_observes_what_the_dead_process_did_instead_of_doing_it_again(world: NodeWorld) -> None:
    certs = nodes(world)
    certs["cp-2"].stuck = {"etcd"}  # the run stops at cp-2's restart, after cp-1 is done
    failed = certificates.renew(world.app, CLUSTER, options=OPTIONS)
    assert [s.status for s in failed.run.steps][:5] == [StepStatus.SUCCEEDED] * 4 + [StepStatus.FAILED]
    ctx = context(world, failed.run.id)
    renew, restart, _gate, renew_2, restart_2, _gate_2 = ctx.plan.steps
    assert HANDLERS[Action.RENEW_CERTIFICATES].observe(ctx, renew) is not None  # every certificate moved
    assert HANDLERS[Action.RESTART_CONTROL_PLANE].observe(ctx, restart) == {"restarted": list(COMPONENTS)}
    assert HANDLERS[Action.RENEW_CERTIFICATES].observe(ctx, renew_2) is not None
    assert HANDLERS[Action.RESTART_CONTROL_PLANE].observe(ctx, restart_2) is None  # it failed: act again
    certs["cp-1"].expires = {n: t - timedelta(days=400) for n, t in certs["cp-1"].expires.items()}
    assert HANDLERS[Action.RENEW_CERTIFICATES].observe(ctx, renew) is None  # not later than before: renew

    certs["cp-2"].stuck = set()
    done = apply.resume(world.app, failed.run.id)
    assert done.run.status is RunStatus.SUCCEEDED and certs["cp-2"].renewals == 1  # renewed once


def test_a_node_whose_certificates_cannot_be_read_refuses_the_renewal_before_any_change(world: NodeWorld) -> None:
    certs = nodes(world)
    world.nodes["cp-2"].unreachable = True
    report = certificates.expiring(world.app, CLUSTER, horizon_days=30, now=world.clock.now())
    assert report.unread == ["cp-2"] and report.due  # cp-1 alone is enough to say it is due
    with pytest.raises(PreflightError, match="cp-2"):
        certificates.renew(world.app, CLUSTER, options=OPTIONS)
    assert certs["cp-1"].renewals == 0 and world.runs() == []
