"""Preflight rules over what the control-plane nodes and the apiserver's /metrics report (pure).

Certificates (``kubeadm certs check-expiration``), free disk (``df``) against the etcd database,
kubeadm's backups piling up under /etc/kubernetes/tmp, the target's images, and deprecated APIs
still requested that the target no longer serves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from upgrader.domain.node_output import CertExpiry, DeprecatedApiRequest
from upgrader.domain.preflight import (
    BACKUPS,
    CERTS,
    DISK,
    IMAGES,
    REMOVED_APIS,
    Check,
    Severity,
    failed,
    names,
    passed,
)
from upgrader.domain.removed_apis import removed_in
from upgrader.domain.versions import Minor
from upgrader.errors import InvalidVersionError

CERT_MIN_DAYS = 30
MAX_KUBEADM_BACKUPS = 3
DISK_FACTOR = 2  # free space wanted: twice the etcd database (kubeadm copies the data dir before an apply)


def certificates(rows: Sequence[CertExpiry], missing: Sequence[str], *, now: datetime, node: str,
                 min_days: int = CERT_MIN_DAYS) -> Check:
    if not rows:
        return failed(CERTS, "CertificatesUnreadable", f"`kubeadm certs check-expiration` on {node} listed no "
                      "certificate")
    soon = sorted((r for r in rows if r.expires - now < timedelta(days=min_days)), key=lambda r: r.expires)
    if soon:
        shown = [f"{r.name} {'expired' if r.expires <= now else 'expires'} {r.expires:%Y-%m-%d}" for r in soon]
        return failed(CERTS, "CertificatesExpiring", f"on {node}, within {min_days} days: {names(shown)}",
                      certificates=[r.name for r in soon])
    first = min(rows, key=lambda r: r.expires)
    note = f"; kubeadm reports missing: {names(missing)}" if missing else ""
    return passed(CERTS, "CertificatesValid", f"on {node}, the first to expire is {first.name} on "
                  f"{first.expires:%Y-%m-%d}{note}")


@dataclass(frozen=True, slots=True)
class DiskFacts:
    """Free bytes where something must fit, and how many bytes must fit there."""

    where: str  # "cp-1:/var/lib/etcd", "snapshot store /var/backups/upgrader"
    available: int | None
    needed: int | None
    error: str | None = None


def disk_space(facts: Sequence[DiskFacts], factor: int = DISK_FACTOR) -> Check:
    """Each place has at least ``factor`` times the etcd database free; unknown sizes fail (say which)."""
    short, unknown = [], []
    for f in facts:
        if f.error or f.available is None or f.needed is None:
            unknown.append(f"{f.where} ({f.error or 'size unknown'})")
        elif f.available < factor * f.needed:
            short.append(f"{f.where} has {_size(f.available)} free, needs {_size(factor * f.needed)}")
    if short:
        return failed(DISK, "DiskSpaceLow", names(short), places=short)
    if unknown:
        return failed(DISK, "DiskSpaceUnknown", f"free space not known: {names(unknown)}", places=unknown)
    return passed(DISK, "DiskSpaceSufficient", f"{len(facts)} place(s) with at least {factor}x the etcd database free")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n:.1f} TiB"


def kubeadm_backups(per_node: Mapping[str, Sequence[str]], limit: int = MAX_KUBEADM_BACKUPS) -> Check:
    piling = {node: len(dirs) for node, dirs in sorted(per_node.items()) if len(dirs) > limit}
    if piling:
        shown = [f"{node} has {n}" for node, n in piling.items()]
        return failed(BACKUPS, "BackupsPilingUp", f"kubeadm backups under /etc/kubernetes/tmp: {names(shown)} (more "
                      f"than {limit}; see `upgrader snapshot prune --kubeadm-backups`)", Severity.WARNING, nodes=piling)
    return passed(BACKUPS, "BackupsFew", f"at most {limit} kubeadm backups per control-plane node", Severity.WARNING)


def images(results: Mapping[str, str | None], *, node: str, quick: bool) -> Check:
    """``results``: version -> None when its images were pulled (or listed, with quick), else the error."""
    severity = Severity.WARNING if quick else Severity.BLOCKING
    verb = "listed" if quick else "pulled"
    bad = {v: e for v, e in results.items() if e is not None}
    if bad:
        shown = [f"{v}: {e}" for v, e in sorted(bad.items())]
        return failed(IMAGES, "ImagesNotPullable", f"on {node}: {names(shown, 3)}", severity, versions=sorted(bad))
    return passed(IMAGES, "ImagesListed" if quick else "ImagesPullable",
                  f"control-plane images of {', '.join(sorted(results)) or 'no version'} {verb} on {node}", severity)


def removed_apis(requests: Iterable[DeprecatedApiRequest], target: Minor) -> Check:
    """Deprecated APIs still requested that are no longer served at ``target`` (or before it)."""
    gone = []
    for r in requests:
        removed = _removed_release(r)
        if removed is not None and removed <= target:
            gv = f"{r.group}/{r.version}" if r.group else r.version
            sub = f"/{r.subresource}" if r.subresource else ""
            gone.append(f"{r.resource}{sub}.{gv} (removed in {removed})")
    if gone:
        return failed(REMOVED_APIS, "RemovedApisRequested", f"still requested, not served at {target}: "
                      f"{names(sorted(gone))}", apis=sorted(gone))
    return passed(REMOVED_APIS, "NoRemovedApisRequested", f"no request to an API removed by {target}")


def _removed_release(r: DeprecatedApiRequest) -> Minor | None:
    try:
        return Minor.parse(r.removed_release) if r.removed_release else removed_in(r.group, r.version, r.resource)
    except InvalidVersionError:
        return removed_in(r.group, r.version, r.resource)
