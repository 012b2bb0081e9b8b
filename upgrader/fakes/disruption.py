"""What the fake cluster's API decides on its own: a PodDisruptionBudget's answer to an eviction, a merge patch.

Simpler than the real disruption controller (no unhealthy-pod policy, no controllers to ask): a
budget counts the Running pods its selector matches in its namespace, and allows ``healthy - desired``
disruptions, where desired comes from ``minAvailable`` or ``maxUnavailable`` over the expected pods:
the budget's ``status.expectedPods`` when it has one (the controllers' scale, as the API reported it),
else the pods it matches. That is enough to hold the drain to the rule that matters: never below the
budget.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

from upgrader.domain.drain_budgets import selector_matches

PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _guarded(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    namespace = (pdb.get("metadata") or {}).get("namespace")
    selector = (pdb.get("spec") or {}).get("selector")
    return [p for p in pods if (p.get("metadata") or {}).get("namespace") == namespace
            and selector_matches(selector, (p.get("metadata") or {}).get("labels"))]


def _healthy(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not (pod.get("metadata") or {}).get(
        "deletionTimestamp")


def _count(value: Any, total: int) -> int:
    """An int-or-percent of ``total``, rounded up as the disruption controller does."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(total * int(value[:-1]) / 100)
    return int(value)


def disruptions_allowed(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> tuple[int, int, int]:
    """(disruptionsAllowed, desired healthy, current healthy) of the budget over these pods, now."""
    spec = pdb.get("spec") or {}
    guarded = [p for p in _guarded(pdb, pods) if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    healthy = sum(1 for p in guarded if _healthy(p))
    expected = (pdb.get("status") or {}).get("expectedPods")
    expected = expected if isinstance(expected, int) else len(guarded)
    if "maxUnavailable" in spec:
        desired = max(0, expected - _count(spec["maxUnavailable"], expected))
    else:
        desired = _count(spec.get("minAvailable", 0), expected)
    return max(0, healthy - desired), desired, healthy


def budget_refusal(pod: Mapping[str, Any], pdbs: Sequence[Mapping[str, Any]],
                   pods: Sequence[Mapping[str, Any]]) -> tuple[int, str] | None:
    """The API's answer when the pod's budget refuses its eviction (429, or 500 for two budgets); None to evict."""
    mine = [b for b in pdbs if _guarded(b, [pod])]
    if not mine or not _healthy(pod):
        return None  # a pod that is not running does not count against its budget
    if len(mine) > 1:
        return 500, "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    allowed, desired, healthy = disruptions_allowed(mine[0], pods)
    if allowed > 0:
        return None
    name = (mine[0].get("metadata") or {}).get("name")
    return 429, f"{PDB_MESSAGE} (The disruption budget {name} needs {desired} healthy pods and has {healthy} currently)"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, None deletes, anything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
