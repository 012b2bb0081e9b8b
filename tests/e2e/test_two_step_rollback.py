"""Rolling a two-step hop back on a sandbox (1 control plane + 1 worker), v1.33 -> v1.34 --two-step.

During the soak `rollback --yes` (no --to) is the soak kind: the binaries and manifests go back, etcd is
not restored (its cluster id is unchanged) and an object written during the soak survives; killed in its
package downgrade, `resume` finishes it; the soaking run ends rolled_back, linked both ways. After a second
two-step upgrade is finalized, the point of no return has passed: the preview is the etcd-restore kind,
needs the snapshot and names the point."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request

import pytest

from tests.e2e.apply_helpers import api_get, run_doc, server_of, steps_of
from tests.e2e.conftest import Cli
from tests.e2e.crash_helpers import Ledger
from tests.e2e.run_checks import Background, without_workers_budget
from tests.e2e.test_two_step import _cluster_configuration, _etcd_image, _kubelets, set_etcd_image

NAME = "twostep"  # the helpers of test_two_step read this sandbox's files
GATES = ("--gate-interval", "0.5s", "--gate-passes", "2")


def _cluster_id(cli: Cli) -> str:
    """The etcd cluster id in the header of the member's own answer (the node has no etcdctl: the sandbox's
    etcd serves its v3 JSON gateway on the client port `sandbox status` names)."""
    port = cli.status(NAME)["ports"]["etcd_client"]["cp-1"]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/cluster/member/list", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=5) as resp:
        found = str(json.loads(resp.read())["header"]["cluster_id"])
    assert found and found != "0", found
    return found


def _create_configmap(server: str, name: str) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
                       "data": {"k": "v"}}).encode()
    request = urllib.request.Request(f"{server}/api/v1/namespaces/default/configmaps", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 201, resp.status


def _soak(cli: Cli) -> dict:
    plan = json.loads(cli.run("plan", NAME, "--to", "v1.34", "--two-step", "--soak", "2h", "-o", "json").stdout)
    run = json.loads(cli.run("apply", str(plan["id"]), "--yes", *GATES, "-o", "json", timeout=600).stdout)
    assert run["status"] == "interrupted" and run["outcome"]["soaking"]["emulated"] == "v1.33", run["outcome"]
    return run


@pytest.mark.timeout(1500)
def test_a_soak_rollback_swaps_binaries_back_without_an_etcd_restore_and_after_finalize_needs_the_snapshot(
        cli: Cli) -> None:
    info = cli.up(NAME, "--version", "v1.33", "--control-planes", "1", "--workers", "1")
    kc = info["kubeconfig"]
    without_workers_budget(cli, kc)
    server = server_of(kc)
    source = api_get(server, "/version")["gitVersion"]
    cluster_id = _cluster_id(cli)
    soaking = _soak(cli)
    assert api_get(server, "/version")["emulationMinor"] == "33"
    _create_configmap(server, "written-during-soak")

    preview = json.loads(cli.run("rollback", NAME, "--dry-run", "-o", "json", timeout=300).stdout)
    assert preview["kind"] == "soak" and preview["etcd_restore"] is False and preview["needs_snapshot"] is None
    assert preview["loss"]["objects"] == [] and "restores no etcd snapshot" in preview["loss"]["why_empty"]
    assert preview["nodes_touched"] == ["cp-1"] and preview["workers_drained_and_downgraded"] == {}
    assert preview["points_of_no_return_passed"] == [] and preview["rollback_of"] == soaking["id"]
    shown = cli.run("rollback", NAME, "--dry-run", timeout=300).stdout
    assert "kind: soak" in shown and "what will be lost: nothing" in shown and "workers: untouched" in shown

    # the rollback is killed while it downgrades cp-1's packages; resume finishes it, observing what was done
    ledger = Ledger(cli.home / "ledger.db")
    rollback_id = None
    with Background(cli, "rollback", NAME, "--yes", "-o", "json", name="soak-rollback") as rolling:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rollback_id = ledger.run_id()
            if rollback_id != soaking["id"] and rollback_id is not None and (
                    "downgrade-packages", "cp-1", "running") in ledger.steps(rollback_id).values():
                break
            time.sleep(0.01)
        os.kill(rolling.pid, signal.SIGKILL)
        rolling.wait()
    assert rollback_id is not None and rollback_id != soaking["id"]
    killed = ledger.steps(rollback_id)
    assert ("swap-manifests", "cp-1", "succeeded") in killed.values(), killed
    assert ("verify-rollback", None, "succeeded") not in killed.values(), killed
    rolled = json.loads(cli.run("resume", str(rollback_id), "--yes", "-o", "json", timeout=600).stdout)
    assert rolled["status"] == "succeeded", rolled["outcome"]
    version = api_get(server, "/version")
    assert version["gitVersion"] == source and version.get("emulationMinor") in (None, "33"), version
    assert _cluster_id(cli) == cluster_id  # no etcd restore: a restore makes a new cluster id
    assert cli.kubectl(kc, "-n", "default", "get", "configmap", "written-during-soak").returncode == 0
    config = _cluster_configuration(cli, kc)
    assert "emulated-version" not in config and f"kubernetesVersion: {source}" in config
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        text = cli.exec(NAME, "cp-1", "cat", f"/etc/kubernetes/manifests/{component}.yaml").stdout
        assert "--emulated-version" not in text and f"{component}:{source}" in text
    assert _etcd_image(cli).startswith("3.5.")
    assert _kubelets(cli, kc) == {"cp-1": source, "worker-1": source}
    kubeadm = json.loads(cli.exec(NAME, "cp-1", "kubeadm", "version", "-o", "json").stdout)
    assert kubeadm["clientVersion"]["gitVersion"] == source
    assert rolled["rollback_of"] == soaking["id"] and run_doc(cli, soaking["id"])["rolled_back_by"] == [rolled["id"]]
    assert run_doc(cli, soaking["id"])["status"] == "rolled_back"
    (verified,) = steps_of(run_doc(cli, rolled["id"]), "verify-rollback")
    assert "no etcd restore" in verified["outputs"]["objects"]

    # the same hop again, finalized this time: the point of no return has passed
    again = _soak(cli)
    set_etcd_image(cli, kc, "3.5.32-0")
    done = json.loads(cli.run("finalize", str(again["id"]), "--yes", "-o", "json", timeout=600).stdout)
    assert done["status"] == "succeeded", done["outcome"]
    _create_configmap(server, "written-after-finalize")
    after = json.loads(cli.run("rollback", NAME, "--dry-run", "-o", "json", timeout=300).stdout)
    assert after["kind"] == "etcd-restore" and after["etcd_restore"] is True, after
    assert "point of no return passed" in after["needs_snapshot"]
    assert f"snapshot {after['snapshot']['id']}" in after["needs_snapshot"]
    passed = {(p["kind"], p["run_id"]) for p in after["points_of_no_return_passed"]}
    assert ("emulated-version-raised", again["id"]) in passed and ("etcd-minor-upgrade", again["id"]) in passed
    assert all(p["at"] for p in after["points_of_no_return_passed"])
    assert after["loss"] is not None and any(o["name"] == "written-after-finalize" for o in after["loss"]["objects"]), \
        after["loss"]
    shown = cli.run("rollback", NAME, "--dry-run", timeout=300).stdout
    assert "points of no return passed since the snapshot:" in shown and "emulated-version-raised" in shown
