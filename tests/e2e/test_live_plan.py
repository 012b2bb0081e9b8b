"""`upgrader inventory` and `upgrader plan` against a live sandbox: what the API shows is what gets planned."""

from __future__ import annotations

import json

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
    nodes = {n["name"]: n for n in inv["nodes"]}
    assert sorted(nodes) == ["cp-1", "cp-2", "worker-1", "worker-2"]
    assert nodes["cp-1"]["components"] == {"kube-apiserver": "v1.30.6", "kube-controller-manager": "v1.30.6",
                                           "kube-scheduler": "v1.30.6", "etcd": "3.5.15-0"}
    assert nodes["worker-2"]["unschedulable"] is True and nodes["worker-1"]["control_plane"] is False

    plan = json.loads(cli.run("plan", "live", "--to", "v1.32", "-o", "json").stdout)
    assert [h["minor"] for h in plan["hops"]] == ["v1.31", "v1.32"]
    assert not [s for s in plan["steps"] if s["action"] == "uncordon" and s["node"] == "worker-2"]

    # An operator (or a crashed run) upgrades the first control-plane node only.
    cli.exec("live", "cp-1", "sh", "-c", KUBEADM_131)
    applied = cli.exec("live", "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes").stdout
    assert "SUCCESS!" in applied

    inv = json.loads(cli.run("inventory", "live", "-o", "json").stdout)
    versions = {n["name"]: n.get("components", {}).get("kube-apiserver") for n in inv["nodes"]}
    assert versions["cp-1"] == "v1.31.4" and versions["cp-2"] == "v1.30.6"

    level = json.loads(cli.run("plan", "live", "--to", "v1.31.4", "-o", "json").stdout)
    assert level["hops"] == [{"minor": "v1.31", "version": "v1.31.4", "kind": "level"}]
    actions = [(s["action"], s["node"]) for s in level["steps"]]
    assert ("kubeadm-upgrade-node", "cp-2") in actions
    assert not [a for a in actions if a[0] == "kubeadm-upgrade-apply"]

    older = cli.run("plan", "live", "--to", "v1.30.6", check=False)
    assert older.returncode == 3 and "older than the control plane" in older.stderr
