"""Ledger commands through the real entry point: explicit PostgreSQL migrations, racing `cluster add`."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_postgres_schema_behind_is_refused_until_db_upgrade(cli, kubeconfig, postgres_url):
    r = cli("--db", postgres_url, "cluster", "list")
    assert r.code == 2 and "upgrader db upgrade" in r.err and "Traceback" not in r.err
    check = cli("--db", postgres_url, "db", "check")
    assert check.code == 2
    assert cli("--db", postgres_url, "db", "upgrade").code == 0
    current = cli("--db", postgres_url, "db", "current", "-o", "json").json()
    assert current["up_to_date"] is True and current["current"] == current["head"]
    assert cli("--db", postgres_url, "db", "check").code == 0
    assert cli("--db", postgres_url, "cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    assert [c["name"] for c in cli("--db", postgres_url, "cluster", "list", "-o", "json").json()] == ["prod"]


def test_password_never_printed_for_unreachable_database(cli):
    r = cli("--db", "postgresql://admin:s3cret@127.0.0.1:1/ledger", "cluster", "list")
    assert r.code == 2 and "s3cret" not in r.err and len(r.err.strip().splitlines()) == 1


def test_bad_database_url(cli):
    r = cli("--db", "mysql://x@y/z", "cluster", "list")
    assert r.code == 2 and "Traceback" not in r.err


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_cluster_adds_race_and_exactly_one_wins(cli, kubeconfig, backend, request):
    url = str(cli.db) if backend == "sqlite" else request.getfixturevalue("postgres_url")
    if backend == "postgres":
        assert cli("--db", url, "db", "upgrade").code == 0
    else:
        assert cli("--db", url, "cluster", "list").code == 0  # create and migrate the file first
    argv = [sys.executable, "-m", "upgrader", "--db", url, "cluster", "add", "prod", "--kubeconfig", str(kubeconfig)]
    procs = [subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "already exists" in loser and "locked" not in loser
    listed = cli("--db", url, "cluster", "list", "-o", "json").json()
    assert [c["name"] for c in listed] == ["prod"]


def test_ledger_commands_do_not_import_the_kubernetes_client(cli, kubeconfig):
    code = (
        "import sys\n"
        "from upgrader.cli import main\n"
        "try:\n"
        f"    main(['cluster', 'add', 'prod', '--kubeconfig', {str(kubeconfig)!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "try:\n"
        "    main(['cluster', 'list'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('kubernetes' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=cli.env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
