"""Compatibility versions (KEP-4330) and the points of no return of a plan: pure rules, no I/O.

A two-step hop installs the new kube-apiserver, kube-controller-manager and kube-scheduler with
``--emulated-version`` at the old minor, so the binaries can be swapped back without restoring etcd;
raising the emulation later is the point of no return. Which minors a binary can emulate is read from
its own ``--help`` (:func:`parse_emulation_range`); it is never computed here (DOMAIN.md: the range
changed from "only itself" to n-1 to n-3 with a floor, and may change again).

etcd's minor moves are the other point of no return: etcd refuses a data dir a newer minor wrote, and
a minor upgrade needs every member at a minimum patch first (etcd's upgrade guides; kubeadm does not
check it). Which Kubernetes minors move etcd's minor is a planning fact (the image itself is asked of
the installed kubeadm when the step runs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import total_ordering

from upgrader.domain.plans import Action, Hop, HopKind, NoReturn, NoReturnKind, Step
from upgrader.domain.versions import Minor, Version

# /version carries emulationMajor/emulationMinor from v1.33 (omitempty): a soak is verified there.
EMULATION_REPORTED_FROM = Minor(1, 33)

# The hop into this Kubernetes minor moves etcd from one minor to the next (DOMAIN.md).
ETCD_MINOR_MOVES: dict[Minor, tuple[tuple[int, int], tuple[int, int]]] = {
    Minor(1, 34): ((3, 5), (3, 6)),
    Minor(1, 37): ((3, 6), (3, 7)),
}


@total_ordering
@dataclass(frozen=True, slots=True)
class EtcdVersion:
    """An etcd release as its image tag names it (``3.5.24-0`` is 3.5.24)."""

    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, EtcdVersion):
            return NotImplemented
        return (self.major, self.minor, self.patch) < (other.major, other.minor, other.patch)

    @property
    def line(self) -> tuple[int, int]:
        return self.major, self.minor

    @classmethod
    def from_tag(cls, tag: str) -> EtcdVersion | None:
        """``3.5.24-0``, ``v3.6.5`` or ``3.6.5``; None for anything else (a digest, a custom tag)."""
        m = _ETCD_TAG.fullmatch(tag.strip())
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


_ETCD_TAG = re.compile(r"v?([0-9]{1,4})\.([0-9]{1,4})\.([0-9]{1,6})(?:-[0-9A-Za-z.]{1,20})?", re.ASCII)

# Every member must be at least at this patch before etcd moves to the next minor (etcd-io/website
# upgrade guides: 3.5 -> 3.6 from 3.5.32, 3.6 -> 3.7 from 3.6.11).
ETCD_MINIMUM_PATCH: dict[tuple[tuple[int, int], tuple[int, int]], EtcdVersion] = {
    ((3, 5), (3, 6)): EtcdVersion(3, 5, 32),
    ((3, 6), (3, 7)): EtcdVersion(3, 6, 11),
}


@dataclass(frozen=True, slots=True)
class EmulationRange:
    """The minors a binary can emulate, both ends included, as its ``--help`` states them."""

    low: Minor
    high: Minor

    def __str__(self) -> str:
        return f"{self.low.major}.{self.low.minor}..{self.high.major}.{self.high.minor}"

    def allows(self, minor: Minor) -> bool:
        return self.low <= minor <= self.high


# component-base's flag text: "... Options are:\nkube=1.31..1.31 (default=1.31)" (v1.31) and
# "... Options are: kube=1.31..1.34(default:1.34)" (v1.33 on); pflag indents the continuation lines.
_FLAG = re.compile(r"^\s*--emulated-version\b", re.MULTILINE)
_NEXT_FLAG = re.compile(r"^\s*-{1,2}[A-Za-z]", re.MULTILINE)
_KUBE_RANGE = re.compile(r"(?<![A-Za-z0-9_-])kube=([0-9]{1,3})\.([0-9]{1,4})\.\.([0-9]{1,3})\.([0-9]{1,4})")


def parse_emulation_range(help_text: str) -> EmulationRange | None:
    """The ``kube=A..B`` range of the ``--emulated-version`` flag in a component's ``--help`` output;
    None when the binary has no such flag or its paragraph names no range (nothing is assumed)."""
    start = _FLAG.search(help_text)
    if start is None:
        return None
    rest = help_text[start.end():]
    following = _NEXT_FLAG.search(rest)
    paragraph = " ".join(rest[: following.start() if following else len(rest)].split())
    found = _KUBE_RANGE.search(paragraph)
    if found is None:
        return None
    low = Minor(int(found.group(1)), int(found.group(2)))
    high = Minor(int(found.group(3)), int(found.group(4)))
    return EmulationRange(low, high) if low <= high else None


def why_not_two_step(old: Minor, new: Minor, emulation: EmulationRange | None) -> str | None:
    """Why the hop ``old`` -> ``new`` cannot soak with the new binaries emulating ``old``; None when it can."""
    if new != old.next():
        return f"{old} -> {new} is not a one-minor hop"
    if new < EMULATION_REPORTED_FROM:
        return f"/version reports the emulated version only from {EMULATION_REPORTED_FROM} (no way to verify it)"
    if emulation is None:
        return f"the {new} kube-apiserver's --help names no --emulated-version range"
    if emulation.high != new:
        return f"the --help read for {new} states the range of a {emulation.high} binary ({emulation})"
    if not emulation.allows(old):
        return f"the {new} binaries can emulate only {emulation}, not {old}"
    return None


def etcd_minor_move(new: Minor) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The etcd minors the hop into ``new`` moves between, or None when etcd keeps its minor."""
    return ETCD_MINOR_MOVES.get(new)


def etcd_minimum(current: EtcdVersion, desired: EtcdVersion) -> EtcdVersion | None:
    """The patch every member needs before moving from ``current`` to ``desired`` (one minor up);
    None when the move stays within a minor or no prerequisite is known for it."""
    if desired.line <= current.line:
        return None
    return ETCD_MINIMUM_PATCH.get((current.line, desired.line))


def etcd_blockers(members: Mapping[str, EtcdVersion | None], desired: EtcdVersion) -> list[str]:
    """What stops etcd moving to ``desired``: members below the minimum patch, a skipped minor, or a
    version that cannot be told (an empty list: go ahead)."""
    problems: list[str] = []
    for name, current in sorted(members.items()):
        if current is None:
            problems.append(f"{name}: etcd version unknown (its manifest's image has no version tag)")
            continue
        if desired.line > (current.major, current.minor + 1):
            problems.append(f"{name}: etcd {current} cannot move to {desired} in one step (one minor at a time)")
            continue
        required = etcd_minimum(current, desired)
        if required is not None and current < required:
            problems.append(f"{name}: etcd {current} must first be at {required} or later to move to "
                            f"{desired.major}.{desired.minor}")
    return problems


def points_of_no_return(hops: Iterable[Hop], steps: Iterable[Step], *, source: Version) -> tuple[NoReturn, ...]:
    """The steps after which going back needs the etcd snapshot (writes since it are lost).

    A plain minor hop: its ``kubeadm upgrade apply`` (storage versions may move; etcd's minor too when
    the hop moves it). A two-step hop: its ``finalize-emulated-version`` (the raised emulation, the
    storage versions that follow it, and etcd when the soak held it). Patch hops have none.
    """
    hop_list = list(hops)
    previous: dict[int, Minor] = {}
    line = source.line
    for index, hop in enumerate(hop_list):
        previous[index] = line
        line = hop.minor
    found: list[NoReturn] = []
    for step in steps:
        if step.hop is None or step.action not in (Action.KUBEADM_UPGRADE_APPLY, Action.FINALIZE_EMULATED_VERSION):
            continue
        hop = hop_list[step.hop]
        if hop.kind is not HopKind.UPGRADE or hop.minor == previous[step.hop]:
            continue
        old = previous[step.hop]
        if step.action is Action.FINALIZE_EMULATED_VERSION:
            found.append(NoReturn(NoReturnKind.EMULATED_VERSION_RAISED, step.n, step.hop, hop.version,
                                  f"emulation raised from {old} to {hop.minor}: the binaries can no longer be "
                                  "swapped back"))
        found.append(NoReturn(NoReturnKind.STORAGE_VERSION_MIGRATION, step.n, step.hop, hop.version,
                              f"the apiserver at {hop.minor} may store objects in versions {old} cannot read"))
        moved = etcd_minor_move(hop.minor)
        if moved is not None:
            (a, b), (c, d) = moved
            found.append(NoReturn(NoReturnKind.ETCD_MINOR_UPGRADE, step.n, step.hop, hop.version,
                                  f"etcd {a}.{b} -> {c}.{d}: etcd {a}.{b} will not start on the data dir "
                                  f"{c}.{d} wrote"))
    return tuple(found)
