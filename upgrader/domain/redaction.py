"""Secrets out of everything upgrader records or prints: one table says what a secret looks like.

Every event in the shared ledger keeps the command line that caused it, and error messages and logs
end up in terminals, CI logs and tickets, so a password typed on the command line
(``--db postgresql://ops:PASSWORD@db/ledger``) would otherwise be kept in clear by every event of
every run. Everything on its way out passes through here:

- :func:`redact_argv` for a command line, argument by argument (the audit trail's Actor), and
  :func:`redact_argument` for one argument quoted in a message (a bad ``--db`` value);
- :func:`redact_command_line` for a command line already joined into one string (the audit recorder);
- :func:`redact` for free text (the CLI's one error printer, database names in messages), and
  :func:`redact_value` for every string in a JSON-like value (event data, the structlog processor).

Guarantees (tests/unit/test_redaction.py, with hypothesis): a secret in one of the forms of
:data:`SECRETS` never survives, whatever its characters; text and arguments with none of these forms
come back unchanged; redacting twice changes nothing more. What is hidden is replaced by ``***``;
the rest (user, host, option names) stays, so a message still says where and what.

A new kind of secret is one more row of :data:`SECRETS`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

REDACTED = "***"


@dataclass(frozen=True, slots=True)
class Secret:
    """One form a secret takes in text; the regex group ``secret`` is what gets hidden.

    ``in_argument`` is the same form when it is one whole command-line argument, where the value
    runs to the end of the argument (it may then hold spaces); ``option`` names an option whose
    value is the next argument (``--token X``). Patterns are kept as source and compiled on first
    use (``re`` caches them): compiling them all costs every command ~4 ms of start-up otherwise.
    """

    name: str
    pattern: str
    in_argument: str | None = None
    option: str | None = None
    flags: re.RegexFlag = re.IGNORECASE


def url_password() -> Secret:
    """``scheme://user:PASSWORD@host``, any scheme. The password runs to the last ``@`` of the URL
    (SQLAlchemy stops at the first, so an ``@`` in a password never shows half of it)."""
    # The scheme starts where no scheme character precedes it (not at \b): otherwise a long run of
    # scheme characters with no "://" is retried from each of its letters, quadratic in its length.
    head = r"(?<![a-z0-9+.\-])[a-z][a-z0-9+.\-]*://[^\s:/?#@]*:"
    return Secret("url-password", head + r"(?P<secret>\S*)@", in_argument=head + r"(?P<secret>.*)@",
                  flags=re.IGNORECASE | re.DOTALL)


def keyword(key: str) -> Secret:
    """``KEY=VALUE``: in a URL's query (``?password=X&sslmode=require``, the value ends at ``&``), a
    libpq connection string (``password=X`` or ``password = 'x y'``) or an environment assignment
    (``PGPASSWORD=X``). ``key`` is a regex, matched without regard to case."""
    in_query = r"(?P<query>)(?<=[?&])"  # an empty group, so the value's shape can depend on it
    elsewhere = r"(?<![\w?&])"
    # A quoted value (libpq's 'x y', JSON's "x y") may hold spaces; whatever sticks to its closing
    # quote goes with it. Outside a query the key may be quoted and followed by ':' (JSON, YAML).
    value = r"(?(query)[^&#\s]*|(?:'(?:[^'\\]|\\.)*'\S*|\"(?:[^\"\\]|\\.)*\"\S*|\S*))"
    pattern = rf"(?:{in_query}(?:{key})\s*=|{elsewhere}\"?(?:{key})\"?\s*[=:])\s*(?P<secret>{value})"
    return Secret(f"keyword {key}", pattern)


def option(name: str) -> Secret:
    """A command-line option whose value is a secret: ``--name X`` and ``--name=X``."""
    flag = re.escape(name)
    return Secret(
        f"option {name}",
        rf"(?<![\w-]){flag}(?:=|\s+)(?P<secret>'[^']*'|\"[^\"]*\"|\S+)",
        in_argument=rf"^{flag}=(?P<secret>.*)$",
        option=name,
        flags=re.DOTALL,
    )


def bearer() -> Secret:
    """An HTTP credential: ``Bearer X``, ``Authorization: Basic X``."""
    scheme = r"\b(?:bearer|authorization:\s*basic)"
    return Secret("bearer", scheme + r"\s+(?P<secret>[\w\-.~+/]+=*)")


# What counts as a secret, one form per row. Adding a kind of secret is adding a row.
# The names of secret-holding keys, in KEY=X, "KEY": X, KEY: X and as a mapping's key.
_KEYS = (r"\w*pass(?:word|wd)", r"\w*token", r"\w*secret", r"\w*(?:_|api)key")
SECRET_KEYS = "|".join(f"(?:{k})" for k in (*_KEYS, "authorization"))
SECRETS: tuple[Secret, ...] = (
    url_password(),  # postgresql://ops:PASSWORD@db/ledger, any scheme
    keyword(_KEYS[0]),  # ?password=X&.., libpq password=X, PGPASSWORD=X, "password": "X"
    keyword(_KEYS[1]),  # token=X, access_token=X, GITHUB_TOKEN=X
    keyword(_KEYS[2]),  # secret=X, client_secret=X
    keyword(_KEYS[3]),  # api_key=X, apikey=X, AWS_SECRET_ACCESS_KEY=X
    option("--password"),  # --password X, --password=X
    option("--token"),  # --token X, --token=X
    bearer(),  # Authorization: Bearer X
)

_OPTIONS = frozenset(s.option for s in SECRETS if s.option is not None)


def redact(text: str) -> str:
    """``text`` with every secret of :data:`SECRETS` replaced by ``***``."""
    for secret in SECRETS:
        text = _hide(re.compile(secret.pattern, secret.flags), text)
    return text


def redact_value(value: object) -> object:
    """A JSON-like value (an event's data, a log event) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):  # {"password": "x"}: the key says the value is a secret, whatever it is
        return {key: REDACTED if _secret_key(key) else redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def _secret_key(key: object) -> bool:
    """Whether a mapping key (an event's data, a log line's field) names a secret, as the
    :data:`SECRETS` keywords do: ``password``, ``PGPASSWORD``, ``token``, ``client_secret``, ``api_key``."""
    return isinstance(key, str) and re.fullmatch(SECRET_KEYS, key, re.IGNORECASE) is not None


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with its secrets hidden, argument by argument: the value after a secret option
    (``--token X``) is hidden whole, and so is a secret that is a whole argument, spaces and all."""
    out: list[str] = []
    value_follows = False
    for arg in argv:
        if value_follows:
            out.append(REDACTED)
            value_follows = False
            continue
        value_follows = arg in _OPTIONS
        out.append(redact_argument(arg))
    return out


def redact_command_line(line: str) -> str:
    """A command line joined with :func:`shlex.join`, with its secrets hidden; unchanged when it
    holds none. A line shlex cannot split is redacted as free text."""
    try:
        argv = shlex.split(line)
    except ValueError:
        return redact(line)
    hidden = redact_argv(argv)
    return line if hidden == argv else shlex.join(hidden)


def redact_argument(arg: str) -> str:
    """One command-line argument (a ``--db`` value, say) with its secrets hidden, spaces and all."""
    for secret in SECRETS:
        if secret.in_argument is not None:
            arg = _hide(re.compile(secret.in_argument, secret.flags), arg)
    return redact(arg)


def _hide(pattern: re.Pattern[str], text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        start, end = match.span("secret")
        if start == end:  # `password=` with nothing after it hides nothing
            return match.group(0)
        base = match.start()
        whole = match.group(0)
        return whole[: start - base] + REDACTED + whole[end - base :]

    return pattern.sub(replace, text)
