"""Which PodDisruptionBudgets would stop a drain: pure rules over the API's own JSON (policy/v1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from upgrader.domain.preflight import PDB, Check, failed, names, passed


def selector_matches(selector: Any, labels: Mapping[str, str] | None) -> bool:
    """A LabelSelector: null matches nothing, ``{}`` everything (policy/v1 PodDisruptionBudget semantics)."""
    if not isinstance(selector, dict):
        return False
    labels = labels if isinstance(labels, dict) else {}
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        return False
    for expr in expressions:
        if not isinstance(expr, dict):
            return False
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if not isinstance(values, list):
            return False
        present = key in labels
        value = labels.get(str(key))
        ok = {"In": present and value in values, "NotIn": not present or value not in values,
              "Exists": present, "DoesNotExist": not present}.get(str(op), False) is True
        if not ok:
            return False
    return True


def _is_one(value: Any) -> bool:
    return bool(value == 1 or value == "1" or value == "100%")


def _is_zero(value: Any) -> bool:
    return bool(value == 0 or value in ("0", "0%"))


def pdb_blocks(pdb: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> str | None:
    """Why this PodDisruptionBudget would stop a drain (None when it would not).

    It guards at least one live pod and either allows zero disruptions now, or must keep its only
    pod (minAvailable: 1 or 100%, or maxUnavailable: 0, over a single replica)."""
    meta, spec = pdb.get("metadata") or {}, pdb.get("spec") or {}
    namespace = meta.get("namespace")
    guarded = [p for p in pods if (p.get("metadata") or {}).get("namespace") == namespace
               and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
               and not (p.get("metadata") or {}).get("deletionTimestamp")
               and selector_matches(spec.get("selector"), (p.get("metadata") or {}).get("labels"))]
    if not guarded:
        return None
    allowed = (pdb.get("status") or {}).get("disruptionsAllowed")
    if isinstance(allowed, int) and allowed <= 0:
        return "zero disruptions allowed"
    if len(guarded) == 1 and (_is_one(spec.get("minAvailable")) or _is_zero(spec.get("maxUnavailable"))):
        return "a single replica it must keep available"
    return None


def disruption_budgets(pdbs: Iterable[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]]) -> Check:
    blocking = []
    for pdb in pdbs:
        why = pdb_blocks(pdb, pods)
        if why:
            meta = pdb.get("metadata") or {}
            blocking.append(f"{meta.get('namespace', '?')}/{meta.get('name', '?')} ({why})")
    if blocking:
        return failed(PDB, "DrainBlockedByBudget", f"PodDisruptionBudgets that would block a drain: "
                      f"{names(sorted(blocking))}", budgets=sorted(blocking))
    return passed(PDB, "NoBlockingBudgets", "no PodDisruptionBudget would block a drain")
