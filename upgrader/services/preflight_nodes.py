"""Preflight's facts from the control-plane nodes (over each node's transport) and the snapshot store.

Every command is an argv list with a timeout; a node that cannot be reached or a command that fails
becomes a fact ("unknown, because ...") that the pure rules in :mod:`upgrader.domain.host_checks`
judge. Nothing here changes a node: ``kubeadm config images pull`` only fills the runtime's image
cache, the same thing ``kubeadm upgrade apply`` would do first.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from upgrader.domain import host_checks
from upgrader.domain.host_checks import DiskFacts
from upgrader.domain.node_output import kubeadm_backups, parse_cert_expiration, parse_df
from upgrader.domain.preflight import CERTS, IMAGES, Check, Severity, failed, skipped
from upgrader.domain.records import ClusterRecord
from upgrader.domain.redaction import redact
from upgrader.domain.text import excerpt
from upgrader.errors import TransportError
from upgrader.ports import CommandResult, NodeTransport
from upgrader.services.wiring import AppContext

ETCD_DATA = "/var/lib/etcd"
ETCD_DB = "/var/lib/etcd/member/snap/db"
KUBEADM_TMP = "/etc/kubernetes/tmp"
SHORT_TIMEOUT = 30.0
CERTS_TIMEOUT = 60.0
PULL_TIMEOUT = 900.0  # seven images from a registry, on a slow link


@dataclass(frozen=True, slots=True)
class NodeRequest:
    control_planes: Sequence[str]
    db_sizes: Mapping[str, int]  # etcd member name -> db size, from etcd itself (may be empty)
    external_etcd: bool
    versions: Sequence[str]  # control-plane versions whose images must be there
    quick: bool
    now: datetime
    snapshot_dir: Path
    inventory: Mapping[str, Any] | None = None  # the observation just read: node addresses come from it


def node_checks(app: AppContext, cluster: ClusterRecord, request: NodeRequest) -> list[Check]:
    """The certificates, disk, kubeadm-backups and images checks, in that order."""
    transports: dict[str, NodeTransport] = {}
    unreachable: dict[str, str] = {}
    for node in request.control_planes:
        try:
            transports[node] = app.transport(cluster, node, inventory=request.inventory)
        except TransportError as e:
            unreachable[node] = _one_line(e.message)
    disk: list[DiskFacts] = []
    backups: dict[str, list[str]] = {}
    sizes: list[int] = list(request.db_sizes.values())
    for node, transport in transports.items():
        facts, listing = _node_facts(node, transport, request)
        if facts is not None:
            disk.append(facts)
            if facts.needed is not None:
                sizes.append(facts.needed)
        if listing is not None:
            backups[node] = listing
    disk += [DiskFacts(f"{node}:{ETCD_DATA}", None, None, why) for node, why in unreachable.items()]
    disk.append(_store_facts(request.snapshot_dir, max(sizes) if sizes else None))
    return [
        _certificates(transports, request.now),
        host_checks.disk_space(disk),
        host_checks.kubeadm_backups(backups),
        _images(transports, request.versions, quick=request.quick),
    ]


def _run(transport: NodeTransport, argv: list[str], timeout: float) -> CommandResult | str:
    """The result, or why the node could not run it (unreachable)."""
    try:
        return transport.run(argv, timeout)
    except TransportError as e:
        return _one_line(e.message)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in redact(text).splitlines() if line.strip()]
    return excerpt(lines[-1] if lines else "no output", 200).strip("'\"")


def _failure(argv: list[str], result: CommandResult | str) -> str:
    if isinstance(result, str):
        return result
    return f"`{' '.join(argv[:3])}` exited {result.exit_code}: {_one_line(result.stderr or result.stdout)}"


def _node_facts(node: str, transport: NodeTransport, request: NodeRequest) -> tuple[DiskFacts | None, list[str] | None]:
    listing_argv = ["ls", "-1", KUBEADM_TMP]
    listed = _run(transport, listing_argv, SHORT_TIMEOUT)
    listing = kubeadm_backups(listed.stdout) if isinstance(listed, CommandResult) and listed.ok else None
    if isinstance(listed, CommandResult) and not listed.ok and "No such file" in listed.stderr:
        listing = []  # kubeadm makes the directory on its first upgrade
    if request.external_etcd:
        return None, listing
    where = f"{node}:{ETCD_DATA}"
    df_argv = ["df", "-P", "-k", ETCD_DATA]
    df = _run(transport, df_argv, SHORT_TIMEOUT)
    if not isinstance(df, CommandResult) or not df.ok:
        return DiskFacts(where, None, None, _failure(df_argv, df)), listing
    rows = parse_df(df.stdout)
    if not rows:
        return DiskFacts(where, None, None, f"cannot read `df` output: {_one_line(df.stdout)}"), listing
    stat = _run(transport, ["stat", "-c", "%s", ETCD_DB], SHORT_TIMEOUT)
    size: int | None = None
    if isinstance(stat, CommandResult) and stat.ok and stat.stdout.strip().isdigit():
        size = int(stat.stdout.strip())
    size = max(size or 0, request.db_sizes.get(node, 0)) or None
    return DiskFacts(where, rows[-1].available, size, None if size else f"no etcd database at {ETCD_DB}"), listing


def _store_facts(directory: Path, db_size: int | None) -> DiskFacts:
    where = f"snapshot store {directory}"
    probe = directory
    while not probe.exists() and probe != probe.parent:  # the store is made on first use: its nearest parent
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError as e:
        return DiskFacts(where, None, db_size, f"cannot read its free space: {e.strerror or e}")
    return DiskFacts(where, free, db_size, None if db_size else "etcd database size unknown")


def _certificates(transports: Mapping[str, NodeTransport], now: datetime) -> Check:
    argv = ["kubeadm", "certs", "check-expiration"]
    why = "no control-plane node could be reached"
    for node, transport in transports.items():
        result = _run(transport, argv, CERTS_TIMEOUT)
        if isinstance(result, CommandResult) and result.ok:
            rows, missing = parse_cert_expiration(result.stdout)
            return host_checks.certificates(rows, missing, now=now, node=node)
        why = f"{node}: {_failure(argv, result)}"
    return failed(CERTS, "CertificatesUnreadable", why)


def _images(transports: Mapping[str, NodeTransport], versions: Sequence[str], *, quick: bool) -> Check:
    severity = Severity.WARNING if quick else Severity.BLOCKING
    if not versions:
        return skipped(IMAGES, "NoTargetVersion", "there is no plan to the target, so no images to check", severity)
    if not transports:
        return failed(IMAGES, "ImagesNotPullable", "no control-plane node could be reached", severity)
    verb = "list" if quick else "pull"
    timeout = SHORT_TIMEOUT if quick else PULL_TIMEOUT
    why = ""
    for node, transport in transports.items():
        results: dict[str, str | None] = {}
        for version in versions:
            argv = ["kubeadm", "config", "images", verb, "--kubernetes-version", version]
            result = _run(transport, argv, timeout)
            if isinstance(result, str):  # this node is unreachable: try the next
                why = f"{node}: {result}"
                break
            results[version] = None if result.ok else _failure(argv, result)
        else:
            return host_checks.images(results, node=node, quick=quick)
    return failed(IMAGES, "ImagesNotPullable", why, severity)
