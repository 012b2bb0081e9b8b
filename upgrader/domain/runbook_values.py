"""The values of runbook params: what a value of each kind must look like without the cluster, the
``--param NAME=VALUE`` pairs, and the substitution of whole ``"{param}"`` values (domain/runbooks.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from upgrader.domain.runbook_actions import ArgKind
from upgrader.domain.versions import parse_target
from upgrader.errors import InvalidVersionError, UsageError

WHOLE = re.compile(r"\{([a-z][a-z0-9_]*)\}")
MAX_ID = 2**63  # a ledger id is a signed 64-bit integer (SQLite, PostgreSQL bigint)


def is_id(value: str) -> bool:
    """A run or snapshot id: ASCII digits only ("²".isdigit() is true, int("²") fails) below 2**63."""
    return value.isascii() and value.isdigit() and 1 <= int(value) < MAX_ID


def check_value(kind: ArgKind, value: str) -> str:
    """A param value of ``kind`` as far as it can be judged without the cluster (UsageError, exit 2)."""
    if kind is ArgKind.VERSION:
        try:
            parse_target(value)  # an exact patch (v1.33.2) or a whole minor (v1.33), as `plan --to`
        except InvalidVersionError as e:
            raise UsageError(e.message) from None
    elif kind in (ArgKind.RUN, ArgKind.SNAPSHOT):
        if not is_id(value):
            raise UsageError(f"expected a {kind} id (a positive number below 2**63), got {value!r}")
    elif kind in (ArgKind.NODE, ArgKind.CONTROL_PLANE_NODE, ArgKind.WORKER_NODE):
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", value):
            raise UsageError(f"expected a node name, got {value!r}")
    elif not value.strip() or "\n" in value:
        raise UsageError(f"expected a one-line string, got {value!r}")
    return value


def substitute(with_: Mapping[str, Any], values: Mapping[str, str | None]) -> dict[str, Any]:
    """``with_`` with each whole "{param}" replaced by its value; an argument whose param has no value
    is left out (the action's default applies)."""
    result: dict[str, Any] = {}
    for key, value in with_.items():
        if isinstance(value, list):
            items = [_value(v, values) for v in value]
            result[key] = [v for v in items if v is not None]
            continue
        resolved = _value(value, values)
        if resolved is not None:
            result[key] = resolved
    return result


def _value(value: Any, values: Mapping[str, str | None]) -> Any:
    if isinstance(value, str):
        found = WHOLE.fullmatch(value)
        if found is not None:
            return values.get(found.group(1))
    return value


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``--param k=v`` pairs; UsageError (exit 2) for one without '=' or given twice."""
    given: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected NAME=VALUE")
        if key in given:
            raise UsageError(f"--param {key} is given twice")
        given[key] = value
    return given
