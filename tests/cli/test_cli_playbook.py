"""`upgrader playbook show|validate`, `plan --playbooks` and `cluster set --playbooks` through the real entry
point: what they print, their exit codes, and that a bad copy writes nothing."""

from __future__ import annotations

import shutil
import sqlite3

from tests.cli.conftest import inventory_doc, node, one_line
from upgrader.services.playbooks import shipped_upgrade_dir

CHECK = """    - name: dns-ready
      action: check
      with: {argv: [dig, +short, "{node}"], retries: 1}
"""


def _copy(cli, text: str = CHECK, *, role: str = "worker"):
    folder = cli.tmp / "books"
    folder.mkdir(exist_ok=True)
    shipped = (shipped_upgrade_dir() / f"{role}.yaml").read_text()
    (folder / f"{role}.yaml").write_text(shipped.replace("    - name: drain\n", text + "    - name: drain\n"))
    return folder


def test_show_renders_every_role_with_the_managers_exact_commands(cli):
    apt = cli("playbook", "show", "worker")
    assert apt.code == 0, apt.err
    assert "apt-get install -y kubeadm={build}" in apt.out and "apt-mark hold kubeadm" in apt.out
    assert "kubeadm upgrade node" in apt.out and "undo: package-downgrade" in apt.out
    dnf = cli("playbook", "show", "worker", "--manager", "dnf", "-o", "json")
    doc = dnf.json()
    assert list(doc["roles"]) == ["worker"] and doc["manager"] == "dnf"
    kubeadm = doc["roles"]["worker"]["phases"]["node"][0]
    assert kubeadm["runs"][-1] == "dnf install -y kubeadm-{build} --disableexcludes=kubernetes"
    assert doc["roles"]["worker"]["file"] == str(shipped_upgrade_dir() / "worker.yaml")
    everything = cli("playbook", "show", "-o", "json").json()
    assert list(everything["roles"]) == ["first-control-plane", "control-plane", "worker"]
    assert [s["action"] for s in everything["roles"]["first-control-plane"]["phases"]["control-plane"]] == [
        "snapshot", "upgrade-kubeadm", "kubeadm-upgrade-apply", "health-gate"]


def test_show_and_validate_of_a_copy_mark_the_added_step_and_refuse_a_shell_string_in_one_line(cli):
    books = _copy(cli)
    r = cli("playbook", "show", "worker", "--playbooks", str(books))
    assert r.code == 0, r.err
    assert f"from {books / 'worker.yaml'}" in r.out
    assert "+ 3. dns-ready (check; undo: none)" in r.out
    assert "on {node}: dig +short '{node}' until it exits 0: 2 attempt(s)" in r.out
    r = cli("playbook", "validate", str(books), "-o", "json")
    assert r.code == 0, r.err
    assert r.json() == {"valid": True, "directory": str(books), "files": [str(books / "worker.yaml")],
                        "added_steps": {"first-control-plane": [], "control-plane": [], "worker": ["dns-ready"]}}
    shutil.rmtree(books)
    bad = _copy(cli, CHECK.replace('[dig, +short, "{node}"]', '"dig +short $(hostname)"'))
    r = cli("playbook", "validate", str(bad))
    assert r.code == 2
    assert one_line(r) == (f"error: {bad / 'worker.yaml'}:31: step 3 (dns-ready): field argv: expected a list of "
                           "strings (an argv, one argument each), got the string 'dig +short $(hostname)': shell "
                           "strings are never run\n")


def test_validate_refuses_an_unknown_action_and_a_missing_field(cli):
    r = cli("playbook", "validate", str(_copy(cli, "    - name: nuke\n      action: rm-rf\n")))
    assert r.code == 2 and "step 3 (nuke): field action: unknown action 'rm-rf'" in one_line(r)
    shutil.rmtree(cli.tmp / "books")
    probe = "    - name: probe\n      action: check\n      with: {retries: 2}\n"
    r = cli("playbook", "validate", str(_copy(cli, probe)))
    assert r.code == 2 and "step 3 (probe): field with: a check has either argv" in one_line(r)


def _planned_steps(cli) -> int:
    if not cli.db.exists():
        return 0
    with sqlite3.connect(cli.db) as conn:
        return conn.execute("select count(*) from plans").fetchone()[0]


def test_plan_expands_a_copy_given_with_playbooks_or_stored_with_the_cluster(cli, added):
    state = cli.write("inv.json", inventory_doc(node("cp-1", "v1.30.4", cp=True), node("w-1", "v1.30.4"),
                                                node("w-2", "v1.30.4")))
    books = _copy(cli)
    r = cli("plan", "prod", "--to", "v1.31", "--state", str(state), "--playbooks", str(books), "-o", "json")
    assert r.code == 0, r.err
    checks = [s for s in r.json()["steps"] if s["action"] == "check"]
    assert [(s["node"], s["params"]["with"]["argv"]) for s in checks] == [
        ("w-1", ["dig", "+short", "w-1"]), ("w-2", ["dig", "+short", "w-2"])]
    stored = cli("cluster", "set", "prod", "--playbooks", str(books), "-o", "json")
    assert stored.code == 0 and stored.json()["playbooks_dir"] == str(books)
    shown = cli("playbook", "show", "worker", "--cluster", "prod", "-o", "json").json()
    assert shown["roles"]["worker"]["file"] == str(books / "worker.yaml")
    r = cli("plan", "prod", "--to", "v1.31", "--state", str(state))
    assert r.code == 0, r.err
    assert "dns-ready" in r.out
    assert cli("cluster", "set", "prod", "--shipped-playbooks", "-o", "json").json()["playbooks_dir"] is None


def test_a_bad_copy_given_to_plan_or_cluster_set_writes_nothing(cli, added):
    state = cli.write("inv.json", inventory_doc(node("cp-1", "v1.30.4", cp=True), node("w-1", "v1.30.4")))
    bad = _copy(cli, CHECK.replace('"{node}"', '"host={node}"'))
    r = cli("plan", "prod", "--to", "v1.31", "--state", str(state), "--playbooks", str(bad))
    assert r.code == 2 and "field argv[2]: 'host={node}': a placeholder is a whole argument" in one_line(r)
    assert _planned_steps(cli) == 0
    r = cli("cluster", "set", "prod", "--playbooks", str(bad))
    assert r.code == 2 and "worker.yaml" in one_line(r)
    assert cli("cluster", "show", "prod", "-o", "json").json()["playbooks_dir"] is None
    r = cli("cluster", "add", "other", "--kubeconfig", str(cli.tmp / "kubeconfig"), "--playbooks", str(bad))
    assert r.code == 2 and "worker.yaml" in one_line(r)
    with sqlite3.connect(cli.db) as conn:
        assert conn.execute("select name from clusters").fetchall() == [("prod",)]
