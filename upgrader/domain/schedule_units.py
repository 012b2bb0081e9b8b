"""How to run ``upgrader schedule tick`` from cron, systemd or Kubernetes: the explainers' texts.

``schedule cron-line``, ``schedule systemd`` and ``schedule cronjob`` print something an operator
pastes into a crontab, a unit directory or ``kubectl apply``. What they print is built here from
plain values, with every argument quoted for the reader that will parse it (the shell under cron,
systemd's own unit syntax, YAML by the caller's dumper), so no input can add a word, a line or a
directive. The decisions each text makes are written into it as comments, for the person who reads it.

Ticks may overlap: the ledger's lease lets one tick act on a cluster and the others report it busy
(exit 7), so nothing here serialises ticks with a host lock. What every runner gets instead is a
ceiling on a tick's life (:data:`MAX_TICK_MINUTES`): a tick leaves off at its window's end by
itself, so one alive a day later is stuck, and its lease thread would keep the cluster locked.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from upgrader.domain.text import excerpt
from upgrader.errors import UsageError

TICK_ARGS = ("schedule", "tick", "-o", "json")
MAX_TICK_MINUTES = 24 * 60  # longer than any window (a window is at most a day): a tick alive longer is stuck
KILL_AFTER_MINUTES = 2  # after SIGTERM (stop like Ctrl-C, resumable), SIGKILL if the tick is still there
EVERY_MINUTES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)  # the divisors of an hour: an even grid
BUSY_EXIT = 7  # another tick holds the cluster: normal when ticks overlap, not a failure

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}|[0-9]{1,10}", re.ASCII)
_SYSTEMD_BARE = re.compile(r"[A-Za-z0-9/._:+,=@-]+", re.ASCII)


def cron_line(
    *, upgrader: str, every_minutes: int = 5, env: Mapping[str, str] = {}, log: str | None = None
) -> str:
    """Crontab lines: comments saying why, ``VAR="value"`` lines for ``env``, then the tick's entry.

    The entry is ``*/N * * * * timeout ... UPGRADER schedule tick -o json [>> LOG 2>&1]``, each word
    quoted for the shell and every ``%`` escaped (cron turns a bare ``%`` into a newline).
    """
    program = _program(upgrader)
    minutes = _every(every_minutes)
    argv = ["timeout", f"--kill-after={KILL_AFTER_MINUTES}m", f"{MAX_TICK_MINUTES}m", program, *TICK_ARGS]
    command = shlex.join(argv)
    if log is not None:
        command += f" >> {shlex.quote(_line_safe(log, what='log file'))} 2>&1"
    lines = [
        f"# upgrader schedule tick every {every_minutes} minute{'s' if every_minutes != 1 else ''}.",
        "# No flock: ticks may overlap, the ledger's lease lets one act on a cluster (the others report it",
        "# busy, exit 7), and a long upgrade of one cluster must not keep the other clusters' windows waiting.",
        "# timeout: a tick leaves off at its window's end by itself; one alive after",
        f"# {MAX_TICK_MINUTES // 60}h is stuck and would keep its cluster locked. SIGTERM stops it like Ctrl-C",
        f"# (the run stays resumable by the next tick), SIGKILL {KILL_AFTER_MINUTES} minutes later if it must.",
    ]
    if log is None:
        lines.append("# Without a log file cron mails each tick's output (its JSON summary) to MAILTO.")
    if env:
        lines.append("# These settings apply to every line below them in this crontab.")
        lines.extend(f"{name}={_cron_env_value(name, value)}" for name, value in sorted(env.items()))
    lines.append(f"{minutes} * * * * {_cron_command(command)}")
    return "\n".join(lines) + "\n"


def systemd_units(
    *, upgrader: str, every_minutes: int = 5, env: Mapping[str, str] = {},
    user: str = "root", env_file: str | None = None,
) -> dict[str, str]:
    """``upgrader-tick.service`` (oneshot, runs one tick) and ``upgrader-tick.timer`` (every N minutes)."""
    program = _program(upgrader)
    _every(every_minutes)
    if not _USER.fullmatch(user):
        raise UsageError(f"invalid user {excerpt(user)}: a user name or a numeric uid")
    environment = [f"Environment={_systemd_quote(f'{name}={value}')}"
                   for name, value in sorted(check_env(env).items())]
    if env_file is not None:
        environment.append(f"EnvironmentFile={_env_file(env_file)}")
    exec_start = " ".join(_systemd_word(word) for word in (program, *TICK_ARGS))
    service = [
        "# One upgrader schedule tick; upgrader-tick.timer starts it.",
        f"# Exit {BUSY_EXIT} (a cluster busy: another tick holds its lease) is normal and counts as success.",
        "# Exit 5 (a cluster was rolled back) and 6 (a cluster needs a person) leave the unit failed, so",
        "# `systemctl --failed`, OnFailure= and the monitoring of failed units see them.",
        "# TimeoutStartSec: a tick leaves off at its window's end by itself; one alive after",
        f"# {MAX_TICK_MINUTES // 60}h is stuck. systemd then stops it with SIGTERM (like Ctrl-C: the run",
        "# stays resumable by the next tick), and with SIGKILL after TimeoutStopSec.",
        "# A timer never starts its service again while it runs: on this host, a tick that drives an",
        "# upgrade holds back the next ticks until it returns (the other clusters' windows wait).",
        "# Environment= is readable by every user (systemctl show): a password in UPGRADER_DB",
        "# belongs in an EnvironmentFile= only root can read.",
        "[Unit]",
        "Description=upgrader schedule tick (upgrades inside maintenance windows)",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        f"User={user}",
        *environment,
        f"ExecStart={exec_start}",
        f"SuccessExitStatus={BUSY_EXIT}",
        f"TimeoutStartSec={MAX_TICK_MINUTES}min",
        f"TimeoutStopSec={KILL_AFTER_MINUTES}min",
    ]
    timer = [
        f"# Starts upgrader-tick.service every {every_minutes} minute{'s' if every_minutes != 1 else ''}.",
        "# OnCalendar keeps ticks on the clock's grid (the minutes cron would use), whatever a tick's length;",
        "# Persistent=true runs one tick at boot when ticks were missed while the host was down;",
        "# RandomizedDelaySec spreads the hosts that share one ledger over a few seconds.",
        "[Unit]",
        "Description=Run upgrader schedule tick every few minutes",
        "",
        "[Timer]",
        f"OnCalendar=*-*-* *:00/{every_minutes}:00",
        "Persistent=true",
        f"RandomizedDelaySec={min(30, every_minutes * 15)}s",
        "AccuracySec=1s",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return {"upgrader-tick.service": "\n".join(service) + "\n", "upgrader-tick.timer": "\n".join(timer) + "\n"}


def _program(path: str) -> str:
    """The upgrader executable: an absolute path (cron's PATH is short; systemd wants one)."""
    return _absolute(path, what="upgrader executable")


def _absolute(path: str, *, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise UsageError(f"the {what} must be an absolute path, not {excerpt(path)}")
    return _line_safe(path, what=what)


def _line_safe(value: str, *, what: str) -> str:
    """``value`` when it holds no control character (a newline would start another crontab line)."""
    if not isinstance(value, str) or not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"invalid {what} {excerpt(value)}: empty or holds a control character")
    return value


def _every(minutes: int) -> str:
    """The crontab minute field for a tick every ``minutes`` minutes."""
    if isinstance(minutes, bool) or minutes not in EVERY_MINUTES:
        raise UsageError(f"invalid interval {excerpt(minutes)}: minutes that divide an hour, one of "
                         + ", ".join(map(str, EVERY_MINUTES)))
    return "0" if minutes == 60 else "*" if minutes == 1 else f"*/{minutes}"


def check_env(env: Mapping[str, str]) -> Mapping[str, str]:
    """``env`` when every name is a variable name and no value holds a control character."""
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise UsageError(f"invalid environment variable name {excerpt(name)}")
        _line_safe(value, what=f"value of {name}")
    return env


def _cron_command(command: str) -> str:
    """``command`` for a crontab entry: cron cuts the line at a bare ``%`` and turns ``\\%`` into ``%``.
    A backslash right before a ``%`` cannot be written (cron keeps ``\\\\`` whole, then cuts at the ``%``)."""
    if "\\%" in command:
        raise UsageError("cron cannot pass a '\\' right before a '%': rename the path")
    return command.replace("%", "\\%")


def _cron_env_value(name: str, value: str) -> str:
    """``value`` quoted for a crontab's ``NAME=value`` line: cron strips one pair of matching outer
    quotes and keeps the rest as it is (no escapes), so the quote must be one the value does not hold."""
    check_env({name: value})
    for quote in ('"', "'"):
        if quote not in value:
            return f"{quote}{value}{quote}"
    raise UsageError(f"the value of {name} holds both quote characters: cron cannot set it (use a wrapper script)")


def _env_file(path: str) -> str:
    """An EnvironmentFile= path: taken whole (no quoting there), so no blanks or quotes; ``%`` doubled."""
    _absolute(path, what="environment file")
    if any(c.isspace() or c in "\"'\\" for c in path):
        raise UsageError(f"invalid environment file {excerpt(path)}: no blanks, quotes or backslashes")
    return path.replace("%", "%%")


def _systemd_word(word: str) -> str:
    """One word of ExecStart=: bare when plain, else double-quoted with C escapes; ``%`` (a specifier)
    doubled. Only the program's path varies here, and systemd substitutes no ``$VAR`` in it."""
    return word if _SYSTEMD_BARE.fullmatch(word) else _systemd_quote(word)


def _systemd_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'
