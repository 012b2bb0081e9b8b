"""Where the ledger lives: flag, then environment, then the XDG data home; bad URLs exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from upgrader import errors
from upgrader.ledger.db import resolve_url
from upgrader.ledger.failures import masked


def test_flag_beats_environment() -> None:
    env = {"UPGRADER_DB": "sqlite:////env/ledger.db", "HOME": "/home/ops"}
    assert resolve_url("sqlite:////flag/ledger.db", env) == "sqlite:////flag/ledger.db"


def test_environment_beats_default() -> None:
    env = {"UPGRADER_DB": "sqlite:////env/ledger.db", "HOME": "/home/ops"}
    assert resolve_url(None, env) == "sqlite:////env/ledger.db"


def test_empty_values_count_as_unset() -> None:
    assert resolve_url("", {"UPGRADER_DB": "", "HOME": "/home/ops"}) == (
        "sqlite:////home/ops/.local/share/upgrader/ledger.db"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HOME": "/home/ops"}, "sqlite:////home/ops/.local/share/upgrader/ledger.db"),
        ({"HOME": "/home/ops", "XDG_DATA_HOME": "/data"}, "sqlite:////data/upgrader/ledger.db"),
        # The XDG spec: a relative XDG_DATA_HOME is invalid and ignored.
        ({"HOME": "/home/ops", "XDG_DATA_HOME": "rel"}, "sqlite:////home/ops/.local/share/upgrader/ledger.db"),
    ],
)
def test_default_is_in_the_xdg_data_home(env: dict[str, str], expected: str) -> None:
    assert resolve_url(None, env) == expected


def test_plain_path_is_a_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_url("/var/tmp/ledger.db", {}) == "sqlite:////var/tmp/ledger.db"
    assert resolve_url("here.db", {}) == f"sqlite:///{tmp_path / 'here.db'}"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ops:pw@db.example:5432/ledger",
        "postgres://ops:pw@db.example:5432/ledger",
        "postgresql+psycopg://ops:pw@db.example:5432/ledger",
    ],
)
def test_postgres_urls_use_psycopg_3(url: str) -> None:
    assert resolve_url(url, {}) == "postgresql+psycopg://ops:pw@db.example:5432/ledger"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://ops:pw@db/ledger", "unsupported database URL scheme 'mysql'"),
        ("postgresql+asyncpg://ops@db/ledger", "unsupported database URL scheme"),
        ("sqlite://", "not an in-memory database"),
        ("sqlite:///:memory:", "not an in-memory database"),
        ("://nothing", "not a database URL"),
    ],
)
def test_bad_urls_are_usage_errors(url: str, fragment: str) -> None:
    with pytest.raises(errors.DatabaseError) as caught:
        resolve_url(url, {})
    assert fragment in caught.value.message
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.message


def test_unparseable_url_does_not_echo_the_password() -> None:
    with pytest.raises(errors.DatabaseError) as caught:
        resolve_url("postgresql://ops:s3cret@db:notaport/ledger", {})
    assert "s3cret" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ops@db:notaport/ledger?password=s3cret",
        "host=db user=ops password=s3cret dbname=ledger",
        "dbname=ledger password='s3 cret'",
    ],
)
def test_bad_urls_never_echo_a_password_in_any_form(url: str) -> None:
    with pytest.raises(errors.DatabaseError) as caught:
        resolve_url(url, {})
    assert "s3" not in caught.value.message and "***" in caught.value.message


def test_a_password_in_the_query_is_masked_where_the_ledger_is_named() -> None:
    url = make_url("postgresql+psycopg://ops@db/ledger?sslmode=require&password=s3cret")
    assert masked(url) == "postgresql+psycopg://ops@db/ledger?password=***&sslmode=require"  # sorted by SQLAlchemy
