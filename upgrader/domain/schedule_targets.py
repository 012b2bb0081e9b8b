"""Which version a scheduled tick upgrades to, by the policy's channel, and why in one sentence.

- ``patch``: the newest patch of the current minor that is not skipped, when newer than the current.
- ``minor``: the next minor's newest patch that is not skipped, once that patch has been out for
  ``min_release_age`` (a release whose date is unknown waits); until then the patch rule.
- ``pinned``: the target (a minor means its newest patch that is not skipped), never past it.

The chosen version is never skipped and never at or below the current one; patch never leaves the
current minor and minor never moves more than one minor. The planner still checks the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from upgrader.domain.catalog import Release
from upgrader.domain.schedule_dates import describe_duration, format_age
from upgrader.domain.schedule_policy import Channel, SchedulePolicy
from upgrader.domain.schedule_windows import require_aware
from upgrader.domain.versions import Minor, Version


@dataclass(frozen=True, slots=True)
class Decision:
    """The version to upgrade to (None: nothing to do now) and a short sentence saying why."""

    target: Version | None
    reason: str

    def to_dict(self) -> dict[str, str | None]:
        return {"target": str(self.target) if self.target else None, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class _Facts:
    current: Version
    released: Mapping[Version, datetime | None]  # every listed version, with its date when known
    skip: frozenset[Version]
    why_skipped: Mapping[Version, str]

    def patches(self, minor: Minor) -> list[Version]:
        return sorted(v for v in self.released if v.line == minor)

    def newest(self, minor: Minor) -> Version | None:
        allowed = [v for v in self.patches(minor) if v not in self.skip]
        return allowed[-1] if allowed else None

    def skipped(self, version: Version) -> str:
        why = self.why_skipped.get(version)
        return f"{version} is skipped ({why})" if why else f"{version} is skipped"


def pick_target(policy: SchedulePolicy, current: Version, releases: Sequence[Release], skip: frozenset[Version],
                now: datetime, *, skip_reasons: Mapping[Version, str] | None = None) -> Decision:
    """The version the policy's channel wants now, from the release listing (``now`` is aware)."""
    require_aware(now)
    released: dict[Version, datetime | None] = {}
    for r in releases:
        released[r.version] = released.get(r.version) or r.released
    facts = _Facts(current, released, frozenset(skip), skip_reasons or {})
    if policy.channel is Channel.PINNED:
        assert policy.target is not None  # the policy refuses pinned without a target
        return _pinned(facts, policy.target)
    if policy.channel is Channel.MINOR:
        return _minor(facts, policy.min_release_age, now)
    return _patch(facts)


def _patch(facts: _Facts) -> Decision:
    line = facts.current.line
    newest = facts.newest(line)
    if newest is not None and newest > facts.current:
        return Decision(newest, f"{newest} is the newest patch of {line}")
    newer_skipped = [v for v in facts.patches(line) if v > facts.current and v in facts.skip]
    if newer_skipped:
        return Decision(None, f"{facts.skipped(newer_skipped[-1])}: nothing newer on {line}")
    return Decision(None, f"{facts.current} is the newest patch of {line}")


def _minor(facts: _Facts, min_age: float, now: datetime) -> Decision:
    following = facts.current.line.next()
    candidate = facts.newest(following)
    if candidate is None:
        listed = facts.patches(following)
        wait = (f"{facts.skipped(listed[-1])}: nothing else on {following}" if listed
                else f"no release of {following} is listed")
        return _then_patch(wait, facts)
    released = facts.released[candidate]
    if released is None:
        return _then_patch(f"{candidate} has no known release date; waiting for {format_age(min_age)}", facts)
    age = (now - released).total_seconds()
    if age < min_age:
        shown = describe_duration(max(0.0, age))
        return _then_patch(f"{candidate} is {shown} old; waiting for {format_age(min_age)}", facts)
    return Decision(candidate, f"{candidate} is the newest patch of {following}, out for {describe_duration(age)}")


def _then_patch(wait: str, facts: _Facts) -> Decision:
    patch = _patch(facts)
    return Decision(patch.target, f"{wait}; {patch.reason}")


def _pinned(facts: _Facts, target: Version | Minor) -> Decision:
    minor = target.line if isinstance(target, Version) else target
    if facts.current.line > minor or (isinstance(target, Version) and facts.current > target):
        return Decision(None, f"{facts.current} is already past the pinned target {target}")
    if isinstance(target, Version):
        if target in facts.skip:
            return Decision(None, f"the pinned target {facts.skipped(target)}")
        if facts.current == target:
            return Decision(None, f"at target {target}")
        if target not in facts.released:
            return Decision(None, f"the pinned target {target} is not in the release listing")
        return Decision(target, f"{target} is the pinned target")
    newest = facts.newest(minor)
    if newest is None:
        listed = facts.patches(minor)
        why = f"{facts.skipped(listed[-1])}: nothing else on {minor}" if listed else f"no release of {minor} is listed"
        return Decision(None, f"pinned to {minor}: {why}")
    if facts.current >= newest:
        return Decision(None, f"at target {minor} ({facts.current})")
    return Decision(newest, f"{newest} is the newest patch of the pinned {minor}")


def held_back(rolled_back: Mapping[Version, str], releases: Sequence[Release]) -> dict[Version, str]:
    """The versions a tick must not try again, with why: each target a scheduled run was rolled back
    from, and the older patches of its minor (trying them one by one would roll back night after
    night). A newer patch of that minor, a fix release, is tried when it comes."""
    held: dict[Version, str] = dict(rolled_back)
    for target, why in rolled_back.items():
        for release in releases:
            if release.version.line == target.line and release.version < target:
                held.setdefault(release.version, f"older than {target}, where {why}")
    return held
