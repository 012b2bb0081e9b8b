"""Which runbook a failed step calls for (domain/runbook_hints.py): kubeadm's and etcd's real wording
(issue13-research.md sections 1 and 9), the quorum rule, and that a hint is always a runnable command."""

from __future__ import annotations

import shlex
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.runbook_hints import (
    RUNBOOKS,
    EtcdHealth,
    FailedStep,
    RunbookHint,
    hint_for,
    restore_hint,
    uncordon_hint,
)

KUBEADM_FAILED = "step 4 (kubeadm-upgrade-apply on cp-1) failed: kubeadm upgrade apply failed on cp-1 (exit 1)"
# kubeadm 1.3x `upgrade node` (ClusterCreator #54, June 2025): the phase form
PHASED = ("error execution phase control-plane: couldn't complete the static pod upgrade: couldn't upgrade control "
          "plane. kubeadm has tried to recover everything into the earlier state. Errors faced: static Pod hash for "
          "component kube-apiserver on Node omega-controlplane-0 did not change after 5m0s: context deadline "
          "exceeded\nTo see the stack trace of this error execute with --v=5 or higher")
# kubeadm <= 1.31 `upgrade apply` (kubernetes/website #14898, kubernetes/kubeadm #740): the FATAL form
FATAL = ("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything into the "
         "earlier state. Errors faced: static Pod hash for component kube-controller-manager on Node cp-2 did not "
         "change after 5m0s: timed out waiting for the condition")
NO_HASH = ("[upgrade/staticpods] Waiting for the kubelet to restart the component\nfailed to obtain static Pod hash "
           "for component kube-scheduler on Node cp-3: Get \"https://10.0.0.3:6443/api/v1/namespaces/kube-system/pods/"
           "kube-scheduler-cp-3\": dial tcp 10.0.0.3:6443: connect: connection refused")
ETCD_UNHEALTHY = ("[upgrade/apply] FATAL: etcd cluster is not healthy: failed to dial endpoint https://10.0.0.3:2379 "
                  "with maintenance client: context deadline exceeded")
X509 = ('Get "https://10.0.0.1:6443/api/v1/nodes": tls: failed to verify certificate: x509: certificate has '
        "expired or is not yet valid: current time 2027-01-02T00:00:00Z is after 2026-12-31T00:00:00Z")


def kubeadm(output: str, node: str = "cp-1", *, action: str = "kubeadm-upgrade-apply") -> FailedStep:
    return FailedStep(action=action, node=node, error=KUBEADM_FAILED, output=output, version="v1.31.14")


@pytest.mark.parametrize(("output", "node", "component"), [
    (PHASED, "omega-controlplane-0", "kube-apiserver"),
    (FATAL.replace("kube-controller-manager", "kube-apiserver"), "cp-2", "kube-apiserver"),
    (NO_HASH.replace("kube-scheduler", "kube-apiserver"), "cp-3", "kube-apiserver"),
])
def test_kubeadm_giving_up_on_a_static_pod_names_the_crashloop_runbook_for_its_node(
        output: str, node: str, component: str) -> None:
    hint = hint_for(kubeadm(output))

    assert hint is not None and hint.name == "apiserver-crashloop-after-upgrade"
    assert hint.params == {"node": node} and component in hint.why and node in hint.why


@pytest.mark.parametrize(("output", "node", "component"), [
    (FATAL, "cp-2", "kube-controller-manager"),
    (NO_HASH, "cp-3", "kube-scheduler"),
    (PHASED.replace("kube-apiserver", "etcd"), "omega-controlplane-0", "etcd"),
])
def test_another_components_static_pod_failure_is_not_sent_to_the_apiserver_only_runbook(
        output: str, node: str, component: str) -> None:
    hint = hint_for(kubeadm(output))

    # the crashloop runbook restores kube-apiserver.yaml only: the reason says how to restore this one by hand
    assert hint is not None and hint.name == "rollback-last-upgrade" and hint.params == {}
    assert f"restore {component}.yaml on {node} by hand" in hint.why
    assert "kubeadm-backup-manifests-*" in hint.why


def test_the_recover_wrapper_alone_names_the_crashloop_runbook_on_the_steps_node() -> None:
    hint = hint_for(kubeadm("couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier "
                            "state. Errors faced: [timed out waiting for the condition]", node="cp-2",
                            action="kubeadm-upgrade-node"))

    assert hint is not None and hint.name == "apiserver-crashloop-after-upgrade" and hint.params == {"node": "cp-2"}


@pytest.mark.parametrize(("health", "name", "params"), [
    (EtcdHealth(healthy=2, total=3, unhealthy=("cp-3",)), "etcd-member-lost", {"node": "cp-3"}),
    (EtcdHealth(healthy=3, total=5, unhealthy=("cp-4", "cp-5")), "etcd-member-lost", {}),
    (EtcdHealth(healthy=1, total=3, unhealthy=("cp-2", "cp-3")), "restore-etcd-from-snapshot", {"snapshot": "7"}),
    (EtcdHealth(healthy=1, total=2, unhealthy=("cp-2",)), "restore-etcd-from-snapshot", {"snapshot": "7"}),
    (None, "etcd-member-lost", {}),
])
def test_an_etcd_failure_names_member_lost_while_a_majority_answers_else_the_snapshot_restore(
        health: EtcdHealth | None, name: str, params: dict[str, str]) -> None:
    hint = hint_for(kubeadm(ETCD_UNHEALTHY), health, snapshot_id=7)

    assert hint is not None and (hint.name, dict(hint.params)) == (name, params)


@pytest.mark.parametrize("error", [
    "etcdserver: request timed out",
    "rpc error: code = DeadlineExceeded desc = context deadline exceeded (etcd member list on cp-1)",
    "health gate 'control plane on cp-1 at v1.31.14' did not pass within 600s: etcd member(s) unhealthy: cp-3 "
    "(context deadline exceeded)",
])
def test_each_etcd_wording_reads_as_an_etcd_failure(error: str) -> None:
    step = FailedStep(action="health-gate", node="cp-1", error=error)

    hint = hint_for(step, EtcdHealth(healthy=2, total=3, unhealthy=("cp-3",)))

    assert hint is not None and hint.name == "etcd-member-lost" and "2/3 etcd members healthy" in hint.why


def test_an_etcd_error_with_every_member_healthy_now_falls_through_to_the_other_rules() -> None:
    output = f"{ETCD_UNHEALTHY}\n{FATAL.replace('kube-controller-manager', 'kube-apiserver')}"

    assert hint_for(kubeadm(output), EtcdHealth(healthy=3, total=3)).name == (  # type: ignore[union-attr]
        "apiserver-crashloop-after-upgrade")
    assert hint_for(kubeadm(ETCD_UNHEALTHY), EtcdHealth(healthy=3, total=3)) is None


def test_a_deadline_without_etcd_is_not_an_etcd_failure() -> None:
    step = FailedStep(action="drain", node="w-1", error="evicting demo/web: context deadline exceeded")

    assert hint_for(step, EtcdHealth(healthy=1, total=3, unhealthy=("cp-2", "cp-3"))) is None


def test_an_expired_certificate_names_renew_certificates_before_anything_it_broke() -> None:
    hint = hint_for(kubeadm(f"{X509}\n{FATAL}"), EtcdHealth(healthy=1, total=3, unhealthy=("cp-2", "cp-3")))

    assert hint is not None and (hint.name, dict(hint.params)) == ("renew-certificates", {})


@pytest.mark.parametrize(("step", "node"), [
    (FailedStep(action="upgrade-kubelet", node="worker-1", error="health gate 'worker-1 Ready at v1.31.14' did not "
                "pass within 20s: node(s) not Ready at v1.31.14: worker-1 NotReady"), "worker-1"),
    (FailedStep(action="health-gate", node=None, error="health gate 'batch 1 Ready at v1.31.14' did not pass within "
                "600s: /readyz 200; node(s) not Ready at v1.31.14: w-2 NotReady, w-3 kubelet v1.30.6"), "w-2"),
    (FailedStep(action="health-gate", node="cp-1", error="health gate 'control plane on cp-1 at v1.31.14' did not pass "
                "within 600s: node(s) NotReady: w-7, w-9"), "w-7"),
])
def test_a_node_that_stays_not_ready_after_its_kubelet_moved_names_node_stuck_not_ready(
        step: FailedStep, node: str) -> None:
    hint = hint_for(step)

    assert hint is not None and (hint.name, dict(hint.params)) == ("node-stuck-not-ready", {"node": node})


def test_not_ready_on_a_step_that_does_not_move_a_kubelet_names_nothing() -> None:
    assert hint_for(FailedStep(action="drain", node="w-1", error="node w-1 NotReady")) is None


def test_a_kubeadm_step_found_running_and_failing_again_is_a_half_done_hop() -> None:
    step = FailedStep(action="kubeadm-upgrade-apply", node="cp-1", error=KUBEADM_FAILED,
                      output="[upgrade/version] FATAL: the cluster version changed", version="v1.31.14",
                      found_running=True)

    hint = hint_for(step)

    assert hint is not None and (hint.name, dict(hint.params)) == ("kubeadm-upgrade-interrupted",
                                                                   {"version": "v1.31.14"})
    assert hint_for(FailedStep(**{**_fields(step), "found_running": False})) is None
    assert hint_for(FailedStep(**{**_fields(step), "action": "upgrade-kubeadm"})) is None


def _fields(step: FailedStep) -> dict[str, object]:
    return {name: getattr(step, name) for name in FailedStep.__slots__}  # type: ignore[attr-defined]


def test_nodes_left_cordoned_name_the_uncordon_runbook_for_that_run_only() -> None:
    hint = uncordon_hint(12, ["w-1", "w-2"])

    assert hint is not None and (hint.name, dict(hint.params)) == ("uncordon-nodes-left-by-upgrader", {"run": "12"})
    assert "w-1, w-2" in hint.why and "upgrader resume 12" in hint.why
    assert uncordon_hint(12, []) is None


def test_the_command_is_the_runbook_run_line_with_each_param() -> None:
    hint = restore_hint(4, "quorum lost")

    assert hint.command("prod") == "upgrader runbook run restore-etcd-from-snapshot --cluster prod --param snapshot=4"
    assert hint.to_dict("prod") == {"name": "restore-etcd-from-snapshot", "params": {"snapshot": "4"},
                                    "why": "quorum lost", "command": hint.command("prod")}
    assert restore_hint(None, "x").params == {}


# -- properties -----------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
ACTIONS = st.sampled_from(["preflight", "snapshot", "upgrade-kubeadm", "kubeadm-upgrade-apply",
                           "kubeadm-upgrade-node", "drain", "upgrade-kubelet", "uncordon", "health-gate", "postflight",
                           "emulated-upgrade-apply"])
NOISE = st.text(alphabet=string.ascii_letters + string.digits + " \n:./-_()[]\"'", max_size=200)


@given(action=ACTIONS, node=st.none() | NAMES, error=st.text(max_size=300), output=st.none() | st.text(max_size=300),
       running=st.booleans(), healthy=st.integers(0, 7), extra=st.integers(0, 7),
       snapshot=st.none() | st.integers(1, 99))
def test_any_failure_names_a_known_runbook_or_none_and_never_raises(
        action: str, node: str | None, error: str, output: str | None, running: bool, healthy: int, extra: int,
        snapshot: int | None) -> None:
    health = EtcdHealth(healthy=healthy, total=healthy + extra, unhealthy=tuple(f"m-{i}" for i in range(extra)))
    step = FailedStep(action=action, node=node, error=error, output=output, version="v1.31.14", found_running=running)

    hint = hint_for(step, health, snapshot_id=snapshot)

    assert hint is None or (hint.name in RUNBOOKS and hint.why
                            and all(isinstance(v, str) for v in hint.params.values()))


@given(component=NAMES | st.just("kube-apiserver"), node=NAMES, before=NOISE, after=NOISE,
       wording=st.sampled_from(["static Pod hash for component {c} on Node {n} did not change after 5m0s",
                                "failed to obtain static Pod hash for component {c} on Node {n}: connection refused",
                                "kubeadm has tried to recover everything into the earlier state. Errors faced: static "
                                "Pod for component {c} on Node {n} did not become ready"]))
def test_kubeadm_static_pod_wording_anywhere_in_the_output_names_the_node_it_gives(
        component: str, node: str, before: str, after: str, wording: str) -> None:
    output = f"{before}\n{wording.format(c=component, n=node)}\n{after}"

    hint = hint_for(kubeadm(output, node="elsewhere"))

    if component == "kube-apiserver":
        assert hint is not None and (hint.name, dict(hint.params)) == ("apiserver-crashloop-after-upgrade",
                                                                        {"node": node})
    else:
        assert hint is not None and hint.name == "rollback-last-upgrade" and f"{component}.yaml on {node}" in hint.why


@given(healthy=st.integers(0, 9), down=st.integers(1, 9))
def test_member_lost_exactly_when_a_strict_majority_is_healthy(healthy: int, down: int) -> None:
    health = EtcdHealth(healthy=healthy, total=healthy + down, unhealthy=tuple(f"cp-{i}" for i in range(down)))

    hint = hint_for(kubeadm(ETCD_UNHEALTHY), health, snapshot_id=3)

    majority = 2 * healthy > healthy + down
    assert hint is not None and hint.name == ("etcd-member-lost" if majority else "restore-etcd-from-snapshot")


@given(name=st.sampled_from(sorted(RUNBOOKS)), cluster=NAMES,
       params=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), st.text(max_size=30), max_size=3))
def test_the_command_splits_back_into_its_cluster_and_params(name: str, cluster: str, params: dict[str, str]) -> None:
    argv = shlex.split(RunbookHint(name, params, "why").command(cluster))

    assert argv[:6] == ["upgrader", "runbook", "run", name, "--cluster", cluster]
    pairs = argv[6:]
    assert pairs[::2] == ["--param"] * len(params)
    assert dict(p.split("=", 1) for p in pairs[1::2]) == params


def test_kubeadm_static_pod_failure_that_mentions_etcd_names_the_crashloop_runbook_unless_a_member_is_down() -> None:
    # kubeadm 1.32+ prints its etcd phase before the static pods and ends a hash timeout in "context
    # deadline exceeded": with etcd's health unread, or every member healthy, the static pod explains it
    output = "[upgrade/etcd] Upgrading to TLS for etcd\n" + PHASED
    assert (hint := hint_for(kubeadm(output))) is not None and hint.name == "apiserver-crashloop-after-upgrade"
    healthy = EtcdHealth(healthy=3, total=3, unhealthy=())
    assert (hint := hint_for(kubeadm(output), healthy)) is not None
    assert hint.name == "apiserver-crashloop-after-upgrade"
    down = EtcdHealth(healthy=2, total=3, unhealthy=("cp-3",))
    assert (hint := hint_for(kubeadm(output), down)) is not None
    assert (hint.name, hint.params) == ("etcd-member-lost", {"node": "cp-3"}), "a member down is the deeper cause"
