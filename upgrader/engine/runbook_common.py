"""What every runbook step handler shares: its ``with:`` arguments, the node it works on, a no-op
``observe`` for reads, and a ``describe`` made of lines with ``{name}`` filled from the step.

Handlers live in runbook_steps.py (generic), runbook_manifests.py, runbook_etcd.py and
runbook_nodes.py (control plane); the paths they share on a kubeadm node are here too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from upgrader.domain.plans import Step
from upgrader.engine.context import RunContext
from upgrader.engine.steps import StepError

MANIFESTS_DIR = "/etc/kubernetes/manifests"
TMP_DIR = "/etc/kubernetes/tmp"

Describe = Callable[[RunContext, Step], list[str]]


def args(step: Step) -> Mapping[str, Any]:
    """The step's ``with:`` (already checked and substituted by the runbook reader)."""
    found = step.params.get("with") if step.params else None
    return found if isinstance(found, Mapping) else {}


def node_arg(step: Step) -> str:
    node = args(step).get("node") or step.node
    if not isinstance(node, str) or not node:
        raise StepError(f"step {step.n} ({step.action}) names no node")
    return node


def never(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    """``observe`` of a read: reading again on resume is harmless."""
    return None


def say(values: Callable[[RunContext, Step], Mapping[str, Any]], *lines: str) -> Describe:
    """A describe: each line with ``{name}`` replaced from ``values(ctx, step)``, called only when a
    line has a placeholder."""
    def describe(ctx: RunContext, step: Step) -> list[str]:
        if not any("{" in line for line in lines):
            return list(lines)
        found = values(ctx, step)
        return [line.format(**found) for line in lines]
    return describe
