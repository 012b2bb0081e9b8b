"""Bad runbook and playbook input through the real entry point: one line, exit 2, nothing recorded."""

from __future__ import annotations

from pathlib import Path

from tests.cli.conftest import Cli, one_line


def test_bad_ids_a_leaking_http_and_a_missing_dir_are_one_line_exit_2(cli: Cli, added: None, tmp_path: Path) -> None:
    for value in ("²", "99999999999999999999"):
        r = cli("runbook", "run", "rollback-last-upgrade", "--cluster", "prod", "--param", f"run={value}", "--yes")
        assert r.code == 2 and r.out == "", (value, r)
        assert "--param run: expected a run id (a positive number below 2**63)" in one_line(r), r.err
    custom = tmp_path / "mine"
    custom.mkdir()
    (custom / "leak.yaml").write_text("name: leak\ntitle: t\npurpose: p\nwhen_to_use: [x]\nafter: [y]\n"
                                      "steps:\n  - name: s\n    title: S\n    action: check\n"
                                      "    with: {http: '@evil.example/x'}\n")
    r = cli("runbook", "list", "--runbooks", str(custom))  # the listing marks the bad file; show refuses it
    assert r.code == 0 and "invalid: " in r.out and "field with.http: expected a path" in r.out, r.out
    r = cli("runbook", "show", "leak", "--runbooks", str(custom))
    assert r.code == 2 and "leak.yaml:7: step 1 (s): field with.http: expected a path" in one_line(r), r.err
    assert cli("runs", "list", "-o", "json").json() == []
    r = cli("playbook", "validate", str(tmp_path / "missing"))
    assert r.code == 2 and one_line(r) == f"error: DIR {tmp_path / 'missing'}: no such directory\n"
