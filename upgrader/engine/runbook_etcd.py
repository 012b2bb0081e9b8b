"""Runbook steps that replace a stacked etcd member that lost its data (runbook etcd-member-lost).

The order is etcd's (runtime-configuration guide: remove, then add in its place) and kubeadm's
(a joining member starts with the full ``--initial-cluster`` and ``--initial-cluster-state=existing``,
as a learner first): etcd-members (guard) -> etcd-member-remove -> etcd-member-reset (its manifest to the
run's dir, which stops it; its data dir moved aside, never deleted) -> etcd-member-add (``--learner``)
-> etcd-member-start (the edited manifest staged outside manifests/ and renamed in) ->
etcd-member-promote -> etcd-quorum. A member restarted on an empty data dir under its old ID panics
(``tocommit(N) is out of range``), which is why it must be removed and added again.

etcdctl runs on a healthy control-plane node against its own member (engine/etcd_members.py);
``--cluster`` reaches the others through the member list. Every step observes its effect on resume (the member gone, the
manifest aside, the member listed, started, promoted), so a killed run continues where it was.
"""

from __future__ import annotations

from typing import Any

from upgrader.domain.control_plane_repair import (
    initial_cluster,
    manifest_flag,
    member_of,
    quorum_verdict,
    replacement_verdict,
    set_manifest_flag,
)
from upgrader.domain.plans import Action, Step
from upgrader.engine import gates, steps
from upgrader.engine.context import RunContext, last_lines
from upgrader.engine.etcd_members import (
    MANIFEST,
    control_planes,
    data_dir_of,
    endpoint_statuses,
    etcd_stopped,
    etcdctl,
    facts,
    manifest_text,
    member_health,
    member_list,
    member_table,
    path_exists,
    peer_url_of,
    wait_until,
    work_dir,
    working_node,
)
from upgrader.engine.gates import Reading
from upgrader.engine.runbook_common import Describe, args, never, node_arg, say
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError

START_WAIT = 180.0  # a new member streams the leader's snapshot before it answers
PROMOTE_WAIT = 180.0
MAX_LAG = 50  # revisions members may be apart while the API keeps writing


# -- etcd-members ----------------------------------------------------------------------------------

def _assess(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via = working_node(ctx, node)
    members = member_list(ctx, via)
    healthy = member_health(ctx, via, members)
    target = member_of(members, node=node, peer_url=peer_url_of(ctx, node))
    verdict = replacement_verdict(members, healthy, target=target, node=node)
    out = {"via": via, "members": member_table(members, healthy), "target": target.id if target else None,
           "verdict": verdict.reason}
    if not verdict.ok:
        raise StepError(verdict.reason)
    return out


# -- remove ----------------------------------------------------------------------------------------

def _remove(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    members = member_list(ctx, via)
    target = member_of(members, node=node, peer_url=peer)
    if target is None:
        return {"via": via, "removed": None, "peer_url": peer, "why": "no member of this node is listed"}
    verdict = replacement_verdict(members, member_health(ctx, via, members), target=target, node=node)
    if not verdict.ok:  # checked again: minutes may have passed since etcd-members
        raise StepError(verdict.reason)
    result = etcdctl(ctx, via, "member", "remove", target.id)
    return {"via": via, "removed": target.id, "name": target.name, "peer_url": peer,
            "output": last_lines(result.stdout, 2)}


def _remove_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    if member_of(member_list(ctx, via), node=node, peer_url=peer) is not None:
        return None
    return {"via": via, "removed": "(observed gone)", "peer_url": peer}


# -- reset: stop the member, move its data aside ---------------------------------------------------

def _reset(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    aside, data = work_dir(ctx.run_id), data_dir_of(ctx, node)
    lost = f"{data.rstrip('/')}.lost-{ctx.run_id}"
    ctx.run(node, ["mkdir", "-p", "-m", "0700", aside])
    if path_exists(ctx, node, MANIFEST):  # the kubelet stops the member once its manifest is gone
        ctx.run(node, ["mv", "-f", "--", MANIFEST, f"{aside}/etcd.yaml"])
    wait_until(ctx, f"the etcd container on {node} to stop", 60.0, lambda: etcd_stopped(ctx, node))
    if path_exists(ctx, node, data, directory=True) and not path_exists(ctx, node, lost, directory=True):
        ctx.run(node, ["mv", "--", data, lost])  # kept for forensics, never deleted
    ctx.run(node, ["mkdir", "-p", "-m", "0700", data])
    return {"manifest": f"{aside}/etcd.yaml", "data_dir": data, "moved_to": lost}


def _reset_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    aside, data = work_dir(ctx.run_id), data_dir_of(ctx, node)
    lost = f"{data.rstrip('/')}.lost-{ctx.run_id}"
    done = (not path_exists(ctx, node, MANIFEST) and path_exists(ctx, node, f"{aside}/etcd.yaml")
            and path_exists(ctx, node, lost, directory=True) and path_exists(ctx, node, data, directory=True))
    return {"manifest": f"{aside}/etcd.yaml", "data_dir": data, "moved_to": lost} if done else None


# -- add, start, promote ---------------------------------------------------------------------------

def _add(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    found = member_of(member_list(ctx, via), node=node, peer_url=peer)
    if found is not None:
        return {"via": via, "id": found.id, "learner": found.learner, "peer_url": peer, "added": False}
    learner = args(step).get("learner", True) is not False  # etcd 3.4+ and kubeadm 1.29+ join as a learner
    words = ["member", "add", node, f"--peer-urls={peer}", *(["--learner"] if learner else [])]
    result = etcdctl(ctx, via, *words)
    added = member_of(member_list(ctx, via), node=node, peer_url=peer)
    if added is None:
        raise StepError(f"`etcdctl member add {node}` on {via} exited 0 but no member has {peer}")
    return {"via": via, "id": added.id, "learner": added.learner, "peer_url": peer, "added": True,
            "output": last_lines(result.stdout, 5)}


def _add_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    found = member_of(member_list(ctx, via), node=node, peer_url=peer)
    return None if found is None else {"via": via, "id": found.id, "learner": found.learner, "peer_url": peer}


def _started(ctx: RunContext, via: str, node: str, peer: str) -> Reading:
    member = member_of(member_list(ctx, via), node=node, peer_url=peer)
    if member is None:
        return Reading(False, f"no member with {peer}")
    return Reading(bool(member.name), f"member {member.id} " + ("started" if member.name else "not started yet"))


def _start(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    members = member_list(ctx, via)
    try:
        cluster = initial_cluster(members, node=node, peer_url=peer)
        text = manifest_text(ctx, node)
        text = set_manifest_flag(text, "initial-cluster", cluster, after="initial-advertise-peer-urls")
        text = set_manifest_flag(text, "initial-cluster-state", "existing", after="initial-cluster")
    except ValueError as e:
        raise StepError(f"cannot write the etcd manifest of {node}: {e}") from e
    staged = f"{work_dir(ctx.run_id)}/etcd.yaml.new"  # outside manifests/: the kubelet reads every file there
    ctx.write(node, staged, text.encode(), 0o600)
    ctx.run(node, ["mv", "-f", "--", staged, MANIFEST])
    reading = wait_until(ctx, f"the etcd member of {node} to start", START_WAIT, lambda: _started(ctx, via, node, peer))
    return {"via": via, "initial_cluster": cluster, "initial_cluster_state": "existing", "started": reading.message}


def _start_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    try:
        text = ctx.read(node, MANIFEST).decode(errors="replace")
    except FileMissingError:
        return None
    if manifest_flag(text, "initial-cluster-state") != "existing":
        return None
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    reading = wait_until(ctx, f"the etcd member of {node} to start", START_WAIT, lambda: _started(ctx, via, node, peer))
    return {"via": via, "initial_cluster_state": "existing", "started": reading.message}


def _promote(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    tries: list[str] = []

    def attempt() -> Reading:
        member = member_of(member_list(ctx, via), node=node, peer_url=peer)
        if member is None:
            raise StepError(f"no etcd member has {peer}: run etcd-member-add first")
        if not member.learner:
            return Reading(True, f"member {member.id} is a voting member")
        result = etcdctl(ctx, via, "member", "promote", member.id, check=False)
        if result.ok:
            return Reading(True, last_lines(result.stdout, 1))
        said = last_lines(result.stderr, 1)
        tries.append(said)
        if "in sync with leader" not in said:  # anything but "not caught up yet" is not retried
            raise StepError(f"`etcdctl member promote {member.id}` on {via} failed: {said}")
        return Reading(False, said)

    reading = wait_until(ctx, f"the learner of {node} to be promoted", PROMOTE_WAIT, attempt)
    return {"via": via, "promoted": reading.message, "retries": len(tries)}


def _promote_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = node_arg(step)
    via, peer = working_node(ctx, node), peer_url_of(ctx, node)
    member = member_of(member_list(ctx, via), node=node, peer_url=peer)
    return None if member is None or member.learner else {"via": via, "promoted": member.id}


# -- quorum ----------------------------------------------------------------------------------------

def _quorum(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = args(step).get("node")
    expected = len(control_planes(ctx))

    def probe() -> Reading:
        via = working_node(ctx, str(node or ""))
        members = member_list(ctx, via)
        verdict = quorum_verdict(members, member_health(ctx, via, members), endpoint_statuses(ctx, via),
                                 expected=expected, max_lag=MAX_LAG)
        return Reading(verdict.ok, f"etcd: {verdict.reason}")

    return gates.wait_for(ctx, f"etcd quorum of {expected} members", [probe])


def _plain(ctx: RunContext, step: Step) -> dict[str, Any]:
    return {"node": args(step).get("node", "NODE"), "run": ctx.run_id or "RUN", "dir": work_dir(ctx.run_id),
            "manifest": MANIFEST}


def _read(ctx: RunContext, step: Step) -> dict[str, Any]:
    return _plain(ctx, step) | facts(ctx, str(args(step).get("node", "NODE")))


def _say(*lines: str) -> Describe:
    """Lines naming {id}, {peer}, {data} or {via} read them from the cluster (facts); others do not."""
    real = any(f"{{{key}}}" in line for line in lines for key in ("id", "peer", "data", "via"))
    return say(_read if real else _plain, *lines)


HANDLERS: dict[Action, Handler] = {
    Action.ETCD_MEMBERS: Handler(_assess, never, _say(
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
    Action.ETCD_QUORUM: Handler(_quorum, never, _say(
        "etcdctl member list, endpoint health --cluster, endpoint status --cluster: every control-plane node a "
        "healthy voting member, one leader, revisions converged; several good readings in a row")),
}
steps.HANDLERS.update(HANDLERS)
