"""`upgrader inventory` and `upgrader plan` against a live sandbox: what the API shows is what gets planned."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

from tests.e2e.conftest import Cli

KUBEADM_131 = (
    "sed -i 's|core:/stable:/v1.30/deb|core:/stable:/v1.31/deb|' /etc/apt/sources.list.d/kubernetes.list && "
    "apt-mark unhold kubeadm && apt-get update && apt-get install -y kubeadm='1.31.4-1.1' && apt-mark hold kubeadm"
)


def test_live_inventory_and_plan_follow_the_cluster_through_a_half_done_upgrade(cli: Cli) -> None:
    info = cli.up("live", "--version", "v1.30.6", "--control-planes", "2", "--workers", "2")
    kc = info["kubeconfig"]
    cli.kubectl(kc, "cordon", "worker-2")  # someone else's cordon: the plan must keep it

    inv = json.loads(cli.run("inventory", "live", "-o", "json").stdout)
    _matches_the_sandbox(cli, inv, kc, minors={"cp-1": "v1.30", "cp-2": "v1.30", "worker-1": "v1.30",
                                              "worker-2": "v1.30"})
    nodes = {n["name"]: n for n in inv["nodes"]}
    assert sorted(nodes) == ["cp-1", "cp-2", "worker-1", "worker-2"]
    assert nodes["cp-1"]["components"] == {"kube-apiserver": "v1.30.6", "kube-controller-manager": "v1.30.6",
                                           "kube-scheduler": "v1.30.6", "etcd": "3.5.15-0"}
    assert nodes["worker-2"]["unschedulable"] is True and nodes["worker-1"]["control_plane"] is False

    plan = json.loads(cli.run("plan", "live", "--to", "v1.32", "-o", "json").stdout)
    assert [h["minor"] for h in plan["hops"]] == ["v1.31", "v1.32"]
    # nothing changed: the plan saw the cluster as the inventory did (etcd's db size and revision moved)
    assert plan["source"]["fingerprint"] == inv["fingerprint"]
    table = cli.run("inventory", "live").stdout
    assert "INTERNAL-IP" in table and "apt v1.30" in table and f"fingerprint: {inv['fingerprint']}" in table

    # the same cluster registered with `cluster add` alone: ssh with ssh's defaults (as --transport says),
    # which nobody set up on the sandbox's loopback nodes: each node is a transport_error, quickly
    cli.run("cluster", "add", "plain", "--kubeconfig", kc)
    started = time.monotonic()
    plain = json.loads(cli.run("inventory", "plain", "-o", "json").stdout)
    assert time.monotonic() - started < 60
    assert {n["packages"]["status"] for n in plain["nodes"]} == {"transport_error"}
    assert all("unreachable" in n["packages"]["error"] or "host key" in n["packages"]["error"]
               for n in plain["nodes"]), plain["nodes"]
    assert [n["internal_ip"] for n in plain["nodes"]] == [n["internal_ip"] for n in inv["nodes"]]

    # a node that cannot be reached is recorded on that node; the inventory is still whole
    cli.run("sandbox", "fault", "live", "node-unreachable:worker-1")
    cut = {n["name"]: n["packages"] for n in json.loads(cli.run("inventory", "live", "-o", "json").stdout)["nodes"]}
    cli.run("sandbox", "fault", "live", "node-unreachable:worker-1", "--clear")
    assert cut["worker-1"]["status"] == "transport_error" and "No route to host" in cut["worker-1"]["error"]
    assert cut["worker-2"]["status"] == "observed"
    assert cli.exec("live", "cp-1", "dnf", "--version", check=False).returncode == 127  # a Debian node: apt only
    assert not [s for s in plan["steps"] if s["action"] == "uncordon" and s["node"] == "worker-2"]

    # An operator (or a crashed run) upgrades the first control-plane node only.
    cli.exec("live", "cp-1", "sh", "-c", KUBEADM_131)
    applied = cli.exec("live", "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes").stdout
    assert "SUCCESS!" in applied

    inv = json.loads(cli.run("inventory", "live", "-o", "json").stdout)
    versions = {n["name"]: n.get("components", {}).get("kube-apiserver") for n in inv["nodes"]}
    assert versions["cp-1"] == "v1.31.4" and versions["cp-2"] == "v1.30.6"
    _matches_the_sandbox(cli, inv, kc, minors={"cp-1": "v1.31", "cp-2": "v1.30", "worker-1": "v1.30",
                                              "worker-2": "v1.30"})
    assert inv["kubeadm_config"]["kubernetes_version"] == "v1.31.4"  # `upgrade apply` uploads its config

    level = json.loads(cli.run("plan", "live", "--to", "v1.31.4", "-o", "json").stdout)
    assert level["hops"] == [{"minor": "v1.31", "version": "v1.31.4", "kind": "level"}]
    actions = [(s["action"], s["node"]) for s in level["steps"]]
    assert ("kubeadm-upgrade-node", "cp-2") in actions
    assert not [a for a in actions if a[0] == "kubeadm-upgrade-apply"]

    older = cli.run("plan", "live", "--to", "v1.30.6", check=False)
    assert older.returncode == 3 and "older than the control plane" in older.stderr


def _matches_the_sandbox(cli: Cli, inv: dict, kubeconfig: str, *, minors: dict[str, str]) -> None:
    """The inventory says what kubectl reads off the same API and what the nodes' own files say,
    and it is in the ledger."""
    listed = json.loads(cli.kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
    api = {n["metadata"]["name"]: n for n in listed}
    root = Path(cli.status("live")["dir"])
    for node in inv["nodes"]:
        seen = api[node["name"]]
        info = seen["status"]["nodeInfo"]
        addresses = {a["type"]: a["address"] for a in seen["status"]["addresses"]}
        assert node["internal_ip"] == addresses["InternalIP"]
        assert (node["os_image"], node["container_runtime"], node["kernel"]) == (
            info["osImage"], info["containerRuntimeVersion"], info["kernelVersion"])
        assert [(t["key"], t["effect"]) for t in node["taints"]] == [
            (t["key"], t["effect"]) for t in seen["spec"].get("taints") or []]
        kubeadm_taint = {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}
        assert node["taints"] == ([kubeadm_taint] if node["control_plane"] else [])
        sources = (root / "nodes" / node["name"] / "etc/apt/sources.list.d/kubernetes.list").read_text()
        on_node = re.search(r"https://pkgs\.k8s\.io/core:/stable:/(v1\.[0-9]+)/deb/", sources)
        assert on_node is not None and node["packages"] == {
            "status": "observed", "manager": "apt",
            "repo": {"url": on_node.group(0), "minor": minors[node["name"]],
                     "file": "/etc/apt/sources.list.d/kubernetes.list"}}
        assert on_node.group(1) == minors[node["name"]]
    config = cli.kubectl(kubeconfig, "get", "configmap", "kubeadm-config", "-n", "kube-system",
                         "-o", "jsonpath={.data.ClusterConfiguration}").stdout
    assert f"kubernetesVersion: {inv['kubeadm_config']['kubernetes_version']}" in config
    assert inv["kubeadm_config"]["etcd"] == {"mode": "local"}
    assert inv["kubeadm_config"]["image_repository"] == "registry.k8s.io"
    assert inv["kubeadm_config"]["control_plane_endpoint"] == cli.status("live")["server"].removeprefix("http://")
    if "members" in inv["etcd"]:  # etcd access (services/etcd_access.py) is there: one member per control plane
        ports = cli.status("live")["ports"]["etcd_client"]
        members = {m["name"]: m for m in inv["etcd"]["members"]}
        assert set(members) == set(ports)
        assert all(any(u.endswith(f":{ports[n]}") for u in m["client_urls"]) for n, m in members.items())
        assert sum(bool(m["leader"]) for m in inv["etcd"]["members"]) == 1
    else:  # a build without it records why, and the inventory is still whole
        assert inv["etcd"]["error"]
    with sqlite3.connect(cli.home / "ledger.db") as db:
        stored = db.execute("select o.fingerprint, o.source, o.inventory from observations o join clusters c "
                            "on c.id = o.cluster_id where c.name = 'live' order by o.id desc limit 1").fetchone()
    assert stored[:2] == (inv["fingerprint"], "live")
    assert json.loads(stored[2]) == inv
