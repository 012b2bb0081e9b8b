"""Incident runbooks (``playbooks/runbooks/NAME.yaml``): the file's shape, read strictly, and the plan
a runbook run records.

A runbook names its purpose, when to use it, its params, its steps (each a runbook action of
domain/runbook_actions.py, or ``command`` / ``check``) and what to check after. Every refusal names
the file, the step and the field (exit 2). In a step's ``with:``, a value is a literal or exactly
``"{param}"`` (a declared param, or ``{cluster}``): that whole value becomes the param's value; any
other string containing ``{`` is refused, so no value is ever spliced into another.

A runbook run is a plan document of ``kind: runbook``: the runbook's name, the params given, the
file's sha256 and text, and one plan step per runbook step carrying ``params: {name, title, with,
confirm, expect}`` with ``with`` already substituted. Pure: the services read the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upgrader.domain.documents import (
    LINE_KEY,
    Fields,
    Where,
    api_path_problem,
    refuse,
    shell_script_problem,
    shown,
    type_name,
)
from upgrader.domain.plans import REVERSIBILITY, Action, Plan, Step, Strategy
from upgrader.domain.runbook_actions import ACCEPTS, ACTIONS, PARAM_KINDS, ActionSpec, ArgKind, ArgSpec
from upgrader.domain.runbook_values import WHOLE, check_value, parse_params, substitute
from upgrader.domain.versions import Version
from upgrader.errors import UsageError

__all__ = ["CLUSTER_PARAM", "KIND", "NAME", "Param", "Runbook", "RunbookStep", "check_value", "describe_static",
           "is_runbook", "parse_params", "parse_runbook", "plan_runbook", "resolve_params", "runbook_document",
           "substitute"]

KIND = "runbook"  # a plan document's "kind" when it is a runbook run
CLUSTER_PARAM = "cluster"  # always there: the cluster the runbook runs on
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
PARAM_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    help: str
    kind: ArgKind
    required: bool
    default: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "help": self.help, "kind": str(self.kind), "required": self.required,
                "default": self.default}


@dataclass(frozen=True, slots=True)
class RunbookStep:
    name: str
    title: str
    action: str
    with_: Mapping[str, Any]  # as written: literals and whole "{param}" values
    confirm: bool
    expect: str
    line: int | None = None

    @property
    def spec(self) -> ActionSpec:
        return ACTIONS[self.action]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "action": self.action, "with": dict(self.with_),
                "confirm": self.confirm, "expect": self.expect}


@dataclass(frozen=True, slots=True)
class Runbook:
    name: str
    title: str
    purpose: str
    when_to_use: tuple[str, ...]
    params: tuple[Param, ...]
    steps: tuple[RunbookStep, ...]
    after: tuple[str, ...]
    file: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "purpose": self.purpose,
                "when_to_use": list(self.when_to_use), "params": [p.to_dict() for p in self.params],
                "steps": [s.to_dict() for s in self.steps], "after": list(self.after), "file": self.file}


# -- reading ----------------------------------------------------------------------------------------

def parse_runbook(doc: Any, *, file: str, stem: str | None = None) -> Runbook:
    """The runbook in ``doc`` (a tree load_yaml read); PlaybookError (exit 2) naming file, step, field."""
    where = Where(file)
    fields = Fields.of(where, doc, "a runbook")
    name = fields.string("name")
    assert name is not None
    if not NAME.fullmatch(name):
        refuse(where, "name", f"expected lowercase words joined by '-', got {shown(name)}")
    if stem is not None and name != stem:
        refuse(where, "name", f"{name!r} is not the file's name ({stem}.yaml): they must be the same")
    title = fields.string("title") or ""
    if "\n" in title.strip():
        refuse(where, "title", "expected one line")
    purpose = fields.string("purpose") or ""
    when = _texts(fields, "when_to_use")
    params = _params(where, fields.raw("params"))
    steps = _steps(where, fields.raw("steps"), params)
    after = _texts(fields, "after")
    fields.done()
    return Runbook(name, title.strip(), purpose.strip(), when, params, steps, after, file)


def _texts(fields: Fields, name: str) -> tuple[str, ...]:
    value = fields.raw(name)
    if not isinstance(value, list) or not value:
        refuse(fields.where, name, f"expected a non-empty list of strings, got {type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            refuse(fields.where, f"{name}[{index}]", f"expected a non-empty string, got {type_name(item)}")
    return tuple(item.strip() for item in value)


def _params(where: Where, value: Any) -> tuple[Param, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        refuse(where, "params", f"expected a list of params, got {type_name(value)}")
    found: list[Param] = []
    for index, item in enumerate(value):
        line = item.get(LINE_KEY) if isinstance(item, dict) else None
        label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else None
        fields = Fields.of(Where(f"{where.file}{f':{line}' if line else ''}: param {index + 1}"
                                 + (f" ({label})" if label else "")), item, "a param")
        name = fields.string("name")
        assert name is not None
        if not PARAM_NAME.fullmatch(name) or name == CLUSTER_PARAM:
            refuse(fields.where, "name", f"expected [a-z][a-z0-9_]* other than 'cluster', got {shown(name)}")
        if any(p.name == name for p in found):
            refuse(fields.where, "name", f"param {name!r} is declared twice")
        help_ = fields.string("help") or ""
        kind = ArgKind(fields.choice("kind", [str(k) for k in PARAM_KINDS]))
        required = fields.boolean("required", default=False)
        default = fields.raw("default")
        if default is not None:
            if required:
                refuse(fields.where, "default", "a required param has no default")
            if not isinstance(default, str | int) or isinstance(default, bool):
                refuse(fields.where, "default", f"expected a string, got {type_name(default)} {shown(default)}"
                       + (" (quote it: YAML reads 1.30 as the number 1.3)" if isinstance(default, float) else ""))
            default = str(default)
            try:
                check_value(kind, default)
            except UsageError as e:
                refuse(fields.where, "default", e.message)
        fields.done()
        found.append(Param(name, help_.strip(), kind, required, default))
    return tuple(found)


def _steps(where: Where, value: Any, params: Sequence[Param]) -> tuple[RunbookStep, ...]:
    if not isinstance(value, list) or not value:
        refuse(where, "steps", f"expected a non-empty list of steps, got {type_name(value)}")
    kinds = {p.name: p.kind for p in params} | {CLUSTER_PARAM: ArgKind.STRING}
    found: list[RunbookStep] = []
    for index, item in enumerate(value):
        line = item.get(LINE_KEY) if isinstance(item, dict) else None
        raw_name = item.get("name") if isinstance(item, dict) else None
        at = where.at_step(index + 1, raw_name if isinstance(raw_name, str) else None, line)
        fields = Fields.of(at, item, "a step")
        name = fields.string("name")
        assert name is not None
        if not NAME.fullmatch(name):
            refuse(at, "name", f"expected lowercase words joined by '-', got {shown(name)}")
        if any(s.name == name for s in found):
            refuse(at, "name", f"step name {name!r} is used twice")
        title = (fields.string("title") or "").strip()
        action = fields.string("action")
        assert action is not None
        spec = ACTIONS.get(action)
        if spec is None:
            refuse(at, "action", f"unknown action {action!r} (known: {', '.join(sorted(ACTIONS))})")
        with_ = _with(at, fields.raw("with"), spec, kinds)
        confirm = fields.boolean("confirm", default=spec.changes)
        expect = (fields.string("expect", required=False) or "").strip()
        fields.done()
        found.append(RunbookStep(name, title, action, with_, confirm, expect, line))
    return tuple(found)


def _with(at: Where, value: Any, spec: ActionSpec, kinds: Mapping[str, ArgKind]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        refuse(at, "with", f"expected the action's arguments (a mapping), got {type_name(value)}")
    args = {k: v for k, v in value.items() if k != LINE_KEY}
    for key in args:
        if key not in spec.args:
            known = ", ".join(sorted(spec.args)) or "none"
            refuse(at, f"with.{key}", f"{spec.name} takes no argument {key!r} (it takes: {known})")
    for key, arg in spec.args.items():
        if arg.required and key not in args:
            refuse(at, f"with.{key}", f"is required by {spec.name}")
    for group in spec.one_of:
        given = [k for k in group if k in args]
        if len(given) != 1:
            refuse(at, "with", f"{spec.name} takes exactly one of {', '.join(group)}"
                   + (f", got {', '.join(given)}" if given else ""))
    result = {key: _arg(at, f"with.{key}", item, spec.args[key], kinds) for key, item in args.items()}
    if isinstance(result.get("argv"), list):
        shell = shell_script_problem(result["argv"])
        if shell is not None:
            refuse(at, f"with.argv[{shell[0]}]", shell[1])
    if spec.name == "check":
        if "argv" in result and "node" not in result:
            refuse(at, "with.node", "a check with argv runs on a node: name it (node: NAME or \"{param}\")")
        http = result.get("http")
        if isinstance(http, str) and WHOLE.fullmatch(http) is None:
            problem = api_path_problem(http)
            if problem is not None:
                refuse(at, "with.http", problem)
    return result


def _arg(at: Where, name: str, value: Any, arg: ArgSpec, kinds: Mapping[str, ArgKind]) -> Any:
    if isinstance(value, str) and "{" in value:
        return _reference(at, name, value, arg.kind, kinds)
    if isinstance(value, Mapping):  # `- {node}` unquoted: YAML reads a flow mapping
        keys = [k for k in value if k != LINE_KEY]
        if len(keys) == 1 and keys[0] in kinds:
            refuse(at, name, f"YAML read {{{keys[0]}}} as a mapping: quote it, '{{{keys[0]}}}'")
    if arg.kind is ArgKind.STRINGS:
        if isinstance(value, str):
            refuse(at, name, f"expected a list of strings (an argv, one argument each), got the string "
                   f"{shown(value)}: shell strings are never run")
        if not isinstance(value, list) or not value:
            refuse(at, name, f"expected a non-empty list of strings, got {type_name(value)}")
        return [_arg(at, f"{name}[{i}]", v, ArgSpec(ArgKind.STRING, True), kinds) for i, v in enumerate(value)]
    if arg.kind is ArgKind.NUMBER:
        if (isinstance(value, bool) or not isinstance(value, int | float) or value < arg.low
                or (arg.high is not None and value > arg.high)):
            bounds = f"from {arg.low:g} to {arg.high:g}" if arg.high is not None else f"of {arg.low:g} or more"
            refuse(at, name, f"expected a number {bounds}, got {type_name(value)} {shown(value)}")
        return value
    if arg.kind is ArgKind.BOOLEAN:
        if not isinstance(value, bool):
            refuse(at, name, f"expected true or false, got {shown(value)}")
        return value
    if arg.kind in (ArgKind.RUN, ArgKind.SNAPSHOT) and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # checked as the string a --param would give
    if not isinstance(value, str) or not value.strip():
        refuse(at, name, f"expected a non-empty string, got {type_name(value)} {shown(value)}"
               + (" (quote it: YAML reads 1.30 as the number 1.3)" if isinstance(value, float) else ""))
    try:
        check_value(arg.kind, value)
    except UsageError as e:
        refuse(at, name, e.message)
    return value


def _reference(at: Where, name: str, value: str, kind: ArgKind, kinds: Mapping[str, ArgKind]) -> str:
    found = WHOLE.fullmatch(value)
    if found is None:
        refuse(at, name, f"{shown(value)}: a param is a whole value, exactly \"{{param}}\"; nothing is spliced "
               "into a string")
    param = found.group(1)
    if param not in kinds:
        refuse(at, name, f"{{{param}}} is not a declared param (declared: "
               f"{', '.join(sorted(kinds))})")
    if kinds[param] not in ACCEPTS[kind] and kind is not ArgKind.STRING:
        refuse(at, name, f"{{{param}}} is a {kinds[param]}, this argument takes a {kind}")
    return value


# -- params and substitution ------------------------------------------------------------------------

def resolve_params(runbook: Runbook, given: Mapping[str, str]) -> dict[str, str | None]:
    """Every declared param's value: given, else its default, else None (optional). UsageError (exit 2)
    for an unknown param, a missing required one, or a value that cannot be of its kind."""
    for key in given:
        if runbook.param(key) is None:
            known = ", ".join(p.name for p in runbook.params) or "none"
            raise UsageError(f"runbook {runbook.name} has no param {key!r} (its params: {known})")
    values: dict[str, str | None] = {}
    for param in runbook.params:
        value = given.get(param.name, param.default)
        if value is None and param.required:
            raise UsageError(f"runbook {runbook.name} needs --param {param.name}=... ({param.help or param.kind})")
        if value is not None:
            try:
                check_value(param.kind, value)
            except UsageError as e:
                raise UsageError(f"--param {param.name}: {e.message}") from None
        values[param.name] = value
    return values


# -- the plan a runbook run records ---------------------------------------------------------------

def plan_runbook(runbook: Runbook, values: Mapping[str, str | None], *, cluster: str, version: Version,
                 fingerprint: str = "") -> Plan:
    """One plan step per runbook step, in order; ``params`` carries what the handler and the person need."""
    everything = dict(values) | {CLUSTER_PARAM: cluster}
    steps: list[Step] = []
    for step in runbook.steps:
        try:
            action = Action(step.action)
        except ValueError:
            raise UsageError(f"{runbook.file}: step {step.name}: action {step.action!r} has no handler in this "
                             "build of upgrader") from None
        args = substitute(step.with_, everything)
        http = args.get("http")
        if step.action == "check" and http is not None:
            problem = api_path_problem(http)  # a --param substituted into http: the same rule as the file's
            if problem is not None:
                raise UsageError(f"{runbook.file}: step {step.name}: field with.http: {problem}")
        if step.action == "check" and "argv" in args and not args.get("node"):
            raise UsageError(f"{runbook.file}: step {step.name}: field with.node: its param has no value, and a "
                             "check with argv runs on a node: give it with --param")
        node = args.get("node") if isinstance(args.get("node"), str) else None
        steps.append(Step(n=len(steps) + 1, action=action, node=node, version=None, batch=None,
                          reversibility=REVERSIBILITY[action],
                          params={"name": step.name, "title": step.title, "with": args, "confirm": step.confirm,
                                  "expect": step.expect}))
    return Plan(cluster=cluster, source_version=version, target=version, source_fingerprint=fingerprint,
                strategy=Strategy(), skipped_versions=(), hops=(), steps=tuple(steps))


def runbook_document(plan: Plan, runbook: Runbook, values: Mapping[str, str | None], *, sha256: str,
                     text: str) -> dict[str, Any]:
    return plan.to_dict() | {"kind": KIND, "runbook": {"name": runbook.name, "params": dict(values),
                                                       "file": runbook.file, "sha256": sha256, "text": text}}


def is_runbook(document: Mapping[str, Any]) -> bool:
    return document.get("kind") == KIND


def describe_static(step: RunbookStep) -> str:
    """What the step's action does, its arguments as written (for ``runbook show``)."""
    def said(value: Any) -> str:
        found = WHOLE.fullmatch(value) if isinstance(value, str) else None
        return f"<{found.group(1)}>" if found else str(value)

    args = {k: (" ".join(said(x) for x in v) if isinstance(v, list) else said(v)) for k, v in step.with_.items()}
    text = step.spec.describe
    for key in step.spec.args:
        text = text.replace("{" + key + "}", args.get(key, "(default)" if key not in ("argv", "http") else ""))
    return text
