"""A failed apply names the incident runbook to follow (services/run_outcome.py over
domain/runbook_hints.py), on the fake cluster of tests/unit/node_world.py: kubeadm giving up on a
static pod, an etcd member lost mid-run (and quorum lost), nodes left cordoned, a certificate renewal
meeting an expired certificate; and the CLI prints it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.unit.node_world import NodeWorld
from upgrader import errors
from upgrader.cli.apply import render_result
from upgrader.domain.plans import Action, Reversibility, Step
from upgrader.domain.records import RunRecord
from upgrader.domain.runs import FencingToken, PlanId, RunId, RunStatus
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions
from upgrader.engine.executor import StepFailedError
from upgrader.ports import CommandResult, EtcdMember
from upgrader.services import apply, certificates

OPTIONS = ApplyOptions(gate_interval=1.0, auto_rollback=False)
PHASED = ("error execution phase control-plane: couldn't complete the static pod upgrade: couldn't upgrade control "
          "plane. kubeadm has tried to recover everything into the earlier state. Errors faced: static Pod hash for "
          "component kube-apiserver on Node cp-1 did not change after 5m0s: context deadline exceeded\n"
          "To see the stack trace of this error execute with --v=5 or higher\n")
ETCD = ("error execution phase control-plane: couldn't complete the static pod upgrade: etcd cluster is not healthy: "
        "failed to dial endpoint https://10.0.0.3:2379 with maintenance client: context deadline exceeded\n")


def _failed_apply(world: NodeWorld, stderr: str, *, before: Any = None) -> dict[str, Any]:
    plan_id = world.plan("v1.31")
    if before is not None:
        world.nodes["cp-1"].hook("kubeadm", "upgrade", "apply", before=before, times=1)
    world.nodes["cp-1"].answer("kubeadm", "upgrade", "apply", result=CommandResult(1, "[upgrade] ...\n", stderr),
                               times=1)
    run = apply.apply(world.app, plan_id, OPTIONS).run
    assert run.status is RunStatus.FAILED
    return dict(run.outcome or {})


def _lose(world: NodeWorld, *names: str) -> None:
    world.etcd.etcd_members = [
        EtcdMember(id=m.id, name=m.name, peer_urls=m.peer_urls, client_urls=m.client_urls, healthy=False, leader=False,
                   error="context deadline exceeded") if m.name in names else m for m in world.etcd.etcd_members]


def test_kubeadm_giving_up_on_the_apiserver_names_the_crashloop_runbook_with_its_command(tmp_path: Path) -> None:
    world = NodeWorld(tmp_path, control_planes=1, workers=1)

    outcome = _failed_apply(world, PHASED)

    command = "upgrader runbook run apiserver-crashloop-after-upgrade --cluster prod --param node=cp-1"
    assert outcome["runbook"]["name"] == "apiserver-crashloop-after-upgrade"
    assert outcome["runbook"]["params"] == {"node": "cp-1"} and outcome["runbook"]["command"] == command
    assert "kube-apiserver on cp-1" in outcome["runbook"]["why"]
    assert outcome["runbooks"] == [outcome["runbook"]]  # nothing was cordoned yet
    assert outcome["next"][0].startswith("find and fix the cause") and outcome["next"][-1].endswith(f"`{command}`")
    shown = render_result(SimpleNamespace(id=1, status=RunStatus.FAILED, cluster="prod", outcome=outcome))
    assert "  next: runbook apiserver-crashloop-after-upgrade: " in shown and command in shown


def test_an_etcd_member_lost_mid_run_names_member_lost_for_that_node(tmp_path: Path) -> None:
    world = NodeWorld(tmp_path, control_planes=3, workers=0)

    outcome = _failed_apply(world, ETCD, before=lambda argv: _lose(world, "cp-3"))

    assert (outcome["runbook"]["name"], outcome["runbook"]["params"]) == ("etcd-member-lost", {"node": "cp-3"})
    assert "2/3 etcd members healthy" in outcome["runbook"]["why"]


def test_quorum_lost_mid_run_names_the_snapshot_restore_with_the_runs_snapshot(tmp_path: Path) -> None:
    world = NodeWorld(tmp_path, control_planes=3, workers=0)

    outcome = _failed_apply(world, ETCD, before=lambda argv: _lose(world, "cp-2", "cp-3"))

    assert outcome["runbook"]["name"] == "restore-etcd-from-snapshot"
    assert outcome["runbook"]["params"] == {"snapshot": str(outcome["snapshot_id"])}
    assert outcome["runbook"]["command"].endswith(f"--cluster prod --param snapshot={outcome['snapshot_id']}")


def test_a_failure_that_left_nodes_cordoned_also_names_the_uncordon_runbook(tmp_path: Path) -> None:
    world = NodeWorld(tmp_path, control_planes=1, workers=1)
    plan_id = world.plan("v1.31")
    world.nodes["w-1"].answer("apt-get", "install", "-y", "kubectl=*",
                              result=CommandResult(100, "", "E: Could not get lock /var/lib/dpkg/lock-frontend\n"))

    run = apply.apply(world.app, plan_id, OPTIONS).run

    outcome = dict(run.outcome or {})
    assert outcome["cordoned_by_run"] == ["w-1"]
    assert outcome["runbook"] == {
        "name": "uncordon-nodes-left-by-upgrader", "params": {"run": str(run.id)},
        "why": f"run {run.id} left w-1 cordoned; `upgrader resume {run.id}` uncordons them when it finishes, this "
               "runbook does it if the run is abandoned",
        "command": f"upgrader runbook run uncordon-nodes-left-by-upgrader --cluster prod --param run={run.id}"}
    assert outcome["next"][-1].endswith(f"--param run={run.id}`")


def test_a_certificate_renewal_that_meets_an_expired_certificate_names_renew_certificates() -> None:
    step = Step(n=3, action=Action.HEALTH_GATE, node="cp-1", version=Version.parse("v1.31.4"), batch=None,
                reversibility=Reversibility.NONE)
    error = StepFailedError(step, errors.UpgraderError(
        'health gate failed: Get "https://10.0.0.1:6443/readyz": tls: failed to verify certificate: x509: '
        "certificate has expired or is not yet valid"))
    run = RunRecord(id=RunId(5), plan_id=PlanId(2), cluster="prod", status=RunStatus.FAILED, started_by="alice",
                    host="ops-1", command_line="upgrader certs renew prod", fencing_token=FencingToken(1),
                    created_at=datetime.now(UTC), started_at=None, finished_at=None, options={}, outcome=None,
                    steps=())

    outcome = certificates.failure_outcome("prod", run, error)

    assert outcome["runbook"] == {"name": "renew-certificates", "params": {},
                                  "why": outcome["runbook"]["why"],
                                  "command": "upgrader runbook run renew-certificates --cluster prod"}
    assert "expired certificate" in outcome["runbook"]["why"]
    assert outcome["next"][-1].endswith("`upgrader runbook run renew-certificates --cluster prod`")
