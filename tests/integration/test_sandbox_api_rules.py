"""The pure rules under the sandbox API server (patches, selectors, durations), without etcd."""

from __future__ import annotations

import pytest

from upgrader.sandbox.apiserver import errors
from upgrader.sandbox.apiserver.objects import int_or_percent, tolerates
from upgrader.sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge
from upgrader.sandbox.apiserver.selectors import field_matcher, label_matcher, selector_matches
from upgrader.sandbox.apiserver.tables import human_duration


def test_strategic_merge_uses_merge_keys_and_directives():
    pod = {"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]},
           "metadata": {"finalizers": ["f1"], "labels": {"k": "v", "gone": "1"}}}
    patched = strategic_merge(pod, {
        "spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "a", "$patch": "delete"}]},
        "metadata": {"finalizers": ["f2"], "labels": {"gone": None}}})
    assert patched["spec"]["containers"] == [{"name": "b", "image": "y:2"}]
    assert patched["metadata"] == {"finalizers": ["f1", "f2"], "labels": {"k": "v"}}
    node = {"spec": {"unschedulable": True, "taints": [{"key": "a", "effect": "NoSchedule"}]}}
    assert strategic_merge(node, {"spec": {"unschedulable": None, "taints": []}}) == {"spec": {"taints": []}}


def test_merge_patch_and_json_patch():
    assert merge_patch({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None}, "l": [2]}) == {"a": {"c": 2}, "l": [2]}
    doc = {"metadata": {"labels": {}}, "spec": {"items": [1, 2]}}
    out = json_patch(doc, [{"op": "add", "path": "/metadata/labels/x~1y", "value": "1"},
                           {"op": "add", "path": "/spec/items/-", "value": 3},
                           {"op": "remove", "path": "/spec/items/0"},
                           {"op": "test", "path": "/spec/items", "value": [2, 3]}])
    assert out == {"metadata": {"labels": {"x/y": "1"}}, "spec": {"items": [2, 3]}}
    with pytest.raises(errors.ApiError) as e:
        json_patch(doc, [{"op": "test", "path": "/spec/items", "value": []}])
    assert e.value.code == 422


def test_label_selectors():
    pod = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    for text, expected in [("app=web", True), ("app==web,tier!=back", True), ("app in (web, api)", True),
                           ("app notin (web)", False), ("tier", True), ("!tier", False), ("!missing", True),
                           ("app in (a,b),tier", False), ("", True)]:
        assert label_matcher(text)(pod) is expected, text
    with pytest.raises(errors.ApiError):
        label_matcher("app===x")
    assert selector_matches({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
                            pod["metadata"]["labels"])
    assert selector_matches({}, {}) and not selector_matches(None, {"a": "b"})


def test_field_selectors_know_the_real_field_labels():
    pod = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "w1"}, "status": {"phase": "Running"}}
    assert field_matcher("pods", "spec.nodeName=w1,status.phase!=Succeeded")(pod)
    assert not field_matcher("pods", "spec.nodeName==w2")(pod)
    assert field_matcher("nodes", "spec.unschedulable=false")({"metadata": {"name": "n"}, "spec": {}})
    with pytest.raises(errors.ApiError) as e:
        field_matcher("configmaps", "data.x=1")
    assert e.value.message == "field label not supported: data.x"


def test_human_duration_and_int_or_percent():
    assert [human_duration(s) for s in (5, 119, 150, 700, 3 * 3600 + 60, 30 * 3600, 3 * 86400 + 3600)] == [
        "5s", "119s", "2m30s", "11m", "3h1m", "30h", "3d1h"]
    assert int_or_percent("25%", 3, round_up=True) == 1 and int_or_percent(2, 10, round_up=True) == 2
    assert int_or_percent("50%", 3, round_up=False) == 1


def test_tolerations():
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    assert tolerates([{"operator": "Exists"}], taint)
    assert tolerates([{"key": taint["key"], "operator": "Exists", "effect": "NoSchedule"}], taint)
    assert not tolerates([{"key": taint["key"], "operator": "Exists", "effect": "NoExecute"}], taint)
    assert not tolerates([], taint)


def _node(name: str, *, ready: bool = True, unschedulable: bool = False, taints: list | None = None,
          labels: dict | None = None) -> dict:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"unschedulable": unschedulable, "taints": taints or []},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _placed(node: str, owner: str | None = None) -> dict:
    refs = [{"kind": "ReplicaSet", "uid": owner, "controller": True}] if owner else []
    return {"metadata": {"ownerReferences": refs}, "spec": {"nodeName": node}, "status": {"phase": "Running"}}


CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
CP_TOLERATION = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}


def test_scheduler_spreads_one_owner_then_balances_then_goes_by_name():
    from upgrader.sandbox.controllers.scheduling import World, pick_node

    world = World([_node("w-3"), _node("w-1"), _node("w-2")], [])
    placed = []
    for _ in range(6):  # as a ReplicaSet creates its replicas: each sees where the previous went
        node = pick_node(world, {}, owner_uid="rs")
        placed.append(node["metadata"]["name"])
        world.pods.append(_placed(node["metadata"]["name"], "rs"))
    assert placed == ["w-1", "w-2", "w-3", "w-1", "w-2", "w-3"]
    # another owner's pods weigh less than this owner's: w-1 has more pods but none of "other"'s
    busy = World([_node("w-1"), _node("w-2")], [_placed("w-1", "x"), _placed("w-1", "x"), _placed("w-2", "other")])
    assert pick_node(busy, {}, owner_uid="other")["metadata"]["name"] == "w-1"
    assert pick_node(busy, {}, owner_uid="new")["metadata"]["name"] == "w-2"  # then fewest pods overall
    finished = {**_placed("w-1", "new"), "status": {"phase": "Succeeded"}}
    busy.pods.append(finished)  # finished and deleting pods occupy nothing
    assert pick_node(busy, {}, owner_uid="new")["metadata"]["name"] == "w-2"


def test_scheduler_filters_cordoned_not_ready_tainted_and_unselected_nodes():
    from upgrader.sandbox.controllers.scheduling import World, pick_node, unschedulable_message

    nodes = [_node("cp-1", taints=[CP_TAINT]), _node("w-1", unschedulable=True), _node("w-2", ready=False),
             _node("w-3", labels={"disk": "ssd"}), _node("w-4")]
    world = World(nodes, [])
    assert pick_node(world, {})["metadata"]["name"] == "w-3"
    assert pick_node(world, {"nodeSelector": {"disk": "ssd"}})["metadata"]["name"] == "w-3"
    assert pick_node(world, {"nodeSelector": {"kubernetes.io/hostname": "w-4"}})["metadata"]["name"] == "w-4"
    assert pick_node(world, {"nodeSelector": {"kubernetes.io/hostname": "cp-1"},
                             "tolerations": [CP_TOLERATION]})["metadata"]["name"] == "cp-1"
    everything = {"tolerations": [{"operator": "Exists"}], "nodeSelector": {"kubernetes.io/hostname": "w-2"}}
    assert pick_node(world, everything)["metadata"]["name"] == "w-2"  # tolerates the not-ready taint too
    nowhere = {"nodeSelector": {"disk": "nvme"}}
    assert pick_node(world, nowhere) is None
    assert unschedulable_message(world, nowhere) == (
        "0/5 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable, "
        "2 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are available: "
        "5 Preemption is not helpful for scheduling.")
    assert unschedulable_message(World([], []), {}) == "no nodes available to schedule pods"


def test_a_pod_with_node_name_bypasses_the_scheduler_but_waits_for_its_kubelet():
    from upgrader.sandbox.controllers.scheduling import World, pick_node

    world = World([_node("cp-1", taints=[CP_TAINT], unschedulable=True), _node("w-1", ready=False)], [])
    assert pick_node(world, {"nodeName": "cp-1"})["metadata"]["name"] == "cp-1"  # taint and cordon do not matter
    assert pick_node(world, {"nodeName": "w-1"}) is None  # its kubelet is not running
    assert pick_node(world, {"nodeName": "gone"}) is None
    assert pick_node(world, {"nodeName": "cp-1", "nodeSelector": {"disk": "ssd"}}) is None  # the kubelet refuses


def test_node_addresses_are_loopback_only():
    import ipaddress

    from upgrader.sandbox.apiserver.node_status import NodeRole, NodeSpec
    from upgrader.sandbox.node.kubelet import internal_ip

    assert all(ipaddress.ip_address(internal_ip(i)).is_loopback for i in range(2000))
    assert len({internal_ip(i) for i in range(2000)}) == 2000
    for private in ("10.0.0.5", "172.18.0.2", "192.168.1.10", "node-1"):
        with pytest.raises(ValueError, match="not a loopback address"):
            NodeSpec("w-1", NodeRole.WORKER, private)
    assert NodeSpec("w-1", NodeRole.WORKER, "127.0.3.4").internal_ip == "127.0.3.4"
