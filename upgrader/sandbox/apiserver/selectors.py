"""Label and field selectors, as the list endpoints and the controllers apply them.

Label selectors follow k8s.io/apimachinery/pkg/labels (``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``,
``a notin (x)``, ``a``, ``!a``); field selectors support only the fields the real API indexes for each
resource (``kubectl drain`` lists pods with ``spec.nodeName=NODE``), and refuse others with the real
``field label not supported`` error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from upgrader.sandbox.apiserver import errors

Obj = dict[str, Any]
Matcher = Callable[[Obj], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_CMP = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*([-A-Za-z0-9_.]*)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # in, notin, exists, !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "notin":
            return not present or labels[self.key] not in self.values
        if self.op == "exists":
            return present
        return not present


def _split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses: ``a in (x,y),b`` is two requirements."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    reqs = []
    for part in _split_top_level(text or ""):
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _CMP.match(part):
            reqs.append(Requirement(m.group(1), "notin" if m.group(2) == "!=" else "in", frozenset([m.group(3)])))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise errors.bad_request(f"unable to parse requirement: found '{part.strip()}', expected: "
                                     "identifier, '!', 'in', 'notin', '=', '==', '!='")
    return reqs


def label_matcher(text: str | None) -> Matcher:
    reqs = parse_label_selector(text)
    return lambda obj: all(r.matches(obj.get("metadata", {}).get("labels") or {}) for r in reqs)


def selector_requirements(selector: dict[str, Any] | None) -> list[Requirement] | None:
    """A metav1.LabelSelector as requirements; None means "matches nothing" (a nil selector)."""
    if selector is None:
        return None
    reqs = [Requirement(k, "in", frozenset([v])) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(Requirement(expr["key"], ops[expr["operator"]], frozenset(expr.get("values") or [])))
    return reqs


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """An empty LabelSelector ({}) matches everything; a missing one matches nothing (as in policy/v1)."""
    reqs = selector_requirements(selector)
    return reqs is not None and all(r.matches(labels or {}) for r in reqs)


def _path(*keys: str) -> Callable[[Obj], str]:
    def get(obj: Obj) -> str:
        cur: Any = obj
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return "" if cur is None else str(cur)
    return get


_COMMON = {"metadata.name": _path("metadata", "name"), "metadata.namespace": _path("metadata", "namespace")}
# The field labels each resource's real storage strategy indexes (GetAttrs / AddFieldLabelConversionFunc).
FIELDS: dict[str, dict[str, Callable[[Obj], str]]] = {
    "pods": {**_COMMON, **{f: _path(*f.split(".")) for f in (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")}},
    # an unset bool is "false" to the real node field index (strconv.FormatBool)
    "nodes": {**_COMMON, "spec.unschedulable": lambda o: _path("spec", "unschedulable")(o) or "false"},
    "namespaces": {**_COMMON, "status.phase": _path("status", "phase")},
    "events": {**_COMMON, **{f: _path(*f.split(".")) for f in (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type")}},
    "replicasets": {**_COMMON, "status.replicas": _path("status", "replicas")},
}

FIELDS["pods"]["spec.hostNetwork"] = lambda o: _path("spec", "hostNetwork")(o) or "false"


def field_matcher(plural: str, text: str | None) -> Matcher:
    """``a=b,c!=d``; unknown fields are a 400 exactly like the real API's."""
    fields = FIELDS.get(plural, _COMMON)
    checks: list[Matcher] = []
    for part in _split_top_level(text or ""):
        m = re.match(r"^\s*([^!=\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.groups()
        getter = fields.get(field)
        if getter is None:
            raise errors.bad_request(f"field label not supported: {field}")
        checks.append(_field_check(getter, value, negate=op == "!="))
    return lambda obj: all(c(obj) for c in checks)


def _field_check(getter: Callable[[Obj], str], value: str, *, negate: bool) -> Matcher:
    return lambda obj: (getter(obj) == value) != negate
