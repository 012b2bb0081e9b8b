"""Names operators give things: validated at the edge, as whole ASCII strings, before any path is built.

Every kind of name here ends up in a file path, a ledger key or a command line, so a name is
matched as a whole string (``re.fullmatch``: ``$`` would let a trailing newline through) against
ASCII character classes only (``\\d`` would accept an Arabic-Indic one, U+0661). Nothing is
normalised: ``"prod "`` is refused, not quietly turned into ``"prod"``.

- cluster and sandbox names: a DNS label (lowercase letters, digits and '-', 1 to 63 characters,
  starting with a letter, not ending with '-'), so they are also usable as directory names;
- node names: what Kubernetes accepts for a Node, a DNS subdomain (up to 253 characters of
  lowercase letters, digits, '-' and '.', starting and ending with a letter or digit);
- snapshot labels: what an operator tags a snapshot with (``before-v1.31``, ``pre_maint.2``).
"""

from __future__ import annotations

import re

from upgrader.domain.text import excerpt
from upgrader.errors import InvalidNameError

_NAME = re.compile(r"[a-z][a-z0-9-]{0,62}", re.ASCII)
_NODE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", re.ASCII)
_LABEL = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?", re.ASCII)


def is_name(name: object) -> bool:
    """Whether ``name`` is a valid cluster or sandbox name."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and not name.endswith("-")


def validate_name(name: str, *, what: str = "cluster") -> str:
    """A cluster or sandbox name (``what`` says which, for the message)."""
    if not is_name(name):
        raise InvalidNameError(
            f"invalid {what} name {excerpt(name)}: use lowercase letters, digits and '-', "
            "1 to 63 characters, starting with a letter"
        )
    return name


def is_node_name(name: object) -> bool:
    return isinstance(name, str) and _NODE.fullmatch(name) is not None


def validate_node_name(name: str) -> str:
    if not is_node_name(name):
        raise InvalidNameError(
            f"invalid node name {excerpt(name)}: use lowercase letters, digits, '-' and '.', "
            "1 to 253 characters, starting and ending with a letter or digit"
        )
    return name


def validate_snapshot_label(label: str) -> str:
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise InvalidNameError(
            f"invalid snapshot label {excerpt(label)}: use lowercase letters, digits, '-', '_' and '.', "
            "1 to 63 characters, starting and ending with a letter or digit"
        )
    return label
