"""KEP-4330's ``--emulated-version``: which versions a control-plane binary may emulate, as the real one decides.

The rule lives in k8s.io/component-base (``version``/``compatibility`` ``EffectiveVersion.Validate``) and
changed twice (DOMAIN.md, "Minor-version rollback"): v1.31 binaries accept only their own minor; v1.32
one minor back (n-1); from v1.33 three back (n-3), never below v1.31, where emulation began. Binaries
older than v1.31 have no such flag. The sandbox API server refuses an out-of-range value at start-up with
the real error, and :mod:`upgrader.sandbox.node.tools.component_help` prints the range in the
``--help`` wording each binary has, so a tool that reads the range from ``--help`` reads it here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FIRST = 31  # v1.31: the first minor with --emulated-version
FLOOR = 31  # the lowest emulation version any binary accepts


@dataclass(frozen=True, slots=True)
class EmulationRange:
    """The minors 1.``lowest``..1.``highest`` a binary of minor ``highest`` may emulate."""

    lowest: int
    highest: int

    def allows(self, minor: int) -> bool:
        return self.lowest <= minor <= self.highest


class EmulationError(ValueError):
    """An ``--emulated-version`` the binary refuses; the message is the binary's own."""


def allowed_range(major: int, minor: int) -> EmulationRange | None:
    """The emulation versions a binary v``major``.``minor`` accepts, or None when it has no such flag."""
    if major != 1 or minor < FIRST:
        return None
    if minor == FIRST:
        return EmulationRange(FIRST, FIRST)
    if minor == 32:
        return EmulationRange(31, 32)
    return EmulationRange(max(FLOOR, minor - 3), minor)


_PART = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse(value: str, *, major: int, minor: int) -> int:
    """The emulated minor an ``--emulated-version`` value (``1.33``, ``kube=1.33``) asks a binary
    v``major``.``minor`` for; EmulationError with the binary's message when it would refuse to start."""
    allowed = allowed_range(major, minor)
    if allowed is None:
        raise EmulationError("unknown flag: --emulated-version")
    asked: int | None = None
    for item in (p.strip() for p in value.split(",") if p.strip()):
        component, _, text = item.rpartition("=")
        component = component.strip() or "kube"
        m = _PART.fullmatch(text.strip())
        if m is None:
            raise EmulationError(f'could not parse "{text.strip()}" as version')
        if m.group(3) and int(m.group(3)) != 0:
            raise EmulationError(f"patch version not allowed, got: {component}={text.strip().lstrip('v')}")
        if component != "kube":
            raise EmulationError(f"component not registered: {component}")
        if asked is not None:
            raise EmulationError(f"duplicate version flag, kube=1.{asked} and kube={text.strip().lstrip('v')}")
        if int(m.group(1)) != major or not allowed.allows(int(m.group(2))):
            raise EmulationError(_not_between(int(m.group(1)), int(m.group(2)), major=major, minor=minor))
        asked = int(m.group(2))
    return minor if asked is None else asked


def _not_between(asked_major: int, asked_minor: int, *, major: int, minor: int) -> str:
    """Validate()'s message: the floor prints as major.minor, the binary version with its patch zeroed
    (``WithPatch(0)``), as apimachinery's version.String() prints them."""
    allowed = allowed_range(major, minor)
    assert allowed is not None
    return (f"emulation version {asked_major}.{asked_minor} is not between "
            f"[{major}.{allowed.lowest}, {major}.{minor}.0]")

