"""Runbook steps that replace a stacked etcd member that lost its data (runbook etcd-member-lost).

The order is etcd's (runtime-configuration guide: remove, then add in its place) and kubeadm's
(a joining member starts with the full ``--initial-cluster`` and ``--initial-cluster-state=existing``,
as a learner first): etcd-members (guard) -> etcd-member-remove -> etcd-member-reset (its manifest to the
run's dir, which stops it; its data dir moved aside, never deleted) -> etcd-member-add (``--learner``)
-> etcd-member-start (the edited manifest staged outside manifests/ and renamed in) ->
etcd-member-promote -> etcd-quorum. A member restarted on an empty data dir under its old ID panics
(``tocommit(N) is out of range``), which is why it must be removed and added again.

etcdctl runs on a healthy control-plane node against its own member (``https://127.0.0.1:2379`` with
kubeadm's healthcheck client certificate), as an operator would type it there; ``--cluster`` reaches
the others through the member list. Every step observes its effect on resume (the member gone, the
manifest aside, the member listed, started, promoted), so a killed run continues where it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from upgrader.domain.control_plane_repair import (
    EndpointReading,
    Member,
    initial_cluster,
    manifest_flag,
    member_of,
    members_from_json,
    quorum_verdict,
    replacement_verdict,
    set_manifest_flag,
)
from upgrader.domain.plans import Action, Step
from upgrader.engine import gates, steps
from upgrader.engine.context import RunContext, StopRequestedError, last_lines
from upgrader.engine.gates import Reading
from upgrader.engine.runbook_manifests import MANIFESTS_DIR, TMP_DIR, args, node_arg
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError, UpgraderError

PKI = "/etc/kubernetes/pki/etcd"
ETCDCTL = ["etcdctl", "--endpoints=https://127.0.0.1:2379", f"--cacert={PKI}/ca.crt",
           f"--cert={PKI}/healthcheck-client.crt", f"--key={PKI}/healthcheck-client.key", "--dial-timeout=3s"]
# a reconfiguration may wait for the leader; a health or status read of a dead member only costs its timeout
WRITE_TIMEOUT = "--command-timeout=15s"
READ_TIMEOUT = "--command-timeout=4s"
CP_LABEL = "node-role.kubernetes.io/control-plane"
MANIFEST = f"{MANIFESTS_DIR}/etcd.yaml"
CALL_TIMEOUT = 60.0
START_WAIT = 180.0  # a new member streams the leader's snapshot before it answers
PROMOTE_WAIT = 180.0
POLL = 2.0
MAX_LAG = 50  # revisions members may be apart while the API keeps writing


def work_dir(run_id: int) -> str:
    return f"{TMP_DIR}/upgrader-etcd-{run_id}"


# -- reading the cluster ---------------------------------------------------------------------------

def _etcdctl(ctx: RunContext, via: str, *words: str, check: bool = True) -> Any:
    limit = WRITE_TIMEOUT if words[:2] in (("member", "add"), ("member", "remove"), ("member", "promote")) \
        else READ_TIMEOUT
    return ctx.run(via, [*ETCDCTL, limit, *words], timeout=CALL_TIMEOUT, check=check)


def _control_planes(ctx: RunContext) -> list[str]:
    nodes = ctx.api.list_nodes()
    return sorted(n["metadata"]["name"] for n in nodes if CP_LABEL in (n["metadata"].get("labels") or {}))


def _via(ctx: RunContext, node: str) -> str:
    """A control-plane node other than ``node`` whose own member answers: where etcdctl runs."""
    tried = []
    for other in [n for n in _control_planes(ctx) if n != node]:
        result = _etcdctl(ctx, other, "endpoint", "health", check=False)
        if result.ok:
            return other
        tried.append(f"{other}: {last_lines(result.stderr or result.stdout, 1)}")
    raise StepError("no other control-plane node has a healthy etcd member to work from ("
                    + ("; ".join(tried) or "none found") + "): quorum is lost; use runbook restore-etcd-from-snapshot")


def _members(ctx: RunContext, via: str) -> list[Member]:
    result = _etcdctl(ctx, via, "member", "list", "-w", "json")
    try:
        return members_from_json(json.loads(result.stdout))
    except ValueError as e:
        raise StepError(f"`etcdctl member list -w json` on {via} answered no member list: {e}") from e


def _health(ctx: RunContext, via: str, members: list[Member]) -> dict[str, bool]:
    """member id -> healthy, from ``endpoint health --cluster`` (a member that did not answer is unhealthy)."""
    result = _etcdctl(ctx, via, "endpoint", "health", "--cluster", "-w", "json", check=False)
    try:
        doc = json.loads(result.stdout or "[]")
    except ValueError:
        doc = []
    by_url = {str(e.get("endpoint")): e.get("health") is True for e in doc if isinstance(e, dict)}
    return {m.id: any(by_url.get(u) for u in m.client_urls) for m in members}


def _statuses(ctx: RunContext, via: str) -> list[EndpointReading]:
    result = _etcdctl(ctx, via, "endpoint", "status", "--cluster", "-w", "json", check=False)
    try:
        doc = json.loads(result.stdout or "[]")
    except ValueError:
        doc = []
    found = []
    for entry in doc if isinstance(doc, list) else []:
        status = entry.get("Status") if isinstance(entry, dict) else None
        if not isinstance(status, dict):
            continue
        header = status.get("header")
        if not isinstance(header, dict):
            header = {}
        member, leader = header.get("member_id"), status.get("leader")
        found.append(EndpointReading(member_id=format(member, "x") if isinstance(member, int) else "",
                                     leader_id=format(leader, "x") if isinstance(leader, int) else "",
                                     revision=header.get("revision") if isinstance(header.get("revision"), int)
                                     else None))
    return found


def _table(members: list[Member], healthy: dict[str, bool]) -> list[dict[str, Any]]:
    return [{"id": m.id, "name": m.name, "peer_urls": list(m.peer_urls), "learner": m.learner,
             "healthy": healthy.get(m.id, False)} for m in members]


def _manifest_text(ctx: RunContext, node: str) -> str:
    """The node's etcd manifest: in manifests/ or, once this run moved it, in the run's dir."""
    for path in (MANIFEST, f"{work_dir(ctx.run_id)}/etcd.yaml"):
        try:
            return ctx.read(node, path).decode(errors="replace")
        except FileMissingError:
            continue
    raise StepError(f"{node} has no etcd manifest ({MANIFEST} nor {work_dir(ctx.run_id)}/etcd.yaml): is it a "
                    "stacked-etcd control-plane node?")


def _peer_url(ctx: RunContext, node: str) -> str:
    text = _manifest_text(ctx, node)
    url = (manifest_flag(text, "initial-advertise-peer-urls") or "").split(",")[0]
    if not url:
        raise StepError(f"the etcd manifest of {node} has no --initial-advertise-peer-urls")
    return url


def _data_dir(ctx: RunContext, node: str) -> str:
    # kubeadm mounts the hostPath etcd-data at the same path as --data-dir
    return manifest_flag(_manifest_text(ctx, node), "data-dir") or "/var/lib/etcd"


def _wait(ctx: RunContext, what: str, limit: float, check: Callable[[], Reading]) -> Reading:
    deadline = ctx.clock.monotonic() + limit
    while True:
        if ctx.stop.is_set():
            raise StopRequestedError
        reading = check()
        if reading.ok or ctx.clock.monotonic() >= deadline:
            if not reading.ok:
                raise StepError(f"{what} did not happen within {limit:g}s: {reading.message}")
            return reading
        ctx.sleep(POLL)


# -- etcd-members ----------------------------------------------------------------------------------

def _assess(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via = _via(ctx, node)
    members = _members(ctx, via)
    healthy = _health(ctx, via, members)
    target = member_of(members, node=node, peer_url=_peer_url(ctx, node))
    verdict = replacement_verdict(members, healthy, target=target, node=node)
    out = {"via": via, "members": _table(members, healthy), "target": target.id if target else None,
           "verdict": verdict.reason}
    if not verdict.ok:
        raise StepError(verdict.reason)
    return out


# -- remove ----------------------------------------------------------------------------------------

def _remove(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    members = _members(ctx, via)
    target = member_of(members, node=node, peer_url=peer)
    if target is None:
        return {"via": via, "removed": None, "peer_url": peer, "why": "no member of this node is listed"}
    verdict = replacement_verdict(members, _health(ctx, via, members), target=target, node=node)
    if not verdict.ok:  # checked again: minutes may have passed since etcd-members
        raise StepError(verdict.reason)
    result = _etcdctl(ctx, via, "member", "remove", target.id)
    return {"via": via, "removed": target.id, "name": target.name, "peer_url": peer,
            "output": last_lines(result.stdout, 2)}


def _remove_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    if member_of(_members(ctx, via), node=node, peer_url=peer) is not None:
        return None
    return {"via": via, "removed": "(observed gone)", "peer_url": peer}


# -- reset: stop the member, move its data aside ---------------------------------------------------

def _exists(ctx: RunContext, node: str, path: str, *, directory: bool = False) -> bool:
    return bool(ctx.run(node, ["test", "-d" if directory else "-e", path], timeout=CALL_TIMEOUT, check=False).ok)


def _etcd_running(ctx: RunContext, node: str) -> Reading:
    result = ctx.run(node, ["crictl", "ps", "--name", "etcd", "-o", "json"], timeout=CALL_TIMEOUT, check=False)
    if not result.ok:
        return Reading(False, f"crictl ps failed: {last_lines(result.stderr, 1)}")
    try:
        found = json.loads(result.stdout or "{}").get("containers") or []
    except ValueError:
        found = []
    running = [c for c in found if (c.get("metadata") or {}).get("name") == "etcd"]
    return Reading(not running, "etcd container stopped" if not running else "etcd container still running")


def _reset(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    aside, data = work_dir(ctx.run_id), _data_dir(ctx, node)
    lost = f"{data.rstrip('/')}.lost-{ctx.run_id}"
    ctx.run(node, ["mkdir", "-p", "-m", "0700", aside])
    if _exists(ctx, node, MANIFEST):  # the kubelet stops the member once its manifest is gone
        ctx.run(node, ["mv", "-f", "--", MANIFEST, f"{aside}/etcd.yaml"])
    _wait(ctx, f"the etcd container on {node} to stop", 60.0, lambda: _etcd_running(ctx, node))
    if _exists(ctx, node, data, directory=True) and not _exists(ctx, node, lost, directory=True):
        ctx.run(node, ["mv", "--", data, lost])  # kept for forensics, never deleted
    ctx.run(node, ["mkdir", "-p", "-m", "0700", data])
    return {"manifest": f"{aside}/etcd.yaml", "data_dir": data, "moved_to": lost}


def _reset_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    aside, data = work_dir(ctx.run_id), _data_dir(ctx, node)
    lost = f"{data.rstrip('/')}.lost-{ctx.run_id}"
    done = (not _exists(ctx, node, MANIFEST) and _exists(ctx, node, f"{aside}/etcd.yaml")
            and _exists(ctx, node, lost, directory=True) and _exists(ctx, node, data, directory=True))
    return {"manifest": f"{aside}/etcd.yaml", "data_dir": data, "moved_to": lost} if done else None


# -- add, start, promote ---------------------------------------------------------------------------

def _add(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    found = member_of(_members(ctx, via), node=node, peer_url=peer)
    if found is not None:
        return {"via": via, "id": found.id, "learner": found.learner, "peer_url": peer, "added": False}
    learner = args(step).get("learner", True) is not False  # etcd 3.4+ and kubeadm 1.29+ join as a learner
    words = ["member", "add", node, f"--peer-urls={peer}", *(["--learner"] if learner else [])]
    result = _etcdctl(ctx, via, *words)
    added = member_of(_members(ctx, via), node=node, peer_url=peer)
    if added is None:
        raise StepError(f"`etcdctl member add {node}` on {via} exited 0 but no member has {peer}")
    return {"via": via, "id": added.id, "learner": added.learner, "peer_url": peer, "added": True,
            "output": last_lines(result.stdout, 5)}


def _add_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    found = member_of(_members(ctx, via), node=node, peer_url=peer)
    return None if found is None else {"via": via, "id": found.id, "learner": found.learner, "peer_url": peer}


def _started(ctx: RunContext, via: str, node: str, peer: str) -> Reading:
    member = member_of(_members(ctx, via), node=node, peer_url=peer)
    if member is None:
        return Reading(False, f"no member with {peer}")
    return Reading(bool(member.name), f"member {member.id} " + ("started" if member.name else "not started yet"))


def _start(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    members = _members(ctx, via)
    try:
        cluster = initial_cluster(members, node=node, peer_url=peer)
        text = _manifest_text(ctx, node)
        text = set_manifest_flag(text, "initial-cluster", cluster, after="initial-advertise-peer-urls")
        text = set_manifest_flag(text, "initial-cluster-state", "existing", after="initial-cluster")
    except ValueError as e:
        raise StepError(f"cannot write the etcd manifest of {node}: {e}") from e
    staged = f"{work_dir(ctx.run_id)}/etcd.yaml.new"  # outside manifests/: the kubelet reads every file there
    ctx.write(node, staged, text.encode(), 0o600)
    ctx.run(node, ["mv", "-f", "--", staged, MANIFEST])
    reading = _wait(ctx, f"the etcd member of {node} to start", START_WAIT, lambda: _started(ctx, via, node, peer))
    return {"via": via, "initial_cluster": cluster, "initial_cluster_state": "existing", "started": reading.message}


def _start_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    try:
        text = ctx.read(node, MANIFEST).decode(errors="replace")
    except FileMissingError:
        return None
    if manifest_flag(text, "initial-cluster-state") != "existing":
        return None
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    reading = _wait(ctx, f"the etcd member of {node} to start", START_WAIT, lambda: _started(ctx, via, node, peer))
    return {"via": via, "initial_cluster_state": "existing", "started": reading.message}


def _promote(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    tries: list[str] = []

    def attempt() -> Reading:
        member = member_of(_members(ctx, via), node=node, peer_url=peer)
        if member is None:
            raise StepError(f"no etcd member has {peer}: run etcd-member-add first")
        if not member.learner:
            return Reading(True, f"member {member.id} is a voting member")
        result = _etcdctl(ctx, via, "member", "promote", member.id, check=False)
        if result.ok:
            return Reading(True, last_lines(result.stdout, 1))
        said = last_lines(result.stderr, 1)
        tries.append(said)
        if "in sync with leader" not in said:  # anything but "not caught up yet" is not retried
            raise StepError(f"`etcdctl member promote {member.id}` on {via} failed: {said}")
        return Reading(False, said)

    reading = _wait(ctx, f"the learner of {node} to be promoted", PROMOTE_WAIT, attempt)
    return {"via": via, "promoted": reading.message, "retries": len(tries)}


def _promote_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    via, peer = _via(ctx, node), _peer_url(ctx, node)
    member = member_of(_members(ctx, via), node=node, peer_url=peer)
    return None if member is None or member.learner else {"via": via, "promoted": member.id}


# -- quorum ----------------------------------------------------------------------------------------

def _quorum(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = args(step).get("node")
    expected = len(_control_planes(ctx))

    def probe() -> Reading:
        via = _via(ctx, str(node or ""))
        members = _members(ctx, via)
        verdict = quorum_verdict(members, _health(ctx, via, members), _statuses(ctx, via), expected=expected,
                                 max_lag=MAX_LAG)
        return Reading(verdict.ok, f"etcd: {verdict.reason}")

    return gates.wait_for(ctx, f"etcd quorum of {expected} members", [probe])


def _never(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return None


def _facts(ctx: RunContext, node: str) -> dict[str, str]:
    """The real values a person confirms (member id, peer URL, data dir, where etcdctl runs); each read
    that fails leaves its placeholder."""
    found = {"id": "ID", "peer": "PEER_URL", "data": "/var/lib/etcd",
             "via": "another control-plane node"}
    if node == "NODE":
        return found
    try:
        found["peer"] = _peer_url(ctx, node)
        found["data"] = _data_dir(ctx, node)
        found["via"] = _via(ctx, node)
        member = member_of(_members(ctx, found["via"]), node=node, peer_url=found["peer"])
        found["id"] = member.id if member else "ID (no member has that peer URL now)"
    except UpgraderError:
        pass  # the node or etcd cannot be read now: the placeholders stay
    return found


def _say(*lines: str) -> Any:
    def describe(ctx: RunContext, step: Step) -> list[str]:
        node = str(args(step).get("node", "NODE"))
        values = {"node": node, "run": ctx.run_id or "RUN", "dir": work_dir(ctx.run_id), "manifest": MANIFEST}
        if any(f"{{{key}}}" in line for line in lines for key in ("id", "peer", "data", "via")):
            values |= _facts(ctx, node)
        return [line.format(**values) for line in lines]
    return describe


HANDLERS: dict[Action, Handler] = {
    Action.ETCD_MEMBERS: Handler(_assess, _never, _say(
        "on another control-plane node: etcdctl member list -w json; etcdctl endpoint health --cluster -w json",
        "refused when {node}'s member is healthy, when etcd has 2 voting members or fewer, or when the other "
        "healthy members are not a quorum without it (then: runbook restore-etcd-from-snapshot)")),
    Action.ETCD_MEMBER_REMOVE: Handler(_remove, _remove_observe, _say(
        "on {via}: etcdctl member remove {id}   (the member with {node}'s peer URL {peer})")),
    Action.ETCD_MEMBER_RESET: Handler(_reset, _reset_observe, _say(
        "on {node}: mv {manifest} {dir}/etcd.yaml   (the kubelet stops the member)",
        "on {node}: mv {data} {data}.lost-{run}   (kept, never deleted); mkdir -m 0700 {data}")),
    Action.ETCD_MEMBER_ADD: Handler(_add, _add_observe, _say(
        "on {via}: etcdctl member add {node} --peer-urls={peer} --learner")),
    Action.ETCD_MEMBER_START: Handler(_start, _start_observe, _say(
        "on {node}: write {dir}/etcd.yaml with --initial-cluster=EVERY_MEMBER and --initial-cluster-state=existing "
        "to {dir}/etcd.yaml.new, then mv -f it to {manifest}",
        "wait until `etcdctl member list` shows the member started")),
    Action.ETCD_MEMBER_PROMOTE: Handler(_promote, _promote_observe, _say(
        "on {via}: etcdctl member promote {id}   (retried while the learner catches up)")),
    Action.ETCD_QUORUM: Handler(_quorum, _never, _say(
        "etcdctl member list, endpoint health --cluster, endpoint status --cluster: every control-plane node a "
        "healthy voting member, one leader, revisions converged; several good readings in a row")),
}
steps.HANDLERS.update(HANDLERS)
