"""Fault injection for rehearsals: ``KIND[:NODE][@VERSION]``.

Faults live in ``<sandbox>/faults.json`` so every party sees the same set without talking to the
supervisor: the CLI writes it (``sandbox up --faults``, ``sandbox fault``), the simulated kubelets,
kubeadm and the node transport read it on each decision. ``@v1.31`` means "while running v1.31.x".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from upgrader.domain.text import excerpt
from upgrader.domain.versions import Minor, Version
from upgrader.errors import UsageError

KINDS = {
    # kind: (needs a node, takes a version)
    "kubeadm-apply-fails": (False, True),
    "apiserver-unready": (False, True),
    "node-not-ready": (True, True),
    "drain-blocked": (True, False),
    "node-unreachable": (True, False),
    "etcd-member-down": (True, False),
    # states a real cluster gets into, made once in the node's files (see STATE_KINDS)
    "apiserver-crashloop": (True, False),
    "etcd-member-data-lost": (True, False),
    "kubelet-flag-removed": (True, False),
}
# Faults that are not a condition the simulated parts keep reading but a state made once, as an upgrade
# or a disk would leave it: a manifest with a flag the apiserver refuses, a member's wiped data dir, a
# kubelet flags file with a removed flag. They stay listed in faults.json as what was injected; fixing
# the node's files (as an operator would) is what ends them. Only a running sandbox takes them.
STATE_KINDS = ("apiserver-crashloop", "etcd-member-data-lost", "kubelet-flag-removed")
REQUESTS = "fault-requests"  # one-shot requests to the supervisor's kubelets: <kind>@<node>
_SPEC = re.compile(r"(?P<kind>[a-z-]+)(?::(?P<node>[a-z0-9][a-z0-9-]*))?(?:@(?P<version>v?[0-9.]+))?", re.ASCII)
FILE = "faults.json"


class InvalidFaultError(UsageError):
    """Faults are written KIND[:NODE][@VERSION], e.g. node-not-ready:worker-1@v1.31."""


class FaultBlocksStartError(UsageError):
    """With these faults the sandbox could never become healthy, so `sandbox up` would only time out."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    node: str | None = None
    version: Minor | None = None

    def __str__(self) -> str:
        text = self.kind
        if self.node:
            text += f":{self.node}"
        if self.version:
            text += f"@{self.version}"
        return text

    def applies(self, *, kind: str, node: str | None = None, version: Version | None = None) -> bool:
        """Whether this fault fires for kind on node at version (a fault without node/version is wider)."""
        if kind != self.kind:
            return False
        if self.node is not None and node is not None and node != self.node:
            return False
        return self.version is None or (version is not None and version.line == self.version)


def parse(spec: str, *, nodes: list[str] | None = None) -> Fault:
    m = _SPEC.fullmatch(spec.strip())
    if not m or m.group("kind") not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise InvalidFaultError(f"invalid fault {excerpt(spec)}: expected KIND[:NODE][@VERSION], KIND one of {known}")
    kind, node, version = m.group("kind"), m.group("node"), m.group("version")
    needs_node, takes_version = KINDS[kind]
    if needs_node and not node:
        raise InvalidFaultError(f"invalid fault {excerpt(spec)}: {kind} needs a node ({kind}:NODE)")
    if version and not takes_version:
        raise InvalidFaultError(f"invalid fault {excerpt(spec)}: {kind} takes no version")
    if node and nodes is not None and node not in nodes:
        raise InvalidFaultError(f"invalid fault {excerpt(spec)}: no node {node!r} (nodes: {', '.join(nodes)})")
    minor = _minor(version, spec) if version else None
    return Fault(kind, node, minor)


def _minor(text: str, spec: str) -> Minor:
    parts = text.lstrip("v").split(".")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise InvalidFaultError(f"invalid fault {excerpt(spec)}: version must look like v1.31")
    return Minor(int(parts[0]), int(parts[1]))


def load(sandbox_dir: Path) -> list[Fault]:
    path = Path(sandbox_dir) / FILE
    try:
        specs = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [parse(s) for s in specs]


def save(sandbox_dir: Path, faults: list[Fault]) -> None:
    from upgrader.files import atomic_write

    unique = list(dict.fromkeys(str(f) for f in faults))
    atomic_write(Path(sandbox_dir) / FILE, json.dumps(unique, indent=1).encode())


def active(sandbox_dir: Path, *, kind: str, node: str | None = None, version: Version | None = None) -> bool:
    return any(f.applies(kind=kind, node=node, version=version) for f in load(sandbox_dir))


def request(sandbox_dir: Path, fault: Fault) -> Path:
    """Ask the node's kubelet to make ``fault`` happen once (it removes the request when done)."""
    from upgrader.files import atomic_write

    path = Path(sandbox_dir) / REQUESTS / f"{fault.kind}@{fault.node}"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, b"")
    return path


def take_request(sandbox_dir: Path, *, kind: str, node: str) -> bool:
    """Whether a one-shot request of ``kind`` on ``node`` was waiting (it is consumed)."""
    path = Path(sandbox_dir) / REQUESTS / f"{kind}@{node}"
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Blocker:
    """Faults that together keep a sandbox from ever becoming healthy, and why."""

    faults: tuple[Fault, ...]
    reason: str


def start_blockers(faults: Sequence[Fault], *, control_planes: Sequence[str],
                   versions: Mapping[str, Version]) -> list[Blocker]:
    """What in ``faults`` would keep a sandbox from ever becoming healthy (empty when nothing would).

    ``versions`` is each control-plane node's kube-apiserver version at start. Two kinds can do it:
    ``apiserver-unready`` firing on every control-plane node at the version it starts at (the load
    balancer then has no ready backend, so /readyz never answers 200), and ``etcd-member-down`` on
    so many members that etcd has no quorum (nothing can be read or written).
    """
    blockers = []
    unready = {cp: [f for f in faults if f.applies(kind="apiserver-unready", node=cp, version=versions.get(cp))]
               for cp in control_planes}
    if control_planes and all(unready.values()):
        hits = tuple(dict.fromkeys(f for fs in unready.values() for f in fs))
        at = ", ".join(str(v) for v in sorted({versions[cp] for cp in control_planes if cp in versions}))
        blockers.append(Blocker(hits, f"every kube-apiserver would start at {at or 'its version'} and never "
                                      "become ready"))
    down = [cp for cp in control_planes if any(f.applies(kind="etcd-member-down", node=cp) for f in faults)]
    quorum = len(control_planes) // 2 + 1
    if down and len(control_planes) - len(down) < quorum:
        hits = tuple(f for f in faults if f.kind == "etcd-member-down" and f.node in down)
        blockers.append(Blocker(hits, f"{len(down)} of {len(control_planes)} etcd members down leaves no quorum "
                                      f"(etcd needs {quorum} running), so the API could never serve"))
    return blockers
