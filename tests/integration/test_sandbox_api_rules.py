"""The pure rules under the sandbox API server (patches, selectors, durations), without etcd."""

from __future__ import annotations

import pytest

from upgrader.sandbox.apiserver import errors
from upgrader.sandbox.apiserver.patch import json_patch, merge_patch, strategic_merge
from upgrader.sandbox.apiserver.podutil import int_or_percent, tolerates
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
