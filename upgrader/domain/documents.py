"""Reading operator-written documents (playbooks, runbooks) strictly: every error names the file, the
step and the field, in one line, and nothing is guessed.

The YAML is parsed outside the domain (services/yaml_docs.py, which refuses duplicate keys and keeps
the line of every step); here a parsed document is a tree of plain JSON values, and :class:`Fields`
reads one mapping of it, field by field, so that the message of every refusal has the same shape:

    playbooks/upgrade/worker.yaml: step 4 (pre-drain-hook): field argv: expected a list of strings, got 'ls -l'
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from upgrader.errors import PlaybookError

PLACEHOLDER_NAMES = ("node", "version", "minor")
LINE_KEY = "__line__"  # the YAML reader sets it on every mapping: the 1-based line the mapping starts on

# A path on the cluster's API (a check's ``http``): one leading "/", then only these characters, so no
# "@" (userinfo), no scheme, no backslash, no whitespace or control character. The API client joins it to
# the server's URL by concatenation: "@evil.example/x" would send the bearer token to evil.example.
_API_PATH = re.compile(r"/[A-Za-z0-9._~/?=&%:,+-]*", re.ASCII)
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"})


def api_path_problem(path: object) -> str | None:
    """Why ``path`` is not a path on the cluster's API (None when it is one); the one rule every
    reader of a check's ``http`` applies, on the file and again once params are substituted."""
    if not isinstance(path, str) or not _API_PATH.fullmatch(path) or "//" in path:
        return ("expected a path on the cluster's API such as /readyz (one leading '/', no '//', '@', scheme, "
                f"backslash or space), got {shown(path)}")
    if "/../" in path.split("?")[0] + "/" or "/./" in path.split("?")[0] + "/":
        return f"expected a path without '.' or '..' segments, got {shown(path)}"
    return None


def shell_script_problem(argv: Sequence[object]) -> tuple[int, str] | None:
    """An argv that runs a shell on a script (``sh -c SCRIPT``, ``busybox sh -c``) whose script holds a
    "{": a placeholder or param there would splice input into a shell string. (index, message) of the
    script, or None. A value passed after the script (``sh -c 'echo "$1"' sh {node}``) is an argument
    of it, never parsed as shell, and stays allowed."""
    items = [str(a) for a in argv]
    start = 1
    if items and posixpath.basename(items[0]) == "busybox" and len(items) > 1:
        start = 2
        program = items[1]
    else:
        program = posixpath.basename(items[0]) if items else ""
    if program not in SHELLS:
        return None
    command_mode = False
    index = start
    while index < len(items):
        item = items[index]
        index += 1
        if item.startswith("--"):
            continue
        if item[:1] in ("-", "+") and len(item) > 1:
            command_mode = command_mode or "c" in item[1:]
            index += item[1:].count("o") + item[1:].count("O")  # -o OPTION, -O SHOPT take the next argument
            continue
        if command_mode and "{" in item:
            index -= 1
            return index, (f"{shown(item)}: the script of `{program} -c` may hold no placeholder or param (nor any "
                           "'{'): pass values as arguments after it (sh -c 'cmd \"$1\"' sh {node}), never spliced "
                           "into a shell string")
        return None
    return None


@dataclass(frozen=True, slots=True)
class Where:
    """Where in which file a value sits: ``file``, then (optionally) the step and its name or line."""

    file: str
    step: int | None = None  # 1-based
    name: str | None = None
    line: int | None = None

    def at_step(self, step: int, name: str | None = None, line: int | None = None) -> Where:
        return Where(self.file, step, name, line)

    def __str__(self) -> str:
        text = self.file + (f":{self.line}" if self.line else "")
        if self.step is not None:
            text += f": step {self.step}" + (f" ({self.name})" if self.name else "")
        return text


def refuse(where: Where, field_name: str | None, message: str) -> NoReturn:
    """Raise the one-line error: ``FILE[:LINE]: step N (NAME): field F: message``."""
    raise PlaybookError(f"{where}: " + (f"field {field_name}: " if field_name else "") + message)


def shown(value: Any, limit: int = 60) -> str:
    """A value as the message shows it, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


@dataclass
class Fields:
    """One mapping of a document, read field by field; :meth:`done` refuses any field not read."""

    where: Where
    doc: Mapping[str, Any]
    read: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, where: Where, value: Any, what: str) -> Fields:
        if not isinstance(value, Mapping):
            refuse(where, None, f"expected {what} (a mapping of fields), got {type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                refuse(where, None, f"field names are strings, got {shown(key)}")
        return cls(where, value, {LINE_KEY})

    @property
    def line(self) -> int | None:
        value = self.doc.get(LINE_KEY)
        return value if isinstance(value, int) else None

    def has(self, name: str) -> bool:
        return name in self.doc

    def raw(self, name: str) -> Any:
        self.read.add(name)
        return self.doc.get(name)

    def string(self, name: str, *, required: bool = True, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                refuse(self.where, name, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            refuse(self.where, name, f"expected a non-empty string, got {type_name(value)} {shown(value)}"
                   + (" (quote it: YAML reads 1.30 as the number 1.3)" if isinstance(value, float) else ""))
        return value

    def number(self, name: str, *, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            refuse(self.where, name, f"expected a number from {low:g} to {high:g}, got {shown(value)}")
        return float(value)

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            refuse(self.where, name, f"expected true or false, got {shown(value)}")
        return value

    def strings(self, name: str, *, required: bool = True) -> tuple[str, ...]:
        """A list of strings; a plain string is refused (an argv is never a shell string)."""
        value = self.raw(name)
        if value is None:
            if required:
                refuse(self.where, name, "is required")
            return ()
        if isinstance(value, str):
            refuse(self.where, name, f"expected a list of strings (an argv, one argument each), got the string "
                   f"{shown(value)}: shell strings are never run")
        if not isinstance(value, Sequence) or not value:
            refuse(self.where, name, f"expected a non-empty list of strings, got {type_name(value)}")
        for index, item in enumerate(value):
            keys = [k for k in item if k != LINE_KEY] if isinstance(item, Mapping) else []
            if len(keys) == 1 and keys[0] in PLACEHOLDER_NAMES:
                placeholder = "{" + str(keys[0]) + "}"
                refuse(self.where, f"{name}[{index}]", f"YAML read {placeholder} as a mapping: quote it, "
                       f"'{placeholder}'")
            if not isinstance(item, str):
                refuse(self.where, f"{name}[{index}]", f"expected a string, got {type_name(item)} {shown(item)}")
        return tuple(value)

    def choice(self, name: str, options: Sequence[str], *, default: str | None = None) -> str:
        value = self.raw(name)
        if value is None and default is not None:
            return default
        if value not in options:
            refuse(self.where, name, f"expected one of {', '.join(options)}, got {shown(value)}")
        return str(value)

    def done(self) -> None:
        """Refuse the fields nobody read: a typo must not be silently ignored."""
        unknown = sorted(k for k in self.doc if k not in self.read)
        if unknown:
            known = ", ".join(sorted(self.read - {LINE_KEY}))
            refuse(self.where, unknown[0], f"unknown field (known here: {known})")
