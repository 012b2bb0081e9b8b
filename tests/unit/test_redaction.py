"""The redaction rule: a secret never survives, whatever its characters; everything else is unchanged.

Properties (hypothesis) over every form of upgrader.domain.redaction.SECRETS, as a command-line
argument and inside free text, plus a table of the forms people actually type.
"""

from __future__ import annotations

import json
import shlex
from urllib.parse import quote

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from upgrader.domain.redaction import REDACTED, redact, redact_argv, redact_command_line, redact_value

# Any characters an argument can hold (not NUL; no lone surrogates, which UTF-8 cannot carry).
ARGUMENT_SECRETS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                           min_size=1, max_size=40)
# Free text separates words with whitespace, so a secret written into a message has none; the
# message goes on after a space.
WORD_SECRETS = ARGUMENT_SECRETS.filter(lambda s: not any(c.isspace() for c in s))
TOKEN_SECRETS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-._~+/]{0,59}=*", fullmatch=True)


def libpq_quote(value: str) -> str:
    """How libpq wants a value in a `key=value` connection string."""
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Each form: how the secret is written into one argument, and that argument once redacted.
ARGUMENT_FORMS = {
    "url password": (lambda s: f"postgresql://ops:{s}@db.example:5432/ledger",
                     "postgresql://ops:***@db.example:5432/ledger"),
    "url password after --db=": (lambda s: f"--db=postgresql+psycopg://ops:{s}@10.0.0.5/ledger",
                                 "--db=postgresql+psycopg://ops:***@10.0.0.5/ledger"),
    "url password, other scheme": (lambda s: f"https://deploy:{s}@git.example/ops.git",
                                   "https://deploy:***@git.example/ops.git"),
    "query password": (lambda s: f"postgresql://ops@db/ledger?password={quote(s, safe='')}&sslmode=require",
                       "postgresql://ops@db/ledger?password=***&sslmode=require"),
    "libpq password": (lambda s: f"host=db password={libpq_quote(s)} dbname=ledger",
                       "host=db password=*** dbname=ledger"),
    "--token=": (lambda s: f"--token={s}", "--token=***"),
    "--password=": (lambda s: f"--password={s}", "--password=***"),
}


@pytest.mark.parametrize("form", sorted(ARGUMENT_FORMS))
@given(secret=ARGUMENT_SECRETS)
def test_a_secret_argument_never_survives_and_the_rest_is_kept(form: str, secret: str) -> None:
    write, expected = ARGUMENT_FORMS[form]
    argv = ["--debug", write(secret), "cluster", "list"]
    assert redact_argv(argv) == ["--debug", expected, "cluster", "list"]


@pytest.mark.parametrize("flag", ["--token", "--password"])
@given(secret=ARGUMENT_SECRETS)
def test_the_value_after_a_secret_option_is_hidden_whole(flag: str, secret: str) -> None:
    argv = ["cluster", "add", "prod", flag, secret, "--kubeconfig", "/etc/kubernetes/admin.conf"]
    hidden = redact_argv(argv)
    assert hidden == ["cluster", "add", "prod", flag, REDACTED, "--kubeconfig", "/etc/kubernetes/admin.conf"]
    # The recorded form: joined for the audit trail, then (belt and braces) redacted again as a line.
    line = shlex.join(["upgrader", *argv])
    assert redact_command_line(line) == shlex.join(["upgrader", *hidden])


# Each form: the secret written into a message, and that message once redacted.
TEXT_FORMS = {
    "url password": (lambda s: f"postgresql://ops:{s}@db.example/ledger",
                     "postgresql://ops:***@db.example/ledger"),
    "query password": (lambda s: f"postgresql+psycopg://ops@db/ledger?sslmode=require&password={quote(s, safe='')}",
                       "postgresql+psycopg://ops@db/ledger?sslmode=require&password=***"),
    "libpq password": (lambda s: f"host=db password={libpq_quote(s)} user=ops",
                       "host=db password=*** user=ops"),
    "environment": (lambda s: f"PGPASSWORD={s}", "PGPASSWORD=***"),
    "access key": (lambda s: f"AWS_SECRET_ACCESS_KEY={s}", "AWS_SECRET_ACCESS_KEY=***"),
    "token=": (lambda s: f"token={s}", "token=***"),
    "--token X": (lambda s: f"--token {s}", "--token ***"),
    "yaml password": (lambda s: f"password: {s}", "password: ***"),
    # what sticks to the closing quote goes with it
    "json password": (lambda s: f'{{"user": "ops", "password": {json.dumps(s)}}}', '{"user": "ops", "password": ***'),
    "quoted environment": (lambda s: f'PGPASSWORD={json.dumps(s)}', "PGPASSWORD=***"),
}


@pytest.mark.parametrize("form", sorted(TEXT_FORMS))
@given(secret=WORD_SECRETS)
def test_a_secret_in_a_message_never_survives(form: str, secret: str) -> None:
    write, expected = TEXT_FORMS[form]
    # After `--token `, a word starting with '-', '=' or ':' reads as another option or as `token = X`
    # / `token: X`: then the next word is hidden too, which is fine (more is hidden, never less), but
    # not the exact text this test expects.
    assume(not (form == "--token X" and secret[0] in "-=:"))
    message = f"ledger database {write(secret)} refused the connection (is the server running?)"
    assert redact(message) == f"ledger database {expected} refused the connection (is the server running?)"


@given(token=TOKEN_SECRETS)
def test_a_bearer_token_never_survives(token: str) -> None:
    assert redact(f"GET /api/v1/nodes with Authorization: Bearer {token} failed") == (
        "GET /api/v1/nodes with Authorization: Bearer *** failed")


# What upgrader's own arguments look like: none of them is a secret.
WORDS = st.sampled_from(["prod", "staging-2", "CVE-2026-1234:", "kube-proxy", "regression", "(see", "ticket)",
                         "upgrade", "worker-7", "admin@prod", "it's", "50%", "v1.31.13", "#12", "ok,", "done."])
PLAIN_ARGUMENTS = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),  # names
    st.from_regex(r"v?1\.[0-9]{1,2}(\.[0-9]{1,2})?", fullmatch=True),  # versions
    st.from_regex(r"(/[A-Za-z0-9._-]{1,12}){1,5}", fullmatch=True),  # paths
    st.sampled_from(["--kubeconfig", "--context", "--to", "--state", "--catalog", "--skip", "--workers", "-o",
                     "json", "--max-unavailable", "--db", "--debug", "--busy-timeout", "--reason", "skip-level",
                     "postgresql://ops@db.example:5432/ledger", "postgresql+psycopg://db/ledger?sslmode=require",
                     "sqlite:////var/lib/upgrader/ledger.db", "https://10.0.0.1:6443", "ssh://ops@node-1:22",
                     "--context=admin@prod", "kubernetes-admin@kubernetes"]),
    st.lists(WORDS, min_size=1, max_size=8).map(" ".join),  # a --reason
)


@given(argv=st.lists(PLAIN_ARGUMENTS, max_size=12))
def test_arguments_without_secrets_are_unchanged(argv: list[str]) -> None:
    assert redact_argv(argv) == argv
    line = shlex.join(["upgrader", *argv])
    assert redact_command_line(line) == line
    assert redact(line) == line


@given(text=st.text())
def test_redacting_twice_changes_nothing_more(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
    argv = text.split("\x00")
    assert redact_argv(redact_argv(argv)) == redact_argv(argv)


@pytest.mark.parametrize(
    ("typed", "recorded"),
    [
        (["--db", "postgresql://ops:hunter2@db/ledger", "cluster", "list"],
         "upgrader --db 'postgresql://ops:***@db/ledger' cluster list"),
        (["--db", "postgres://ops:p@ss:w/rd@db:5432/ledger", "plan", "prod", "--to", "v1.33"],
         "upgrader --db 'postgres://ops:***@db:5432/ledger' plan prod --to v1.33"),
        (["--db", "postgresql://ops@db/ledger?password=hunter2", "cluster", "list"],
         "upgrader --db 'postgresql://ops@db/ledger?password=***' cluster list"),
        (["--db", "host=db user=ops password='hunter 2' dbname=ledger", "db", "current"],
         "upgrader --db 'host=db user=ops password=*** dbname=ledger' db current"),
        (["--token", "hunter2", "sandbox", "up"], "upgrader --token '***' sandbox up"),
        (["cluster", "skip", "prod", "v1.31.13", "--reason", "moved to https://ops:hunter2@vault.example"],
         "upgrader cluster skip prod v1.31.13 --reason 'moved to https://ops:***@vault.example'"),
    ],
)
def test_what_the_audit_trail_records(typed: list[str], recorded: str) -> None:
    assert shlex.join(["upgrader", *redact_argv(typed)]) == recorded
    assert "hunter" not in recorded


@given(secret=WORD_SECRETS)
def test_a_value_under_a_secret_key_is_hidden_whatever_it_is(secret: str) -> None:
    data = {"cluster": "prod", "password": secret, "api_token": [secret], "nested": {"PGPASSWORD": {"x": secret}}}
    hidden = redact_value(data)
    assert hidden == {"cluster": "prod", "password": REDACTED, "api_token": REDACTED,
                      "nested": {"PGPASSWORD": REDACTED}}
