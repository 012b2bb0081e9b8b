"""`upgrader runbook list|show|run` through the real entry point: one JSON document, bad names and
params refused in one line (exit 2), no hanging without a terminal, nothing recorded on refusal."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli, one_line

SHIPPED = {"rollback-last-upgrade", "restore-etcd-from-snapshot", "renew-certificates",
           "uncordon-nodes-left-by-upgrader", "kubeadm-upgrade-interrupted"}


def test_list_and_show_render_for_people_and_for_automation(cli: Cli) -> None:
    listed = cli("runbook", "list", "-o", "json")
    assert listed.code == 0 and {r["name"] for r in listed.json()["runbooks"]} >= SHIPPED
    shown = cli("runbook", "show", "rollback-last-upgrade", "-o", "json")
    doc = shown.json()
    assert shown.code == 0 and doc["purpose"] and doc["when_to_use"] and doc["after"]
    assert [s["action"] for s in doc["steps"]][:2] == ["observe-cluster", "rollback-upgrade"]
    assert doc["steps"][1]["confirm"] is True and doc["steps"][1]["does"].startswith("roll the cluster back")
    text = cli("runbook", "show", "uncordon-nodes-left-by-upgrader")
    for part in ("PURPOSE", "WHEN TO USE", "PARAMS", "STEPS", "AFTER, CHECK", "asks before it runs"):
        assert part in text.out, part


def test_help_teaches_with_examples(cli: Cli) -> None:
    r = cli("runbook", "run", "--help")
    assert r.code == 0 and "upgrader runbook run rollback-last-upgrade --cluster prod" in r.out
    assert "--dry-run" in r.out and "--yes" in r.out and "--param" in r.out


def test_bad_names_params_and_files_are_one_line_exit_2(cli: Cli, added: None, tmp_path: Path) -> None:
    for args, said in (
            (("runbook", "show", "nope"), "no runbook 'nope'"),
            (("runbook", "show", "Bad_Name"), "invalid runbook name"),
            (("runbook", "run", "nope", "--cluster", "prod", "--yes"), "no runbook 'nope'"),
            (("runbook", "run", "rollback-last-upgrade", "--cluster", "prod", "--param", "colour=red", "--yes"),
             "has no param 'colour'"),
            (("runbook", "run", "rollback-last-upgrade", "--cluster", "prod", "--param", "run", "--yes"),
             "expected NAME=VALUE"),
            (("runbook", "run", "rollback-last-upgrade", "--cluster", "prod", "--param", "run=last", "--yes"),
             "--param run: expected a run id")):
        r = cli(*args)
        assert r.code == 2 and r.out == "", (args, r)
        assert said in one_line(r), (args, r.err)
    custom = tmp_path / "mine"
    custom.mkdir()
    (custom / "broken.yaml").write_text("name: broken\ntitle: t\npurpose: p\nwhen_to_use: [x]\nafter: [y]\n"
                                        "steps:\n  - name: s\n    title: S\n    action: command\n"
                                        "    with: {node: cp-1, argv: 'rm -rf /'}\n")
    said = "broken.yaml:7: step 1 (s): field with.argv: expected a list of strings"
    r = cli("runbook", "list", "--runbooks", str(custom))  # the bad file is a row; the good ones are listed
    broken = next(line for line in r.out.splitlines() if line.startswith("broken "))
    assert r.code == 0 and "invalid: " in broken and said in broken
    assert any(line.startswith("rollback-last-upgrade ") and line.endswith(" ok") for line in r.out.splitlines())
    listed = {x["name"]: x for x in cli("runbook", "list", "--runbooks", str(custom), "-o", "json").json()["runbooks"]}
    assert listed["broken"]["status"] == "invalid" and said in listed["broken"]["error"]
    assert listed["rollback-last-upgrade"]["status"] == "ok" and listed["rollback-last-upgrade"]["error"] is None
    r = cli("runbook", "show", "broken", "--runbooks", str(custom))
    assert r.code == 2 and said in one_line(r)
    assert cli("runs", "list", "-o", "json").json() == []


def test_without_a_terminal_a_run_must_say_yes_and_never_waits(cli: Cli, added: None) -> None:
    r = cli("runbook", "run", "uncordon-nodes-left-by-upgrader", "--cluster", "prod")
    assert r.code == 2 and "there is no terminal to ask on: answer with --yes" in one_line(r)
    assert cli("runs", "list", "-o", "json").json() == []
