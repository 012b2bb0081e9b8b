"""Input echoed back in messages: quoted, and cut to a short excerpt.

An error message names the bad value so the operator can find it, but input can be anything: a
200 MB field of an inventory, control characters, a whole file. :func:`excerpt` shows its
``repr`` (so a newline or a NUL is visible as ``\\n``, ``\\x00``) and at most ``limit`` characters
of it, saying how long the whole value was.
"""

from __future__ import annotations

EXCERPT = 60  # characters of a value that a message shows


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said when it is longer."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, (bytes, bytearray)) and len(value) > limit:
        return f"{bytes(value[:limit])!r}... ({len(value)} bytes)"
    shown = repr(value)
    if len(shown) > limit + 2:  # containers and other objects: their repr is already the echo
        return f"{shown[:limit]}... (a {type(value).__name__})"
    return shown
