"""Upgrade playbooks: each role's upgrade procedure as data the planner expands, read strictly.

A playbook (``playbooks/upgrade/ROLE.yaml``) lists, per phase of its role, the steps every node of that
role goes through: the engine's own actions (the *built-in* steps) and two kinds an operator may add,
``command`` (an argv run on the node) and ``check`` (an argv on the node or an HTTP GET on the cluster's
API that must succeed, retried). The built-in steps of a phase must all be there, in the engine's
order: that order is what the planner's rules (and domain/replay.py) prove safe, so a copy may add
steps between them but neither drop nor move one. Everything else is refused with the file, the step
and the field named (domain/documents.py), never guessed.

Placeholders: an argv item may be exactly ``{node}``, ``{version}`` or ``{minor}`` and is replaced, as
one whole argument, when the plan is made (so the plan document shows the final argv); any other
``{`` or ``}`` in a value is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from upgrader.domain.documents import (
    LINE_KEY,
    PLACEHOLDER_NAMES,
    Fields,
    Where,
    api_path_problem,
    refuse,
    shell_script_problem,
    shown,
    type_name,
)
from upgrader.domain.plans import Action
from upgrader.domain.versions import Version


class Role(StrEnum):
    FIRST_CONTROL_PLANE = "first-control-plane"  # runs `kubeadm upgrade apply` (and the hop's snapshot)
    CONTROL_PLANE = "control-plane"  # the other control-plane nodes: `kubeadm upgrade node`
    WORKER = "worker"


CUSTOM = (Action.COMMAND, Action.CHECK)
MANAGERS = ("apt", "dnf")
PLACEHOLDERS = tuple("{" + n + "}" for n in PLACEHOLDER_NAMES)
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", re.ASCII)
MAX_TIMEOUT = 86400.0

# The built-in steps of each phase, in the order the engine runs them. A control-plane role has two
# phases because every control-plane node's kubeadm part runs before any control-plane kubelet moves;
# a worker's ``node`` phase runs on each worker of a batch, its ``batch`` phase once the batch is done.
BUILT_IN: dict[Role, dict[str, tuple[Action, ...]]] = {
    Role.FIRST_CONTROL_PLANE: {
        "control-plane": (Action.SNAPSHOT, Action.UPGRADE_KUBEADM, Action.KUBEADM_UPGRADE_APPLY, Action.HEALTH_GATE),
        "kubelet": (Action.DRAIN, Action.UPGRADE_KUBELET, Action.UNCORDON),
    },
    Role.CONTROL_PLANE: {
        "control-plane": (Action.UPGRADE_KUBEADM, Action.KUBEADM_UPGRADE_NODE, Action.HEALTH_GATE),
        "kubelet": (Action.DRAIN, Action.UPGRADE_KUBELET, Action.UNCORDON),
    },
    Role.WORKER: {
        "node": (Action.UPGRADE_KUBEADM, Action.KUBEADM_UPGRADE_NODE, Action.DRAIN, Action.UPGRADE_KUBELET,
                 Action.UNCORDON),
        "batch": (Action.HEALTH_GATE,),
    },
}
NODELESS_PHASES = frozenset({(Role.WORKER, "batch")})  # steps there run once, on no node: http checks only

# why a built-in step must come after the one before it (the message of a refused order)
_AFTER = {
    Action.UPGRADE_KUBEADM: "the snapshot is taken before anything on the control plane changes",
    Action.KUBEADM_UPGRADE_APPLY: "kubeadm upgrade apply runs the kubeadm that upgrade-kubeadm installs",
    Action.KUBEADM_UPGRADE_NODE: "kubeadm upgrade node runs the kubeadm that upgrade-kubeadm installs",
    Action.HEALTH_GATE: "the gate checks what the steps before it changed",
    Action.DRAIN: "the kubelet moves only after kubeadm moved the node's configuration",
    Action.UPGRADE_KUBELET: "a kubelet is upgraded only on a drained node",
    Action.UNCORDON: "the node is uncordoned only once its kubelet is back at the new version",
}


@dataclass(frozen=True, slots=True)
class PlaybookStep:
    """One step of a phase. ``args`` is a custom step's ``with:`` (validated, defaults filled in, still
    with placeholders); built-in steps have none. ``manager``: run only on nodes of that package manager."""

    name: str
    action: Action
    args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    manager: str | None = None
    line: int | None = None
    number: int = 0  # 1-based, counted through the file's phases (messages say "step N")

    @property
    def custom(self) -> bool:
        return self.action in CUSTOM


@dataclass(frozen=True, slots=True)
class Playbook:
    role: Role
    source: str  # the file, as messages and `playbook show` name it
    phases: Mapping[str, tuple[PlaybookStep, ...]] = field(hash=False)
    description: str = ""


@dataclass(frozen=True, slots=True)
class Playbooks:
    """The effective playbook of every role."""

    by_role: Mapping[Role, Playbook] = field(hash=False)

    def phase(self, role: Role, name: str) -> tuple[PlaybookStep, ...]:
        return self.by_role[role].phases[name]

    @property
    def customised(self) -> bool:
        return any(s.custom for p in self.by_role.values() for steps in p.phases.values() for s in steps)


def default_playbook(role: Role) -> Playbook:
    """The role's built-in steps alone: what the shipped files say (a test holds them to it)."""
    phases = {name: tuple(PlaybookStep(str(a), a) for a in actions) for name, actions in BUILT_IN[role].items()}
    return Playbook(role, f"(built in: {role})", phases)


DEFAULT_PLAYBOOKS = Playbooks({role: default_playbook(role) for role in Role})


def parse_playbook(doc: Any, *, file: str, role: Role) -> Playbook:
    """The playbook of ``role`` from a parsed document (services/yaml_docs.load_yaml); PlaybookError
    naming the file, the step and the field at the first problem."""
    where = Where(file)
    top = Fields.of(where, doc, "a playbook")
    found = top.choice("role", [str(r) for r in Role])
    if found != role:
        refuse(where, "role", f"this file holds the {role} playbook (its name says so), not {found!r}")
    description = top.string("description", required=False, default="") or ""
    phases_doc = top.raw("phases")
    top.done()
    if not isinstance(phases_doc, Mapping):
        refuse(where, "phases", ("is required" if phases_doc is None else f"expected a mapping, got "
               f"{type_name(phases_doc)}") + f" (the {role} playbook's phases: {', '.join(BUILT_IN[role])})")
    phases = Fields.of(where, phases_doc, "phases: one list of steps per phase")
    names: set[str] = set()
    counter = [0]
    result: dict[str, tuple[PlaybookStep, ...]] = {}
    for phase in BUILT_IN[role]:
        if not phases.has(phase):
            refuse(where, f"phases.{phase}", f"is required (the {role} playbook's phases: {', '.join(BUILT_IN[role])})")
        result[phase] = _phase(where, role, phase, phases.raw(phase), names, counter)
    phases.done()
    return Playbook(role, file, result, description)


def _phase(where: Where, role: Role, phase: str, value: Any, names: set[str], counter: list[int]
           ) -> tuple[PlaybookStep, ...]:
    if not isinstance(value, list) or not value:
        refuse(where, f"phases.{phase}", f"expected a list of steps, got {type_name(value)}")
    steps = []
    for item in value:
        counter[0] += 1
        steps.append(_step(where, role, phase, item, counter[0], names))
    _check_order(where, role, phase, steps)
    return tuple(steps)


def _step(where: Where, role: Role, phase: str, item: Any, number: int, names: set[str]) -> PlaybookStep:
    line = item.get(LINE_KEY) if isinstance(item, dict) else None
    raw_name = item.get("name") if isinstance(item, dict) else None
    at = where.at_step(number, raw_name if isinstance(raw_name, str) else None, line)
    fields = Fields.of(at, item, "a step")
    name = fields.string("name")
    assert name is not None
    if not _NAME.match(name):
        refuse(at, "name", f"expected lowercase words joined by '-', got {shown(name)}")
    if name in names:
        refuse(at, "name", f"{name!r} names another step of this file already: step names are unique")
    names.add(name)
    action = _action(at, fields.string("action"))
    nodeless = (role, phase) in NODELESS_PHASES
    if action in CUSTOM:
        args = _arguments(at, action, fields.raw("with"), nodeless=nodeless)
        manager = _when(at, fields.raw("when"), nodeless="argv" not in args)
    else:
        if action not in BUILT_IN[role][phase]:
            refuse(at, "action", f"{action} is not a step of the {role} playbook's {phase} phase (its built-in "
                   f"steps: {', '.join(BUILT_IN[role][phase])}; add command or check steps)")
        for extra in ("with", "when"):
            if fields.has(extra):
                refuse(at, extra, f"the built-in step {action} takes no {extra} (only command and check steps do)")
        args, manager = {}, None
    fields.done()
    return PlaybookStep(name, action, args, manager, line, number)


def _action(at: Where, text: str | None) -> Action:
    usable = [str(a) for phases in BUILT_IN.values() for actions in phases.values() for a in actions]
    allowed = sorted(set(usable)) + [str(a) for a in CUSTOM]
    if text not in allowed:
        refuse(at, "action", f"unknown action {shown(text)} (a playbook step is one of: {', '.join(allowed)})")
    return Action(text)


def _arguments(at: Where, action: Action, value: Any, *, nodeless: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        known = "argv, timeout, idempotent" if action is Action.COMMAND else "argv or http, timeout, retries, interval"
        refuse(at, "with", ("is required" if value is None else f"expected a mapping, got {type_name(value)}")
               + f" (the {action} step's arguments: {known})")
    fields = Fields.of(at, value, f"with: the {action} step's arguments")
    args: dict[str, Any] = {}
    if action is Action.COMMAND:
        args["argv"] = _argv(fields)
        args["timeout"] = fields.number("timeout", default=300.0, low=1, high=MAX_TIMEOUT)
        args["idempotent"] = fields.boolean("idempotent", default=True)
    else:
        if fields.has("argv") == fields.has("http"):
            refuse(at, "with", "a check has either argv (a command on the node) or http (a path on the cluster's "
                   "API), exactly one")
        if fields.has("argv"):
            args["argv"] = _argv(fields)
        else:
            args["http"] = _http(fields)
        args["timeout"] = fields.number("timeout", default=30.0, low=1, high=MAX_TIMEOUT)
        args["retries"] = int(fields.number("retries", default=3, low=0, high=1000))
        args["interval"] = fields.number("interval", default=5.0, low=0, high=MAX_TIMEOUT)
    fields.done()
    if nodeless and "argv" in args:
        refuse(at, "argv", "this phase runs once for the batch, on no node: a check here uses http")
    return args


def _argv(fields: Fields) -> list[str]:
    argv = list(fields.strings("argv"))
    for index, item in enumerate(argv):
        if ("{" in item or "}" in item) and item not in PLACEHOLDERS:
            refuse(fields.where, f"argv[{index}]", f"{shown(item)}: a placeholder is a whole argument, one of "
                   f"{', '.join(PLACEHOLDERS)}; nothing else may hold '{{' or '}}'")
    if not argv[0].strip():
        refuse(fields.where, "argv[0]", "the program to run is empty")
    shell = shell_script_problem(argv)
    if shell is not None:
        refuse(fields.where, f"argv[{shell[0]}]", shell[1])
    return argv


def _http(fields: Fields) -> str:
    path = fields.string("http")
    assert path is not None
    problem = api_path_problem(path)
    if problem is not None:
        refuse(fields.where, "http", problem)
    return path


def _when(at: Where, value: Any, *, nodeless: bool) -> str | None:
    if value is None:
        return None
    if nodeless:
        refuse(at, "when", "an http check runs on no node: it has no package manager to choose by")
    fields = Fields.of(at, value, "when: {manager: apt|dnf}")
    manager = fields.choice("manager", MANAGERS)
    fields.done()
    return manager


def _check_order(where: Where, role: Role, phase: str, steps: list[PlaybookStep]) -> None:
    """The phase's built-in steps: each once, all of them, in the engine's order."""
    wanted = BUILT_IN[role][phase]
    seen: list[Action] = []
    for step in steps:
        if step.custom:
            continue
        at = where.at_step(step.number, step.name, step.line)
        if step.action in seen:
            refuse(at, "action", f"{step.action} appears twice in the {phase} phase")
        expected = wanted[len(seen)] if len(seen) < len(wanted) else None
        if step.action != expected:
            before = wanted[len(seen)]  # the first built-in step not yet seen comes earlier in the order
            refuse(at, "action", f"{step.action} needs {before} before it ({_AFTER[step.action]}); the {phase} "
                   f"phase's built-in steps run in this order: {', '.join(wanted)} (add steps between them, "
                   "remove none)")
        seen.append(step.action)
    if len(seen) < len(wanted):
        absent = wanted[len(seen)]
        refuse(where, f"phases.{phase}", f"the built-in step {absent} is missing (the engine cannot run the "
               f"{role} procedure without it; the phase's built-in steps: {', '.join(wanted)})")


def substitute(args: Mapping[str, Any], *, node: str | None, version: Version) -> dict[str, Any]:
    """A custom step's ``with:`` as the plan records it: placeholders replaced as whole arguments, and the
    node it runs on (none for an http check of a batch)."""
    values = {"{node}": node or "", "{version}": str(version), "{minor}": str(version.line)}
    result = dict(args)
    if "argv" in result:
        result["argv"] = [values.get(item, item) for item in result["argv"]]
        result["node"] = node
    return result
