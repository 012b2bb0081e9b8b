"""The input rules runbooks and playbooks share: a check's ``http`` is a path on the cluster's API and
nothing else (read from the file, after a --param is substituted, and again before the request, so the
cluster's credentials never go to another host); a shell's ``-c`` script holds no placeholder; run and
snapshot ids are ASCII digits below 2**63; a runbook's command and check take what a playbook's do."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_playbook_rules import _read, _worker
from tests.unit.test_runbook_schema import FILE, GOOD
from upgrader.cluster.health import HealthReads
from upgrader.domain.documents import api_path_problem, shell_script_problem
from upgrader.domain.plans import REVERSIBILITY, Action, Step
from upgrader.domain.runbook_values import check_value
from upgrader.domain.runbooks import parse_runbook, plan_runbook, resolve_params
from upgrader.domain.versions import Version
from upgrader.engine.custom_steps import run_check
from upgrader.errors import PlaybookError, UsageError
from upgrader.services.playbooks import playbook_dir, validate_dir

LEAKS = ["@evil.example/x", "//evil.example/x", "https://evil.example/", "/x@evil.example", "readyz",
         "/a\\b", "/readyz x", "/readyz\n", "/a/../b", "http://x/readyz", "\t/readyz", "/\x00"]


def _runbook(step: dict[str, Any], params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    doc["steps"] = [step]
    if params is not None:
        doc["params"] = params
    return doc


def _refused(doc: dict[str, Any]) -> str:
    with pytest.raises(PlaybookError) as e:
        parse_runbook(doc, file=FILE, stem="demo")
    assert e.value.exit_code == 2 and "\n" not in e.value.message
    return e.value.message


# -- 1. a check's http: a path on the API, everywhere ----------------------------------------------

@pytest.mark.parametrize("path", LEAKS)
def test_a_runbook_check_whose_http_is_not_a_path_on_the_api_is_refused_on_read(path: str) -> None:
    said = _refused(_runbook({"name": "probe", "title": "P", "action": "check", "with": {"http": path}}))
    assert said.startswith(f"{FILE}: step 1 (probe): field with.http: expected a "), said


@pytest.mark.parametrize("path", LEAKS)
def test_a_playbook_check_applies_the_same_rule(tmp_path: Path, path: str) -> None:
    file = _worker(tmp_path, "    - name: probe\n      action: check\n      with: {http: PLACE}\n")
    file.write_text(file.read_text().replace("PLACE", json.dumps(path)))
    with pytest.raises(PlaybookError, match=r"step 3 \(probe\): field http: expected a "):
        _read(file)


def test_a_param_substituted_into_http_is_held_to_the_rule_before_any_plan_is_made() -> None:
    doc = _runbook({"name": "probe", "title": "P", "action": "check", "with": {"http": "{path}"}},
                   params=[{"name": "path", "kind": "string", "help": "a path", "required": True}])
    rb = parse_runbook(doc, file=FILE, stem="demo")
    good = plan_runbook(rb, resolve_params(rb, {"path": "/livez"}), cluster="prod", version=Version.parse("v1.33.1"))
    assert good.steps[0].params["with"]["http"] == "/livez"
    for path in ("@evil.example/x", "//evil.example/x"):
        with pytest.raises(UsageError, match=r"step probe: field with.http: expected a path") as e:
            plan_runbook(rb, resolve_params(rb, {"path": path}), cluster="prod", version=Version.parse("v1.33.1"))
        assert e.value.exit_code == 2


class _Api:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_path(self, path: str, *, timeout: float) -> tuple[int, str]:
        self.asked.append(path)
        return 200, ""


def _check_step(http: str) -> Step:
    return Step(n=1, action=Action.CHECK, node=None, version=None, batch=None,
                reversibility=REVERSIBILITY[Action.CHECK], params={"name": "probe", "with": {"http": http}})


def test_the_engine_refuses_a_plan_whose_http_is_not_a_path_before_any_request() -> None:
    api = _Api()
    ctx = cast(Any, type("Ctx", (), {"api": api, "stop": threading.Event(), "sleep": lambda self, s: None})())
    for path in ("@evil.example/x", "//evil.example/x", "evil.example"):
        with pytest.raises(PlaybookError, match=r"field with\.http: expected a path"):
            run_check(ctx, _check_step(path))
    assert api.asked == []
    assert run_check(ctx, _check_step("/readyz"))["attempts"][0]["ok"] is True
    assert api.asked == ["/readyz"]


def test_the_api_adapter_sends_nothing_for_a_path_without_exactly_one_leading_slash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reads = HealthReads()
    sent: list[Any] = []
    monkeypatch.setattr(reads, "_call", lambda read: sent.append(read) or (200, ""))
    for path in ("@evil.example/x", "//evil.example/x", "evil.example/x", "/x@evil.example"):
        with pytest.raises(PlaybookError, match=r"nothing was sent"):
            reads.get_path(path, timeout=1)
    assert sent == []
    assert reads.get_path("/livez", timeout=1) == (200, "") and len(sent) == 1


@given(st.text(max_size=40))
def test_an_accepted_path_can_only_name_the_api_server(path: str) -> None:
    if api_path_problem(path) is None:
        assert path.startswith("/") and not path.startswith("//") and "//" not in path
        assert "@" not in path and "\\" not in path and path.isascii() and path.isprintable() and " " not in path


# -- 2. run and snapshot ids ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["run", "snapshot"])
@pytest.mark.parametrize("value", ["²", "١٢", "99999999999999999999", str(2**63), "0", "-1", "1.5", ""])
def test_a_bad_id_is_a_usage_error_never_a_crash(kind: str, value: str) -> None:
    from upgrader.domain.runbook_actions import ArgKind

    with pytest.raises(UsageError, match="a positive number below 2\\*\\*63"):
        check_value(ArgKind(kind), value)
    assert check_value(ArgKind(kind), str(2**63 - 1)) == str(2**63 - 1)


def test_a_param_default_or_literal_id_past_the_ledger_is_refused_on_read() -> None:
    huge = 99999999999999999999
    said = _refused(_runbook({"name": "free", "title": "F", "action": "uncordon-left-by-upgrader"},
                             params=[{"name": "run", "kind": "run", "help": "h", "default": huge}]))
    assert "field default: expected a run id" in said
    said = _refused(_runbook({"name": "free", "title": "F", "action": "uncordon-left-by-upgrader",
                              "with": {"run": huge}}))
    assert "step 1 (free): field with.run: expected a run id" in said
    rb = parse_runbook(GOOD, file=FILE, stem="demo")
    for value in ("²", str(huge)):
        with pytest.raises(UsageError, match="--param run: expected a run id"):
            resolve_params(rb, {"node": "cp-1", "run": value})


# -- 3. no placeholder in a shell's script ---------------------------------------------------------

SHELL_ARGVS = [["sh", "-c", "{what}"], ["/bin/bash", "-c", "echo {node}"], ["bash", "-ec", "x {node}"],
               ["busybox", "sh", "-c", "{node}"], ["zsh", "-o", "pipefail", "-c", "{x}"], ["dash", "-xc", "{y}"]]


@pytest.mark.parametrize("argv", SHELL_ARGVS)
def test_a_shell_script_holding_a_brace_is_found(argv: list[str]) -> None:
    found = shell_script_problem(argv)
    assert found is not None and found[0] == len(argv) - 1


@pytest.mark.parametrize("argv", [["sh", "-c", "echo \"$1\"", "sh", "{node}"], ["sh", "/opt/x.sh", "{node}"],
                                  ["echo", "-c", "{node}"], ["sh", "-c", "uptime"]])
def test_values_passed_as_arguments_of_a_script_are_allowed(argv: list[str]) -> None:
    assert shell_script_problem(argv) is None


def test_a_runbook_command_or_check_splicing_a_param_into_a_shell_is_refused() -> None:
    params = [{"name": "what", "kind": "string", "help": "h", "required": True},
              {"name": "node", "kind": "node", "help": "h", "required": True}]
    for action in ("command", "check"):
        said = _refused(_runbook({"name": "sh", "title": "S", "action": action,
                                  "with": {"node": "{node}", "argv": ["sh", "-c", "{what}"]}}, params=params))
        assert said.startswith(f"{FILE}: step 1 (sh): field with.argv[2]: '{{what}}': the script of `sh -c`"), said


def test_a_playbook_command_splicing_a_placeholder_into_a_shell_is_refused(tmp_path: Path) -> None:
    file = _worker(tmp_path, "    - name: hook\n      action: command\n"
                             "      with: {argv: [/bin/sh, -c, '{node}']}\n")
    with pytest.raises(PlaybookError, match=r"step 3 \(hook\): field argv\[2\]: '\{node\}': the script of `sh -c`"):
        _read(file)


# -- 4. a runbook's command and check read as a playbook's -------------------------------------------

def test_a_runbook_command_takes_idempotent_and_the_plan_carries_it() -> None:
    doc = _runbook({"name": "bump", "title": "B", "action": "command",
                    "with": {"node": "cp-1", "argv": ["bump"], "idempotent": False}})
    rb = parse_runbook(doc, file=FILE, stem="demo")
    plan = plan_runbook(rb, resolve_params(rb, {"node": "cp-1"}), cluster="prod", version=Version.parse("v1.33.1"))
    assert plan.steps[0].params["with"]["idempotent"] is False
    said = _refused(_runbook({"name": "bump", "title": "B", "action": "command",
                              "with": {"node": "cp-1", "argv": ["bump"], "idempotent": "no"}}))
    assert "field with.idempotent: expected true or false" in said


def test_a_runbook_check_with_argv_names_its_node() -> None:
    said = _refused(_runbook({"name": "probe", "title": "P", "action": "check", "with": {"argv": ["true"]}}))
    assert said.startswith(f"{FILE}: step 1 (probe): field with.node: a check with argv runs on a node"), said


@pytest.mark.parametrize(("field", "value"), [("retries", 1001), ("timeout", 0), ("timeout", 86401),
                                              ("interval", 86401), ("retries", -1)])
def test_a_runbook_check_has_the_playbook_bounds(field: str, value: int) -> None:
    said = _refused(_runbook({"name": "probe", "title": "P", "action": "check",
                              "with": {"http": "/readyz", field: value}}))
    assert f"field with.{field}: expected a number from" in said, said


def test_a_runbook_command_timeout_has_the_playbook_bounds() -> None:
    said = _refused(_runbook({"name": "c", "title": "C", "action": "command",
                              "with": {"node": "cp-1", "argv": ["true"], "timeout": 0}}))
    assert "field with.timeout: expected a number from 1 to 86400" in said


# -- 5. validate names DIR ----------------------------------------------------------------------

def test_validate_names_its_positional_dir_and_plan_its_option(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^DIR .*: no such directory$"):
        validate_dir(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match=r"^--playbooks .*: no such directory$"):
        playbook_dir(str(tmp_path / "missing"))
