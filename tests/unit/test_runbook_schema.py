"""The runbook file, read strictly: every shipped runbook is valid; a bad one is refused naming the
file, the step and the field; params substitute only as whole values."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.runbook_actions import ACTIONS, GENERIC, ArgKind
from upgrader.domain.runbooks import (
    parse_params,
    parse_runbook,
    plan_runbook,
    resolve_params,
    substitute,
)
from upgrader.domain.versions import Version
from upgrader.errors import PlaybookError, UsageError
from upgrader.services import runbooks
from upgrader.services.yaml_docs import load_yaml

FILE = "playbooks/runbooks/demo.yaml"
GOOD: dict[str, Any] = {
    "name": "demo", "title": "A demo", "purpose": "Shows the shape.", "when_to_use": ["always"],
    "params": [{"name": "node", "help": "a node", "kind": "control-plane-node", "required": True},
               {"name": "run", "help": "a run", "kind": "run"}],
    "steps": [{"name": "look", "title": "Look", "action": "observe-cluster"},
              {"name": "free", "title": "Free", "action": "uncordon-left-by-upgrader", "with": {"run": "{run}"}},
              {"name": "ls", "title": "List", "action": "command",
               "with": {"node": "{node}", "argv": ["ls", "-l", "{node}"], "timeout": 30}}],
    "after": ["check it"],
}


def bad(change: Any) -> str:
    doc = copy.deepcopy(GOOD)
    change(doc)
    with pytest.raises(PlaybookError) as e:
        parse_runbook(doc, file=FILE, stem="demo")
    assert e.value.exit_code == 2 and "\n" not in e.value.message
    return e.value.message


def test_every_shipped_runbook_is_valid_and_named_after_its_file() -> None:
    found = {r.runbook.name: r for r in runbooks.catalog()}
    assert {"rollback-last-upgrade", "restore-etcd-from-snapshot", "renew-certificates",
            "uncordon-nodes-left-by-upgrader", "kubeadm-upgrade-interrupted"} <= set(found)
    for name, loaded in found.items():
        assert loaded.path.stem == name and len(loaded.sha256) == 64
        assert loaded.runbook.purpose and loaded.runbook.when_to_use and loaded.runbook.after
        assert all(s.title for s in loaded.runbook.steps), name


def test_a_good_runbook_reads_into_its_parts_with_confirm_defaulting_to_whether_the_action_changes() -> None:
    rb = parse_runbook(GOOD, file=FILE, stem="demo")
    assert [p.kind for p in rb.params] == [ArgKind.CONTROL_PLANE_NODE, ArgKind.RUN]
    assert [(s.name, s.confirm) for s in rb.steps] == [("look", False), ("free", True), ("ls", True)]


@pytest.mark.parametrize(("change", "said"), [
    (lambda d: d["steps"][1].update(action="reboot"), "step 2 (free): field action: unknown action 'reboot'"),
    (lambda d: d["steps"][0].pop("title"), "step 1 (look): field title: is required"),
    (lambda d: d["steps"][2]["with"].update(argv="ls -l /"), "step 3 (ls): field with.argv: expected a list of "
                                                             "strings (an argv, one argument each), got the string"),
    (lambda d: d["steps"][2]["with"].update(argv=["ls", "{node}-x"]), "step 3 (ls): field with.argv[1]: '{node}-x':"
                                                                      " a param is a whole value"),
    (lambda d: d["steps"][1]["with"].update(run="{nope}"), "field with.run: {nope} is not a declared param"),
    (lambda d: d["steps"][1]["with"].update(run="{node}"), "field with.run: {node} is a control-plane-node, this "
                                                           "argument takes a run"),
    (lambda d: d["steps"][1]["with"].update(force=True), "field with.force: uncordon-left-by-upgrader takes no "
                                                         "argument 'force'"),
    (lambda d: d["steps"][2]["with"].pop("argv"), "step 3 (ls): field with.argv: is required by command"),
    (lambda d: d["steps"][2]["with"]["argv"].append({"node": None}), "quote it, '{node}'"),
    (lambda d: d["steps"][1].update(name="look"), "step 2 (look): field name: step name 'look' is used twice"),
    (lambda d: d["steps"][0].update(colour="red"), "step 1 (look): field colour: unknown field"),
    (lambda d: d.update(name="other"), "field name: 'other' is not the file's name (demo.yaml)"),
    (lambda d: d["params"][0].update(kind="host"), "field kind: expected one of node, control-plane-node"),
    (lambda d: d["params"].append({"name": "v", "help": "h", "kind": "version", "default": 1.30}),
     "param 3 (v): field default: expected a string, got a number 1.3 (quote it"),
    (lambda d: d.update(steps=[]), "field steps: expected a non-empty list of steps"),
])
def test_a_bad_runbook_is_refused_naming_file_step_and_field(change: Any, said: str) -> None:
    message = bad(change)
    assert message.startswith(FILE) and said in message, message


def test_the_yaml_reader_refuses_duplicate_keys_with_the_line(tmp_path: Any) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("name: demo\nname: demo\n")
    with pytest.raises(PlaybookError, match=r"demo.yaml:2: duplicate key 'name'"):
        load_yaml(path)


def test_params_resolve_to_given_default_or_nothing_and_refuse_what_cannot_be() -> None:
    rb = parse_runbook(GOOD, file=FILE, stem="demo")
    assert resolve_params(rb, {"node": "cp-1"}) == {"node": "cp-1", "run": None}
    with pytest.raises(UsageError, match="has no param 'colour'"):
        resolve_params(rb, {"node": "cp-1", "colour": "red"})
    with pytest.raises(UsageError, match="needs --param node="):
        resolve_params(rb, {})
    with pytest.raises(UsageError, match="--param run: expected a run id"):
        resolve_params(rb, {"node": "cp-1", "run": "last"})
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_params(["node"])
    with pytest.raises(UsageError, match="given twice"):
        parse_params(["node=a", "node=b"])


def test_the_plan_carries_each_step_substituted_and_leaves_out_arguments_without_a_value() -> None:
    doc = copy.deepcopy(GOOD)
    doc["steps"][2] = {"name": "gate", "title": "Gate", "action": "wait-healthy", "with": {"timeout": 30}}
    rb = parse_runbook(doc, file=FILE, stem="demo")
    plan = plan_runbook(rb, {"node": "cp-1", "run": None}, cluster="prod", version=Version.parse("v1.33.6"))
    assert [str(s.action) for s in plan.steps] == ["observe-cluster", "uncordon-left-by-upgrader", "wait-healthy"]
    assert plan.steps[1].params["with"] == {}  # no run given: every run's marks
    assert plan.steps[1].params["confirm"] is True and plan.steps[2].params == {
        "name": "gate", "title": "Gate", "with": {"timeout": 30}, "confirm": False, "expect": ""}
    full = parse_runbook(GOOD, file=FILE, stem="demo")  # a command's argv: the whole "{node}" only
    assert substitute(full.steps[2].with_, {"node": "cp-1"}) == {"node": "cp-1", "argv": ["ls", "-l", "cp-1"],
                                                                 "timeout": 30}
    assert substitute(full.steps[1].with_, {"run": "7"}) == {"run": "7"}


@given(st.text(alphabet="{}abnode-_ 1", min_size=1, max_size=12))
def test_only_a_whole_declared_param_is_ever_substituted(text: str) -> None:
    doc = copy.deepcopy(GOOD)
    doc["steps"][2]["with"]["argv"] = ["echo", text]
    if "{" not in text and text.strip():
        rb = parse_runbook(doc, file=FILE, stem="demo")
        assert substitute(rb.steps[2].with_, {"node": "cp-1"})["argv"] == ["echo", text]
        return
    if text == "{node}":  # anything else with a brace, or blank, is refused
        rb = parse_runbook(doc, file=FILE, stem="demo")
        assert substitute(rb.steps[2].with_, {"node": "cp-1"})["argv"] == ["echo", "cp-1"]
        return
    with pytest.raises(PlaybookError):
        parse_runbook(doc, file=FILE, stem="demo")


def test_every_generic_action_has_a_handler_and_confirms_exactly_when_it_changes_something() -> None:
    from upgrader.domain.plans import Action
    from upgrader.engine.steps import HANDLERS

    for spec in GENERIC:
        assert Action(spec.name) in HANDLERS and ACTIONS[spec.name] is spec
    assert {s.name for s in GENERIC if s.changes} == {"rollback-upgrade", "restore-snapshot",
                                                       "renew-all-certificates", "uncordon-left-by-upgrader",
                                                       "level-control-plane"}


def test_the_recorded_sha256_is_of_the_text_parsed_the_file_read_once(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib
    from pathlib import Path

    from tests.unit.test_runbook_runs import TWO_ASKS

    (tmp_path / "two-asks.yaml").write_text(TWO_ASKS)
    # a second read would see another file (it changed meanwhile): nothing may read it twice
    monkeypatch.setattr(Path, "read_bytes", lambda self: b"name: changed\n")
    loaded = runbooks.load("two-asks", tmp_path)
    assert loaded.text == TWO_ASKS and loaded.sha256 == hashlib.sha256(TWO_ASKS.encode()).hexdigest()
    assert loaded.runbook.title == "Uncordon twice, asking each time"


def test_the_listing_keeps_the_good_runbooks_and_marks_a_bad_file_with_its_one_line_error(tmp_path: Any) -> None:
    from tests.unit.test_runbook_runs import TWO_ASKS

    (tmp_path / "two-asks.yaml").write_text(TWO_ASKS)
    (tmp_path / "bad.yaml").write_text("name: bad\nname: again\n")
    (tmp_path / "rollback-last-upgrade.yaml").write_text(TWO_ASKS)  # replaces the shipped one, named wrong
    rows = {r.name: r for r in runbooks.listing(tmp_path)}
    assert rows["two-asks"].loaded is not None and rows["two-asks"].error is None
    bad = rows["bad"].error
    assert rows["bad"].loaded is None and bad is not None and "\n" not in bad
    assert bad.startswith(f"{tmp_path}/bad.yaml:2: duplicate key 'name'")
    assert rows["rollback-last-upgrade"].loaded is None and rows["rollback-last-upgrade"].source == str(tmp_path)
    assert rows["renew-certificates"].loaded is not None and rows["renew-certificates"].source == "shipped"
    with pytest.raises(PlaybookError):
        runbooks.catalog(tmp_path)  # the strict reading stays strict
