"""Kubernetes release versions as values.

Versions are written ``vMAJOR.MINOR.PATCH`` everywhere upgrader prints them; input accepts them
with or without the leading ``v``. A target may also name only a minor (``v1.33``), meaning "the
newest patch of that minor"; that is a :class:`Minor`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from upgrader.domain.text import excerpt
from upgrader.errors import InvalidVersionError

# Whole strings over ASCII digits: "$" would accept a trailing newline, \d the Arabic-Indic U+0661.
_VERSION = re.compile(r"v?(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,4})", re.ASCII)
_MINOR = re.compile(r"v?(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})", re.ASCII)


@total_ordering
@dataclass(frozen=True, slots=True)
class Minor:
    """A minor release line, such as v1.31."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Minor):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def next(self) -> Minor:
        return Minor(self.major, self.minor + 1)

    def minus(self, other: Minor) -> int:
        """How many minors self is ahead of other (negative when behind); majors must agree."""
        if self.major != other.major:
            raise InvalidVersionError(f"cannot compare {self} with {other}: different major versions")
        return self.minor - other.minor

    @classmethod
    def parse(cls, text: str) -> Minor:
        m = _MINOR.fullmatch(text.strip())
        if not m:
            raise InvalidVersionError(f"invalid minor version {excerpt(text)}: expected vMAJOR.MINOR, e.g. v1.31")
        return cls(int(m.group(1)), int(m.group(2)))


@total_ordering
@dataclass(frozen=True, slots=True)
class Version:
    """A released Kubernetes version, such as v1.31.4."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    @property
    def line(self) -> Minor:
        return Minor(self.major, self.minor)

    @property
    def deb(self) -> str:
        """The pkgs.k8s.io Debian package version, e.g. 1.31.4-1.1."""
        return f"{self.major}.{self.minor}.{self.patch}-1.1"

    @property
    def rpm(self) -> str:
        """The pkgs.k8s.io RPM package version-release, e.g. 1.31.4-150500.1.1."""
        return f"{self.major}.{self.minor}.{self.patch}-150500.1.1"

    @classmethod
    def parse(cls, text: str) -> Version:
        if not isinstance(text, str):
            raise InvalidVersionError(f"invalid version {excerpt(text)}: expected a string like v1.31.4")
        m = _VERSION.fullmatch(text.strip())
        if not m:
            raise InvalidVersionError(f"invalid version {excerpt(text)}: expected vMAJOR.MINOR.PATCH, e.g. v1.31.4")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))


def parse_target(text: str) -> Version | Minor:
    """A target as an operator types it: an exact patch (v1.33.2) or a whole minor (v1.33)."""
    stripped = text.strip()
    if _VERSION.fullmatch(stripped):
        return Version.parse(stripped)
    if _MINOR.fullmatch(stripped):
        return Minor.parse(stripped)
    raise InvalidVersionError(
        f"invalid version {excerpt(text)}: expected vMAJOR.MINOR.PATCH (v1.31.4) or vMAJOR.MINOR (v1.31)"
    )
