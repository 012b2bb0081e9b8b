"""Cordon, drain and uncordon on the in-package fake cluster: budgets honoured, whose cordon it is recorded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from upgrader import errors
from upgrader.domain.preflight import CORDON_ANNOTATION
from upgrader.engine.drain import CordonState, DrainOutcome, cordon, drain, drained, uncordon
from upgrader.fakes import FakeClock, FakeClusterApi

RUN = 7


def _node(name: str, *, unschedulable: bool = False, annotation: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"kubernetes.io/hostname": name}}
    if annotation is not None:
        meta["annotations"] = {CORDON_ANNOTATION: annotation}
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta,
            "spec": {"unschedulable": True} if unschedulable else {}}


def _pod(name: str, node: str, *, app: str = "web", namespace: str = "demo", owner: str = "ReplicaSet",
         phase: str = "Running", annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": {"app": app},
                         "annotations": annotations or {},
                         "ownerReferences": [{"kind": owner, "name": f"{app}-owner", "controller": True}]},
            "spec": {"nodeName": node}, "status": {"phase": phase}}


def _pdb(name: str, app: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name, "namespace": "demo"},
            "spec": {**spec, "selector": {"matchLabels": {"app": app}}}}


NODES = [_node("worker-1"), _node("worker-2"), _node("worker-3")]


def _world(pods: list[dict[str, Any]], pdbs: Sequence[dict[str, Any]] = (), *, nodes: list[dict[str, Any]] = NODES,
           **fake: Any) -> tuple[FakeClusterApi, FakeClock]:
    clock = FakeClock()
    return FakeClusterApi({"cluster": "c", "nodes": []}, nodes=nodes, pods=pods, pdbs=pdbs, clock=clock,
                          **fake), clock


def _on(api: FakeClusterApi, node: str) -> list[str]:
    return sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in api.list_node_pods(node))


def _cordon_of(api: FakeClusterApi, name: str) -> tuple[bool, str | None]:
    node = api.get_node(name)
    assert node is not None
    return (bool(node["spec"].get("unschedulable")),
            (node["metadata"].get("annotations") or {}).get(CORDON_ANNOTATION))


def test_cordon_marks_the_node_as_this_runs_and_a_second_cordon_is_a_resume():
    api, _ = _world([])
    assert cordon(api, "worker-1", run_id=RUN) == CordonState.CORDONED == "cordoned"
    assert _cordon_of(api, "worker-1") == (True, "7")
    assert cordon(api, "worker-1", run_id=RUN) == "ours"
    assert _cordon_of(api, "worker-2") == (False, None)


@pytest.mark.parametrize("annotation", [None, "3"])
def test_a_node_someone_else_cordoned_is_foreign_never_annotated_and_never_uncordoned(annotation):
    api, _ = _world([], nodes=[_node("worker-1", unschedulable=True, annotation=annotation)])
    assert cordon(api, "worker-1", run_id=RUN) == "foreign"
    assert _cordon_of(api, "worker-1") == (True, annotation)
    assert uncordon(api, "worker-1", run_id=RUN) is False
    assert _cordon_of(api, "worker-1") == (True, annotation)
    assert drained(api, "worker-1", run_id=RUN) is False  # not ours, even with nothing on it


def test_uncordon_undoes_exactly_our_cordon():
    api, _ = _world([])
    cordon(api, "worker-1", run_id=RUN)
    assert uncordon(api, "worker-1", run_id=8) is False  # another run's id: not its cordon
    assert _cordon_of(api, "worker-1") == (True, "7")
    assert uncordon(api, "worker-1", run_id=RUN) is True
    node = api.get_node("worker-1")
    assert node is not None and "unschedulable" not in node["spec"]
    assert CORDON_ANNOTATION not in (node["metadata"].get("annotations") or {})


def test_an_unknown_node_is_node_not_found():
    api, clock = _world([])
    for act in (lambda: cordon(api, "nope", run_id=RUN), lambda: uncordon(api, "nope", run_id=RUN),
                lambda: drained(api, "nope", run_id=RUN), lambda: drain(api, clock, "nope", run_id=RUN, timeout=5)):
        with pytest.raises(errors.NodeNotFoundError):
            act()


def test_drain_evicts_workload_pods_and_leaves_daemonset_mirror_and_finished_ones():
    pods = [_pod("web-1", "worker-1"), _pod("web-2", "worker-2"),
            _pod("agent-1", "worker-1", app="agent", namespace="kube-system", owner="DaemonSet"),
            _pod("static-worker-1", "worker-1", app="static", namespace="kube-system", owner="Node",
                 annotations={"kubernetes.io/config.mirror": "abc"}),
            _pod("job-1", "worker-1", app="job", owner="Job", phase="Succeeded")]
    api, _ = _world(pods)
    assert drained(api, "worker-1", run_id=RUN) is False
    outcome = drain(api, FakeClock(), "worker-1", run_id=RUN, timeout=60)
    assert outcome == DrainOutcome(cordon=CordonState.CORDONED, evicted=("demo/web-1",), skipped_daemonset=1,
                                   skipped_mirror=1)
    assert _on(api, "worker-1") == ["demo/job-1", "kube-system/agent-1", "kube-system/static-worker-1"]
    assert _on(api, "worker-2") == ["demo/web-2"]
    assert drained(api, "worker-1", run_id=RUN) is True


def test_a_refused_eviction_is_asked_again_every_retry_seconds_until_it_is_let_go():
    api, clock = _world([_pod("web-1", "worker-1")])
    api.refuse_evictions("demo", "web-1", 3)
    outcome = drain(api, clock, "worker-1", run_id=RUN, timeout=60)
    assert (outcome.evicted, outcome.refusals_429, outcome.waited_seconds) == (("demo/web-1",), 3, 15.0)
    assert clock.slept == [5.0, 5.0, 5.0]
    assert _on(api, "worker-1") == []


def test_a_drain_never_takes_a_budget_below_min_available():
    """Three replicas, minAvailable 2: the second eviction waits (429) until the first one's replacement runs."""
    pods = [_pod("web-a", "worker-1"), _pod("web-b", "worker-1"), _pod("web-c", "worker-2")]
    api, clock = _world(pods, [_pdb("web", "web", minAvailable=2)])
    healthy_at_eviction: list[int] = []

    def replace(evicted: dict[str, Any]) -> None:  # the ReplicaSet controller and a kubelet taking 12 s
        running = [p for p in api.pods if p["metadata"]["labels"]["app"] == "web" and p["status"]["phase"] == "Running"]
        healthy_at_eviction.append(len(running))
        new = _pod(evicted["metadata"]["name"] + "-r", "worker-3", phase="Pending")
        api.pods.append(new)
        api.after(12, lambda: new["status"].update(phase="Running"))

    api.on_evicted = replace
    outcome = drain(api, clock, "worker-1", run_id=RUN, timeout=120, retry_seconds=5)
    assert outcome.evicted == ("demo/web-a", "demo/web-b")
    assert outcome.refusals_429 == 3 and outcome.waited_seconds == 15.0  # refused at 0, 5 and 10 s; let go at 15
    assert min(healthy_at_eviction) >= 2
    assert _on(api, "worker-3") == ["demo/web-a-r", "demo/web-b-r"]


def test_a_budget_that_allows_nothing_times_out_naming_the_pod_and_the_budget():
    api, clock = _world([_pod("db-0", "worker-2", app="db")], [_pdb("db", "db", minAvailable=1)])
    with pytest.raises(errors.DrainTimeoutError) as caught:
        drain(api, clock, "worker-2", run_id=RUN, timeout=12)
    error = caught.value
    assert error.exit_code == 6 and isinstance(error, errors.UpgraderError)
    assert (error.pods, error.budgets) == (("demo/db-0",), ("demo/db",))
    assert error.message.startswith("node worker-2 was not drained within 12s: 1 pod(s) still on it: demo/db-0 "
                                    "(PodDisruptionBudget demo/db; the API said: Cannot evict pod")
    assert "needs 1 healthy pods and has 1 currently" in error.message and "\n" not in error.message
    assert clock.slept == [5.0, 5.0, 2.0]  # never sleeps past the timeout
    assert _on(api, "worker-2") == ["demo/db-0"] and _cordon_of(api, "worker-2") == (True, "7")


def test_force_deletes_what_the_budget_kept_at_the_timeout_and_says_so():
    api, clock = _world([_pod("db-0", "worker-2", app="db"), _pod("web-1", "worker-2")],
                        [_pdb("db", "db", minAvailable=1)])
    outcome = drain(api, clock, "worker-2", run_id=RUN, timeout=12, force=True)
    assert (outcome.evicted, outcome.force_deleted) == (("demo/web-1",), ("demo/db-0",))
    assert outcome.refusals_429 == 4 and outcome.waited_seconds == 12.0
    assert _on(api, "worker-2") == []


def test_the_drain_waits_until_evicted_pods_are_gone_and_evicts_each_only_once():
    api, clock = _world([_pod("web-1", "worker-1")], terminating_seconds=3.0)
    outcome = drain(api, clock, "worker-1", run_id=RUN, timeout=60)
    assert (outcome.evicted, outcome.waited_seconds, clock.slept) == (("demo/web-1",), 3.0, [1.0, 1.0, 1.0])
    assert _on(api, "worker-1") == []


def test_a_pod_still_terminating_at_the_timeout_is_named_as_such():
    api, clock = _world([_pod("web-1", "worker-1")], terminating_seconds=30.0)
    with pytest.raises(errors.DrainTimeoutError, match=r"demo/web-1 \(evicted, still terminating\)"):
        drain(api, clock, "worker-1", run_id=RUN, timeout=4)


def test_a_stop_request_interrupts_at_a_safe_point_and_the_drain_resumes_as_ours():
    api, clock = _world([_pod("web-1", "worker-1"), _pod("web-2", "worker-1")])
    api.refuse_evictions("demo", "web-2", 1)
    with pytest.raises(KeyboardInterrupt):
        drain(api, clock, "worker-1", run_id=RUN, timeout=60, should_stop=lambda: len(api.pods) == 1)
    assert _on(api, "worker-1") == ["demo/web-2"] and _cordon_of(api, "worker-1") == (True, "7")
    resumed = drain(api, clock, "worker-1", run_id=RUN, timeout=60)
    assert (resumed.cordon, resumed.evicted) == ("ours", ("demo/web-2",))
    assert drained(api, "worker-1", run_id=RUN) and uncordon(api, "worker-1", run_id=RUN)


def test_an_eviction_refused_for_another_reason_stops_the_drain():
    api, clock = _world([_pod("web-1", "worker-1")], [_pdb("a", "web", minAvailable=0), _pdb("b", "web")])
    with pytest.raises(errors.DrainError, match=r"eviction of pod demo/web-1 failed: the API answered 500 This pod "
                       "has more than one PodDisruptionBudget") as caught:
        drain(api, clock, "worker-1", run_id=RUN, timeout=60)
    assert caught.value.exit_code == 6 and not isinstance(caught.value, errors.DrainTimeoutError)


def test_the_outcome_is_a_json_document_for_the_ledger():
    api, clock = _world([_pod("web-1", "worker-1")])
    api.refuse_evictions("demo", "web-1", 1)
    doc = drain(api, clock, "worker-1", run_id=RUN, timeout=60).to_dict()
    assert json.loads(json.dumps(doc)) == {"cordon": "cordoned", "evicted": ["demo/web-1"], "force_deleted": [],
                                           "skipped_daemonset": 0, "skipped_mirror": 0, "refusals_429": 1,
                                           "waited_seconds": 5.0}


def test_every_drain_call_of_an_unreachable_cluster_is_cluster_unreachable_error():
    api = FakeClusterApi(unreachable="no route")
    for call in (lambda: api.get_node("w"), lambda: api.list_node_pods("w"), lambda: api.evict_pod("d", "p"),
                 lambda: api.patch_node("w", {}), lambda: api.delete_pod("d", "p"), api.list_control_plane_pods):
        with pytest.raises(errors.ClusterUnreachableError):
            call()
