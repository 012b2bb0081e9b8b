"""What `sandbox status` and `sandbox list` report: processes, ports, node versions, etcd members.

Read-only: it looks at the supervisor's state file, the processes by pid, the API through the load
balancer and etcd's own membership API, and reports whatever is reachable. A sandbox whose supervisor
is gone while processes of it still run (it was killed: its etcd members and API servers outlive it)
is ``orphaned``, with those processes listed; `sandbox down` stops them, `sandbox up` resumes it.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from typing import Any

from upgrader.errors import UsageError
from upgrader.sandbox import faults as faultlib
from upgrader.sandbox import processes
from upgrader.sandbox.etcd.health import probe
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.lifecycle.registry import known, load, locate
from upgrader.sandbox.lifecycle.teardown import orphans
from upgrader.sandbox.node.manifests import apiserver_versions
from upgrader.sandbox.sandbox_config import SandboxConfig
from upgrader.sandbox.supervisor.state import read_state, supervisor_pid


def _etcd_members(cfg: SandboxConfig) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = []
    for node in cfg.control_planes:
        try:
            req = urllib.request.Request(cfg.etcd_client_url(node) + "/v3/cluster/member/list", data=b"{}",
                                         method="POST")
            with urllib.request.urlopen(req, timeout=2) as resp:
                raw = json.loads(resp.read()).get("members", [])
        except OSError:
            continue
        for m in raw:
            members.append({"name": m.get("name", ""), "id": format(int(m.get("ID", 0)), "x"),
                            "client_urls": m.get("clientURLs", []), "peer_urls": m.get("peerURLs", [])})
        break
    for m in members:
        url = (m["client_urls"] or [""])[0]
        m["healthy"] = probe(url).healthy if url else False
    return members


def _nodes(api: KubeClient) -> list[dict[str, Any]]:
    try:
        items = api.get("/api/v1/nodes").get("items", [])
    except ApiError:
        return []
    out = []
    for n in items:
        conds = {c["type"]: c["status"] for c in n.get("status", {}).get("conditions", [])}
        out.append({"name": n["metadata"]["name"],
                    "ready": conds.get("Ready") == "True",
                    "schedulable": not n.get("spec", {}).get("unschedulable", False),
                    "kubelet_version": n.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", "")})
    return out


def status(cfg: SandboxConfig) -> dict[str, Any]:
    state = read_state(cfg.dir)
    sup = supervisor_pid(cfg.dir)
    api = KubeClient(cfg.server, timeout=3)
    try:
        version = api.git_version() if sup else None
    except (ApiError, KeyError):
        version = None
    started = {name: {"pid": e["pid"], "alive": processes.owned(e["pid"], e["marker"])}
               for name, e in state.get("processes", {}).items()} if sup else {}
    left = [] if sup else orphans(cfg.dir)
    return {
        "name": cfg.name,
        "dir": str(cfg.dir),
        "status": _status(sup, state, left),
        "supervisor_pid": sup,
        "server": cfg.server,
        "kubeconfig": str(cfg.kubeconfig),
        "os": cfg.os,
        "api_version": version,
        "last_known_version": _last_known(cfg),
        "ready": bool(sup) and api.ready(),
        "ports": {"load_balancer": cfg.lb_port, "apiserver": cfg.apiserver_ports,
                  "etcd_client": cfg.etcd_client_ports, "etcd_peer": cfg.etcd_peer_ports},
        "backends": state.get("lb", {}).get("backends", {}) if sup else {},
        "processes": started,
        "orphans": left,  # alive without a supervisor: [{"pid", "process", "command"}]
        "kubelets": state.get("kubelets", {}) if sup else {},
        "nodes": _nodes(api) if sup else [],
        "etcd_members": _etcd_members(cfg) if sup else [],
        "faults": [str(f) for f in faultlib.load(cfg.dir)],
    }


def _status(sup: int | None, state: dict[str, Any], left: list[dict[str, Any]]) -> str:
    if sup:
        return "running" if state.get("status") == "running" else "starting"
    return "orphaned" if left else "stopped"


def _last_known(cfg: SandboxConfig) -> str | None:
    """The version the control plane's manifests run (several while an upgrade is half done)."""
    versions = sorted(set(apiserver_versions(cfg).values()))
    return ", ".join(str(v) for v in versions) or None


def listing() -> list[dict[str, Any]]:
    """Every sandbox; ``version`` is what its API server answers now, or the last known one when it
    does not answer (``version_source`` says which: apiserver, last-known or unknown)."""
    out = []
    for name in sorted(known()):
        try:
            found = locate(name)
            cfg = load(found, name) if found is not None else None
        except UsageError:  # a registry entry with a bad name, or one naming no sandbox of that name
            continue
        if cfg is None:
            continue
        running = supervisor_pid(cfg.dir) is not None
        version, source = None, "unknown"
        if running:
            with contextlib.suppress(ApiError, KeyError):
                version, source = KubeClient(cfg.server, timeout=2).git_version(), "apiserver"
        if version is None and (last := _last_known(cfg)):
            version, source = last, "last-known"
        status = "running" if running else ("orphaned" if orphans(cfg.dir) else "stopped")
        out.append({"name": name, "status": status, "version": version,
                    "version_source": source, "created_version": cfg.version,
                    "control_planes": len(cfg.control_planes), "workers": len(cfg.workers),
                    "os": cfg.os, "server": cfg.server, "dir": str(cfg.dir)})
    return out
