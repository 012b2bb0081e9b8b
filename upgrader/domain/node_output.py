"""Parsers of what preflight reads from nodes and the apiserver: pure, total, never trusting the input.

- ``kubeadm certs check-expiration``: its two tables (certificates, then certificate authorities), as
  kubeadm prints them with a tabwriter: ``NAME  Mon DD, YYYY HH:MM UTC  RESIDUAL  [CA]  yes|no``;
- ``df -P -k PATH``: POSIX output, 1024-byte blocks, one line per file system;
- ``ls -1 /etc/kubernetes/tmp``: kubeadm's backups (``kubeadm-backup-etcd-...``, ``kubeadm-backup-manifests-...``);
- the Prometheus text format of ``/metrics``, for ``apiserver_requested_deprecated_apis``.

Lines that do not parse are skipped, never guessed: a parser returns what it could read, and the rules
decide what a missing row means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_CERT_ROW = re.compile(
    r"(?P<name>\S+)\s+(?P<mon>[A-Z][a-z]{2}) (?P<day>[0-9]{1,2}), (?P<year>[0-9]{4}) "
    r"(?P<hh>[0-9]{2}):(?P<mm>[0-9]{2}) UTC"
    r"\s+(?P<residual>\S+)(?:\s+(?P<ca>\S+))?\s+(?P<external>yes|no)", re.ASCII)
_DF_ROW = re.compile(r"(?P<fs>\S+)\s+(?P<size>[0-9]+)\s+(?P<used>[0-9]+)\s+(?P<avail>[0-9]+)\s+"
                     r"(?:[0-9]+%|-)\s+(?P<mount>/.*)", re.ASCII)
_METRIC = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+-?[0-9]+)?")
_LABEL = re.compile(r'\s*(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
BACKUP_PREFIX = "kubeadm-backup-"
DEPRECATED_METRIC = "apiserver_requested_deprecated_apis"


@dataclass(frozen=True, slots=True)
class CertExpiry:
    name: str
    expires: datetime
    residual: str  # as kubeadm prints it: 364d, 9y, <invalid>
    authority: bool  # a row of the CERTIFICATE AUTHORITY table


@dataclass(frozen=True, slots=True)
class DfRow:
    filesystem: str
    size: int  # bytes
    available: int  # bytes
    mount: str


@dataclass(frozen=True, slots=True)
class DeprecatedApiRequest:
    group: str
    version: str
    resource: str
    subresource: str
    removed_release: str  # "1.25", or "" when the apiserver did not say


def parse_cert_expiration(text: str) -> tuple[list[CertExpiry], list[str]]:
    """The rows of both tables, and the names kubeadm reported missing (``!MISSING! name``)."""
    rows: list[CertExpiry] = []
    missing: list[str] = []
    authority = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("CERTIFICATE AUTHORITY") and "EXPIRES" in stripped:
            authority = True
            continue
        if stripped.startswith("!MISSING!"):
            missing.append(stripped.removeprefix("!MISSING!").strip())
            continue
        m = _CERT_ROW.fullmatch(stripped)
        if not m or m.group("mon") not in _MONTHS:
            continue
        try:
            expires = datetime(int(m.group("year")), _MONTHS[m.group("mon")], int(m.group("day")),
                               int(m.group("hh")), int(m.group("mm")), tzinfo=UTC)
        except ValueError:  # Feb 31, 25:99
            continue
        rows.append(CertExpiry(m.group("name"), expires, m.group("residual"), authority))
    return rows, missing


def parse_df(text: str) -> list[DfRow]:
    """``df -P -k`` rows, sizes in bytes (the header and anything unreadable are skipped)."""
    rows = []
    for line in text.splitlines():
        m = _DF_ROW.fullmatch(line.strip())
        if m:
            rows.append(DfRow(m.group("fs"), int(m.group("size")) * 1024, int(m.group("avail")) * 1024,
                              m.group("mount")))
    return rows


def kubeadm_backups(ls_output: str) -> list[str]:
    """kubeadm's backup directories among ``ls -1`` lines, sorted (their names end in a timestamp)."""
    return sorted(n.strip() for n in ls_output.splitlines() if n.strip().startswith(BACKUP_PREFIX))


def parse_deprecated_requests(text: str) -> list[DeprecatedApiRequest]:
    """The ``apiserver_requested_deprecated_apis`` series with a non-zero value (one per API requested)."""
    found: dict[tuple[str, str, str, str], DeprecatedApiRequest] = {}
    for line in text.split("\n"):  # the text format's only line break (a label value may hold \r or U+2028)
        if not line.startswith(DEPRECATED_METRIC):
            continue
        m = _METRIC.fullmatch(line.rstrip("\r"))
        if not m or m.group("name") != DEPRECATED_METRIC:
            continue
        try:
            value = float(m.group("value"))
        except ValueError:
            continue
        labels = _labels(m.group("labels") or "")
        if labels is None or not value or value != value:  # zero, NaN or unreadable labels
            continue
        request = DeprecatedApiRequest(labels.get("group", ""), labels.get("version", ""), labels.get("resource", ""),
                                       labels.get("subresource", ""), labels.get("removed_release", ""))
        if request.version and request.resource:
            found[(request.group, request.version, request.resource, request.subresource)] = request
    return [found[k] for k in sorted(found)]


def _labels(text: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m or m.end() == pos:
            return None
        labels[m.group("key")] = _unescape(m.group("value"))
        pos = m.end()
    return labels


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)
