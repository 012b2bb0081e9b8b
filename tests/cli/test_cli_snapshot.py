"""`upgrader snapshot` through the real entry point against a throwaway SQLite ledger: the ways a
create is refused before any etcd is reached, and the read-only verbs on an empty ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Cli


@pytest.fixture
def prod(cli: Cli, kubeconfig: Path) -> Cli:
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return cli


def nothing_recorded(cli: Cli, store: Path) -> None:
    listed = cli("snapshot", "list", "--deleted", "-o", "json")
    assert listed.code == 0 and listed.json() == []
    assert not store.exists() or [p for p in store.rglob("*") if p.is_file()] == []


def test_create_against_an_unreachable_api_exits_2_with_one_line(prod: Cli) -> None:
    store = prod.tmp / "store"
    done = prod("snapshot", "create", "prod", "--store", str(store))
    assert done.code == 2
    assert done.err.startswith("error: cluster prod: cannot reach the API at https://127.0.0.1:1")
    assert done.err.count("\n") == 1 and "Traceback" not in done.err
    nothing_recorded(prod, store)


def test_create_with_a_kubeconfig_context_that_is_gone_exits_2(prod: Cli, kubeconfig: Path) -> None:
    # registered with context prod-admin; the kubeconfig was then edited and that context removed
    kubeconfig.write_text(kubeconfig.read_text().replace("- name: prod-admin\n", "- name: renamed\n")
                          .replace("current-context: prod-admin", "current-context: renamed"))
    store = prod.tmp / "store"
    done = prod("snapshot", "create", "prod", "--store", str(store))
    assert done.code == 2 and done.err.count("\n") == 1, done.err
    assert "prod-admin" in done.err and "Traceback" not in done.err
    nothing_recorded(prod, store)


@pytest.mark.parametrize("label", ["Bad Label", "../x", "a" * 64])
def test_create_with_a_bad_label_exits_2(prod: Cli, label: str) -> None:
    done = prod("snapshot", "create", "prod", "--label", label)
    assert done.code == 2 and "invalid snapshot label" in done.err


def test_verbs_on_unknown_snapshots_and_clusters(prod: Cli) -> None:
    for verb in ("show", "verify", "pin", "unpin"):
        done = prod("snapshot", verb, "7")
        assert done.code == 2 and done.err == "error: no snapshot with id 7 (see `upgrader snapshot list`)\n", verb
    assert prod("snapshot", "list", "ghost").code == 2
    assert prod("snapshot", "create", "ghost").code == 2
    assert prod("snapshot", "show", "0").code == 2  # ids start at 1
    done = prod("snapshot", "prune", "prod")
    assert done.code == 2 and "give a retention policy" in done.err
    empty = prod("snapshot", "prune", "prod", "--keep-last", "3", "-o", "json")
    assert empty.code == 0 and empty.json()["deleted"] == [] and empty.json()["kept"] == []


def test_snapshot_help_teaches_the_verbs(cli: Cli) -> None:
    done = cli("snapshot", "--help")
    for verb in ("create", "list", "show", "verify", "prune", "pin", "unpin"):
        assert verb in done.out
    assert "--keep-daily" in cli("snapshot", "prune", "--help").out


def test_prune_and_create_exit_7_while_a_run_holds_the_clusters_lock(prod: Cli) -> None:
    from datetime import UTC, datetime

    from upgrader.ledger import db

    with db.open_ledger(str(prod.db)) as ledger, ledger.unit_of_work() as uow:
        uow.repo.acquire_lock(cluster="prod", holder="apply@ops-2:4242", ttl_seconds=3600, now=datetime.now(UTC))
        uow.commit()
    store = prod.tmp / "store"
    for argv in (("snapshot", "prune", "prod", "--keep-last", "1"), ("snapshot", "create", "prod", "--store",
                                                                     str(store))):
        done = prod(*argv)
        assert done.code == 7, (argv, done.err)
        assert done.err.startswith("error: cluster 'prod' is locked by apply@ops-2:4242") and done.err.count("\n") == 1
    nothing_recorded(prod, store)
