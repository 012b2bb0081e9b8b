"""Pure rules of the control-plane runbooks: kubeadm's manifest backups, static pod manifest flags,
etcd member replacement (research §3, etcd's runtime-configuration guide) and the kubelet's flags file.

Values in, values out: the engine handlers (engine/runbook_manifests.py, runbook_etcd.py,
runbook_nodes.py) gather the facts on the nodes and act on what these functions decide.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# kubeadm's backup dirs: /etc/kubernetes/tmp/kubeadm-backup-manifests-2026-12-03-14-50-01
_BACKUP = re.compile(r"^kubeadm-backup-manifests-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})$", re.ASCII)
_FLAG_LINE = r"^(?P<indent>\s*-\s+)--{name}(?:=(?P<value>.*?))?\s*$"
_UNKNOWN_FLAG = re.compile(r"unknown flag: (--[A-Za-z0-9][A-Za-z0-9-]*)")
DIFF_LIMIT = 200  # lines of a manifest diff kept in the ledger


def backup_dirs_newest_first(names: Iterable[str]) -> list[str]:
    """kubeadm-backup-manifests-<date>-<time> dir names, newest first (their stamps sort as time does)."""
    found = [(m.group(1), n) for n in names if (m := _BACKUP.match(n.strip()))]
    return [n for _, n in sorted(found, reverse=True)]


def manifest_diff(current: str, backup: str, *, current_name: str, backup_name: str,
                  limit: int = DIFF_LIMIT) -> list[str]:
    """A unified diff from the current manifest to the backup (what restoring it changes)."""
    lines = list(difflib.unified_diff(current.splitlines(), backup.splitlines(), fromfile=current_name,
                                      tofile=backup_name, lineterm=""))
    return lines if len(lines) <= limit else [*lines[:limit], f"... ({len(lines) - limit} more lines)"]


def manifest_flag(text: str, name: str) -> str | None:
    """The value of ``--name=value`` in a static pod manifest's command list (None when absent)."""
    m = re.search(_FLAG_LINE.format(name=re.escape(name)), text, re.MULTILINE)
    return None if m is None else (m.group("value") or "").strip("'\"")


def set_manifest_flag(text: str, name: str, value: str, *, after: str) -> str:
    """The manifest with ``--name=value`` in its command list: the line replaced where it is, else added
    after the ``--after`` line, at its indentation. Everything else stays byte for byte."""
    pattern = re.compile(_FLAG_LINE.format(name=re.escape(name)), re.MULTILINE)
    if pattern.search(text):
        return pattern.sub(lambda m: f"{m.group('indent')}--{name}={value}", text, count=1)
    anchor = re.compile(_FLAG_LINE.format(name=re.escape(after)), re.MULTILINE)
    m = anchor.search(text)
    if m is None:
        raise ValueError(f"the manifest has no --{after} line to put --{name} after")
    return text[:m.end()] + f"\n{m.group('indent')}--{name}={value}" + text[m.end():]


# -- etcd members -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Member:
    """One member of ``etcdctl member list -w json``; an added member not yet started has no name."""

    id: str  # hex, as `member remove` takes it
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool = False


def members_from_json(doc: Mapping[str, Any]) -> list[Member]:
    """ValueError when the document is not ``member list -w json``'s (IDs are decimal there)."""
    raw = doc.get("members")
    if not isinstance(raw, list):
        raise ValueError("member list: no members in the answer")
    found = []
    for m in raw:
        if not isinstance(m, Mapping) or not isinstance(m.get("ID"), int):
            raise ValueError("member list: a member without a numeric ID")
        found.append(Member(id=format(m["ID"], "x"), name=str(m.get("name") or ""),
                            peer_urls=tuple(str(u) for u in m.get("peerURLs") or ()),
                            client_urls=tuple(str(u) for u in m.get("clientURLs") or ()),
                            learner=m.get("isLearner") is True))
    return found


def member_of(members: Sequence[Member], *, node: str, peer_url: str | None) -> Member | None:
    """The node's member: by its peer URL when known (an unstarted member has no name), else by name."""
    for m in members:
        if peer_url is not None and peer_url in m.peer_urls:
            return m
    return next((m for m in members if m.name == node), None) if peer_url is None else None


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str


def replacement_verdict(members: Sequence[Member], healthy: Mapping[str, bool], *, target: Member | None,
                        node: str) -> Verdict:
    """Whether the member of ``node`` may be removed and added again (etcd's runtime-configuration guide).

    ``healthy`` maps member id -> endpoint health. Refused: a cluster of two voting members or fewer
    ("It is unsafe to remove a member from a two member cluster"), a target that is healthy (nothing to
    replace), and any case where the healthy others are not a quorum of the cluster left after the
    removal: reconfiguration needs a working majority, and without it the way back is a restore.
    """
    voting = [m for m in members if not m.learner]
    if target is None:
        return Verdict(True, f"no member of {node} is listed (already removed): it can be added again")
    if len(voting) <= 2:
        return Verdict(False, f"etcd has {len(voting)} voting member(s): removing one from a cluster of two or "
                              "fewer is unsafe (etcd's runtime-configuration guide); use runbook "
                              "restore-etcd-from-snapshot")
    if healthy.get(target.id) and not target.learner:
        return Verdict(False, f"the etcd member of {node} ({target.id}) is healthy: there is nothing to replace")
    others = [m for m in voting if m.id != target.id]
    good = [m for m in others if healthy.get(m.id)]
    need = len(others) // 2 + 1
    if len(good) < need:
        return Verdict(False, f"only {len(good)} of the {len(others)} other members are healthy, fewer than the "
                              f"{need} the cluster needs after removing {node}'s member: quorum would be lost; "
                              "use runbook restore-etcd-from-snapshot")
    return Verdict(True, f"{len(good)} of {len(others)} other members healthy: {node}'s member "
                         f"{target.id} can be removed and added again")


def initial_cluster(members: Sequence[Member], *, node: str, peer_url: str) -> str:
    """``--initial-cluster`` for the re-added member: every member as NAME=PEER_URL, the re-added one
    (unstarted, so unnamed in the list) under the node's name; the member count must match etcd's list
    exactly, or etcd refuses with "member count is unequal"."""
    parts = []
    for m in members:
        name = node if peer_url in m.peer_urls else m.name
        if not name:
            raise ValueError(f"member {m.id} has no name yet: another member is being added; finish that first")
        parts += [f"{name}={u}" for u in m.peer_urls]
    if not any(p == f"{node}={peer_url}" for p in parts):
        raise ValueError(f"{node}'s member ({peer_url}) is not in etcd's member list: add it first")
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class EndpointReading:
    """One member's answer to ``endpoint status`` (None fields: it did not answer)."""

    member_id: str
    leader_id: str
    revision: int | None


def quorum_verdict(members: Sequence[Member], healthy: Mapping[str, bool], statuses: Sequence[EndpointReading], *,
                   expected: int, max_lag: int) -> Verdict:
    """Every member started, voting and healthy, ``expected`` of them, one leader, revisions within
    ``max_lag`` of each other."""
    if any(m.learner for m in members):
        return Verdict(False, "a learner is still in the cluster: " + ", ".join(m.id for m in members if m.learner))
    unstarted = [m.id for m in members if not m.name]
    if unstarted:
        return Verdict(False, f"member(s) not started: {', '.join(unstarted)}")
    if len(members) != expected:
        return Verdict(False, f"{len(members)} members, expected {expected}")
    sick = [m.name for m in members if not healthy.get(m.id)]
    if sick:
        return Verdict(False, f"unhealthy: {', '.join(sick)}")
    leaders = {s.leader_id for s in statuses if s.leader_id}
    if len(leaders) != 1:
        return Verdict(False, f"{len(leaders)} leaders seen")
    revisions = [s.revision for s in statuses if s.revision is not None]
    if len(revisions) != len(members):
        return Verdict(False, f"{len(revisions)} of {len(members)} members reported a revision")
    if max(revisions) - min(revisions) > max_lag:
        return Verdict(False, f"revisions apart by {max(revisions) - min(revisions)} (> {max_lag})")
    return Verdict(True, f"{len(members)} members healthy, one leader, revisions {min(revisions)}..{max(revisions)}")


# -- the kubelet's flags, and what else keeps a node NotReady ------------------------------------------

@dataclass(frozen=True, slots=True)
class NodeCause:
    """What the evidence of a NotReady node points to, the line that says so, and what to do next."""

    cause: str  # removed-flag | cgroup-v1 | cni-not-ready | runtime-down | unknown
    evidence: str
    next: str
    flags: tuple[str, ...] = ()


CGROUP_V1 = "kubelet is configured to not run on a host using cgroup v1"
CNI = "cni plugin not initialized"
RUNTIME = ("container runtime is down", "RuntimeReady=false", "connect: connection refused")


def classify_not_ready(journal: str, ready_message: str) -> NodeCause:
    """The cause of a node stuck NotReady after an upgrade (research §5): a flag the new kubelet refuses
    (automated by the runbook), cgroup v1 on a 1.35+ kubelet, the CNI, the container runtime, or unknown."""
    flags = unknown_flags(journal)
    if flags:
        said = next(ln for ln in journal.splitlines() if "unknown flag" in ln)
        return NodeCause("removed-flag", said.strip(), f"remove {', '.join(flags)} from /var/lib/kubelet/"
                         "kubeadm-flags.env (or KUBELET_EXTRA_ARGS) and restart the kubelet", tuple(flags))
    text = f"{journal}\n{ready_message}"
    for needle, cause, next_ in (
            (CGROUP_V1, "cgroup-v1", "move the node to cgroup v2, or set failCgroupV1: false in "
                                     "/var/lib/kubelet/config.yaml and restart the kubelet"),
            (CNI, "cni-not-ready", "check the CNI's pod on the node (kubectl -n kube-system get pods -o wide), "
                                   "/etc/cni/net.d and /opt/cni/bin; upgrade the CNI as the kubeadm guide says"),
            *((n, "runtime-down", "systemctl status containerd; crictl info") for n in RUNTIME)):
        line = next((ln for ln in text.splitlines() if needle in ln), None)
        if line is not None:
            return NodeCause(cause, line.strip(), next_)
    return NodeCause("unknown", (ready_message or "").strip(), "read `journalctl -xeu kubelet`, `crictl info` "
                     "(runtime and network conditions) and the CNI's pods")



def unknown_flags(journal: str) -> list[str]:
    """Flags the kubelet said it does not know (``failed to parse kubelet flag: unknown flag: --X``)."""
    return list(dict.fromkeys(_UNKNOWN_FLAG.findall(journal)))


def _env_words(value: str) -> list[str]:
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.strip('"').split()
    return [w for word in words for w in word.split()]


def env_flags(env_text: str) -> list[str]:
    """The flag names (``--name``) KUBELET_KUBEADM_ARGS of a kubeadm-flags.env text carries, in order."""
    found: dict[str, None] = {}
    for line in env_text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "KUBELET_KUBEADM_ARGS":
            found |= {w.lstrip("-").partition("=")[0]: None for w in _env_words(value) if w.startswith("--")}
    return [f"--{n}" for n in found]


def flags_present(env_text: str, flags: Iterable[str]) -> list[str]:
    """Which of ``flags`` (``--name``) KUBELET_KUBEADM_ARGS of a kubeadm-flags.env text carries."""
    names = [f.lstrip("-").partition("=")[0] for f in flags]
    found = {f[2:] for f in env_flags(env_text)}
    return [f"--{n}" for n in dict.fromkeys(names) if n in found]


def removed_flags(before: str, after: str) -> list[str]:
    """The flags ``before``'s KUBELET_KUBEADM_ARGS carries and ``after``'s does not."""
    kept = set(env_flags(after))
    return [f for f in env_flags(before) if f not in kept]


def without_flags(env_text: str, flags: Iterable[str]) -> str:
    """kubeadm-flags.env without ``flags`` (``--name``; with any value) in KUBELET_KUBEADM_ARGS; other
    lines stay as they are."""
    names = {f.lstrip("-").partition("=")[0] for f in flags}
    out = []
    for line in env_text.splitlines(keepends=True):
        key, sep, value = line.strip().partition("=")
        if not sep or key != "KUBELET_KUBEADM_ARGS":
            out.append(line)
            continue
        kept = [w for w in _env_words(value) if w.lstrip("-").partition("=")[0] not in names]
        out.append(f'KUBELET_KUBEADM_ARGS="{" ".join(kept)}"\n')
    return "".join(out)
