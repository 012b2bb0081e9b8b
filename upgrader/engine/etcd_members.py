"""Reading a stacked etcd from its control-plane nodes, for the etcd-member-lost runbook's steps
(engine/runbook_etcd.py): etcdctl run on a healthy control-plane node against its own member
(``https://127.0.0.1:2379`` with kubeadm's healthcheck client certificate), as an operator would type
it there; the member list, health and status; the node's etcd manifest, peer URL and data dir; and
the real values a confirmation shows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from upgrader.domain.control_plane_repair import EndpointReading, Member, manifest_flag, member_of, members_from_json
from upgrader.engine.context import RunContext, StopRequestedError, last_lines
from upgrader.engine.gates import Reading
from upgrader.engine.runbook_common import MANIFESTS_DIR, TMP_DIR
from upgrader.engine.steps import StepError
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
POLL = 2.0


def work_dir(run_id: int) -> str:
    return f"{TMP_DIR}/upgrader-etcd-{run_id}"


# -- reading the cluster ---------------------------------------------------------------------------

def etcdctl(ctx: RunContext, via: str, *words: str, check: bool = True) -> Any:
    limit = WRITE_TIMEOUT if words[:2] in (("member", "add"), ("member", "remove"), ("member", "promote")) \
        else READ_TIMEOUT
    return ctx.run(via, [*ETCDCTL, limit, *words], timeout=CALL_TIMEOUT, check=check)


def control_planes(ctx: RunContext) -> list[str]:
    nodes = ctx.api.list_nodes()
    return sorted(n["metadata"]["name"] for n in nodes if CP_LABEL in (n["metadata"].get("labels") or {}))


def working_node(ctx: RunContext, node: str) -> str:
    """A control-plane node other than ``node`` whose own member answers: where etcdctl runs."""
    tried = []
    for other in [n for n in control_planes(ctx) if n != node]:
        result = etcdctl(ctx, other, "endpoint", "health", check=False)
        if result.ok:
            return other
        tried.append(f"{other}: {last_lines(result.stderr or result.stdout, 1)}")
    raise StepError("no other control-plane node has a healthy etcd member to work from ("
                    + ("; ".join(tried) or "none found") + "): quorum is lost; use runbook restore-etcd-from-snapshot")


def member_list(ctx: RunContext, via: str) -> list[Member]:
    result = etcdctl(ctx, via, "member", "list", "-w", "json")
    try:
        return members_from_json(json.loads(result.stdout))
    except ValueError as e:
        raise StepError(f"`etcdctl member list -w json` on {via} answered no member list: {e}") from e


def member_health(ctx: RunContext, via: str, members: list[Member]) -> dict[str, bool]:
    """member id -> healthy, from ``endpoint health --cluster`` (a member that did not answer is unhealthy)."""
    result = etcdctl(ctx, via, "endpoint", "health", "--cluster", "-w", "json", check=False)
    try:
        doc = json.loads(result.stdout or "[]")
    except ValueError:
        doc = []
    by_url = {str(e.get("endpoint")): e.get("health") is True for e in doc if isinstance(e, dict)}
    return {m.id: any(by_url.get(u) for u in m.client_urls) for m in members}


def endpoint_statuses(ctx: RunContext, via: str) -> list[EndpointReading]:
    result = etcdctl(ctx, via, "endpoint", "status", "--cluster", "-w", "json", check=False)
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


def member_table(members: list[Member], healthy: dict[str, bool]) -> list[dict[str, Any]]:
    return [{"id": m.id, "name": m.name, "peer_urls": list(m.peer_urls), "learner": m.learner,
             "healthy": healthy.get(m.id, False)} for m in members]


def manifest_text(ctx: RunContext, node: str) -> str:
    """The node's etcd manifest: in manifests/ or, once this run moved it, in the run's dir."""
    for path in (MANIFEST, f"{work_dir(ctx.run_id)}/etcd.yaml"):
        try:
            return ctx.read(node, path).decode(errors="replace")
        except FileMissingError:
            continue
    raise StepError(f"{node} has no etcd manifest ({MANIFEST} nor {work_dir(ctx.run_id)}/etcd.yaml): is it a "
                    "stacked-etcd control-plane node?")


def peer_url_of(ctx: RunContext, node: str) -> str:
    text = manifest_text(ctx, node)
    url = (manifest_flag(text, "initial-advertise-peer-urls") or "").split(",")[0]
    if not url:
        raise StepError(f"the etcd manifest of {node} has no --initial-advertise-peer-urls")
    return url


def data_dir_of(ctx: RunContext, node: str) -> str:
    # kubeadm mounts the hostPath etcd-data at the same path as --data-dir
    return manifest_flag(manifest_text(ctx, node), "data-dir") or "/var/lib/etcd"


def wait_until(ctx: RunContext, what: str, limit: float, check: Callable[[], Reading]) -> Reading:
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


def path_exists(ctx: RunContext, node: str, path: str, *, directory: bool = False) -> bool:
    return bool(ctx.run(node, ["test", "-d" if directory else "-e", path], timeout=CALL_TIMEOUT, check=False).ok)


def etcd_stopped(ctx: RunContext, node: str) -> Reading:
    result = ctx.run(node, ["crictl", "ps", "--name", "etcd", "-o", "json"], timeout=CALL_TIMEOUT, check=False)
    if not result.ok:
        return Reading(False, f"crictl ps failed: {last_lines(result.stderr, 1)}")
    try:
        found = json.loads(result.stdout or "{}").get("containers") or []
    except ValueError:
        found = []
    running = [c for c in found if (c.get("metadata") or {}).get("name") == "etcd"]
    return Reading(not running, "etcd container stopped" if not running else "etcd container still running")


def facts(ctx: RunContext, node: str) -> dict[str, str]:
    """The real values a person confirms (member id, peer URL, data dir, where etcdctl runs); each read
    that fails leaves its placeholder."""
    found = {"id": "ID", "peer": "PEER_URL", "data": "/var/lib/etcd",
             "via": "another control-plane node"}
    if node == "NODE":
        return found
    try:
        found["peer"] = peer_url_of(ctx, node)
        found["data"] = data_dir_of(ctx, node)
        found["via"] = working_node(ctx, node)
        member = member_of(member_list(ctx, found["via"]), node=node, peer_url=found["peer"])
        found["id"] = member.id if member else "ID (no member has that peer URL now)"
    except UpgraderError:
        pass  # the node or etcd cannot be read now: the placeholders stay
    return found
