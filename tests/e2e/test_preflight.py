"""`upgrader preflight` against sandboxes: it passes on a healthy one and names the failing check per fault."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request

from tests.e2e.conftest import Cli, eventually


def _preflight(cli: Cli, name: str, *args: str) -> tuple[int, dict]:
    done = cli.run("preflight", name, *args, "-o", "json", check=False, timeout=300)
    assert done.returncode in (0, 4), (done.returncode, done.stdout, done.stderr)
    return done.returncode, json.loads(done.stdout)


def _checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def _not_passed(report: dict) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["reason"], c["message"]) for c in report["checks"] if c["status"] != "passed"}


def test_preflight_on_a_healthy_sandbox_then_with_faults(cli: Cli) -> None:
    info = cli.up("pf1", "--control-planes", "1", "--workers", "1")
    kc = info["kubeconfig"]

    code, report = _preflight(cli, "pf1", "--to", "v1.31")
    assert report["cluster"] == "pf1" and report["target"].startswith("v1.31.")
    assert _not_passed(report) == {}, "every check passes on a healthy sandbox"
    assert code == 0 and report["passed"] is True
    assert len(report["checks"]) == 11

    # someone else's cordon: reported as a warning, never touched, and it does not refuse
    cli.kubectl(kc, "cordon", "worker-1")
    code, report = _preflight(cli, "pf1", "--to", "v1.31", "--ignore", "etcd", "--reason", "etcd checked by hand")
    cordons = _checks(report)["cordoned-nodes"]
    assert (cordons["status"], cordons["severity"], cordons["details"]["nodes"]) == ("failed", "warning", ["worker-1"])
    assert code == 0, report
    node = json.loads(cli.kubectl(kc, "get", "node", "worker-1", "-o", "json").stdout)
    assert node["spec"].get("unschedulable") is True
    cli.kubectl(kc, "uncordon", "worker-1")

    # a client still calling flowcontrol v1beta3, which v1.32 no longer serves
    port = next(iter(cli.status("pf1")["ports"]["apiserver"].values()))
    # the sandbox serves no such API (404); its apiserver still notes the request in its metrics
    with contextlib.suppress(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/apis/flowcontrol.apiserver.k8s.io/v1beta3/flowschemas",
                               timeout=10)
    code, report = _preflight(cli, "pf1", "--to", "v1.32", "--ignore", "etcd", "--reason", "etcd checked by hand")
    removed = _checks(report)["removed-apis"]
    assert code == 4 and removed["reason"] == "RemovedApisRequested"
    assert "flowschemas.flowcontrol.apiserver.k8s.io/v1beta3 (removed in v1.32)" in removed["message"]
    assert _checks(_preflight(cli, "pf1", "--to", "v1.31")[1])["removed-apis"]["status"] == "passed"

    # certificates issued 355 days ago (a year's lifetime: 10 days left), and kubeadm backups piling up
    issued = time.time() - 355 * 86400
    cli.exec("pf1", "cp-1", "sh", "-c", f"printf '%s' '{{\"issued\": {issued}, \"ca_issued\": {issued}}}' "
             "> /etc/kubernetes/pki/.sandbox-certs.json && for i in 1 2 3 4; do "
             "mkdir -p /etc/kubernetes/tmp/kubeadm-backup-manifests-2026-01-0$i-10-00-00; done")
    code, report = _preflight(cli, "pf1", "--to", "v1.31", "--ignore", "etcd", "--reason", "etcd checked by hand")
    certs, backups = _checks(report)["certificates"], _checks(report)["kubeadm-backups"]
    assert code == 4 and certs["reason"] == "CertificatesExpiring" and "apiserver" in certs["details"]["certificates"]
    assert "on cp-1, within 30 days" in certs["message"]
    assert (backups["status"], backups["severity"], backups["details"]["nodes"]) == ("failed", "warning", {"cp-1": 4})
    cli.exec("pf1", "cp-1", "kubeadm", "certs", "renew", "all")
    assert _checks(_preflight(cli, "pf1", "--to", "v1.31")[1])["certificates"]["status"] == "passed"

    # drain blocked: a single replica pinned to worker-1 under minAvailable: 1
    cli.run("sandbox", "fault", "pf1", "drain-blocked:worker-1")

    def drain_blocked() -> dict:
        _, report = _preflight(cli, "pf1", "--to", "v1.31")
        check = _checks(report)["disruption-budgets"]
        return report if check["status"] == "failed" else {}

    report = eventually(drain_blocked, timeout=60)  # type: ignore[assignment]
    pdb = _checks(report)["disruption-budgets"]
    assert pdb["reason"] == "DrainBlockedByBudget" and pdb["severity"] == "blocking"
    assert pdb["details"]["budgets"] == ["demo/pinned-worker-1 (zero disruptions allowed)"]
    assert report["passed"] is False

    # the control plane NotReady
    cli.run("sandbox", "fault", "pf1", "node-not-ready:cp-1")

    def control_plane_not_ready() -> dict:
        _, report = _preflight(cli, "pf1", "--to", "v1.31")
        return report if _checks(report)["control-plane-ready"]["status"] == "failed" else {}

    report = eventually(control_plane_not_ready, timeout=90)  # type: ignore[assignment]
    check = _checks(report)["control-plane-ready"]
    assert check["reason"] == "ControlPlaneNotReady" and check["details"]["nodes"] == ["cp-1"]
    table = cli.run("preflight", "pf1", "--to", "v1.31", check=False, timeout=300)
    assert table.returncode == 4
    assert "control-plane-ready" in table.stdout and "ControlPlaneNotReady" in table.stdout
    assert "preflight refused the upgrade of pf1" in table.stderr and "control-plane-ready" in table.stderr


def test_preflight_names_a_dead_etcd_member_and_refuses_bad_overrides(cli: Cli) -> None:
    cli.up("pf2", "--control-planes", "3", "--workers", "1")
    bad = cli.run("preflight", "pf2", "--to", "v1.31", "--ignore", "etcd-health", "--reason", "x", check=False)
    assert bad.returncode == 2 and "no check named 'etcd-health'" in bad.stderr and "disruption-budgets" in bad.stderr
    no_reason = cli.run("preflight", "pf2", "--to", "v1.31", "--ignore", "etcd", check=False)
    assert no_reason.returncode == 2 and "--ignore needs --reason" in no_reason.stderr

    cli.run("sandbox", "fault", "pf2", "etcd-member-down:cp-3")

    def cp3_down() -> bool:
        return {m["name"]: m["healthy"] for m in cli.status("pf2")["etcd_members"]}.get("cp-3") is False

    eventually(cp3_down)
    code, report = _preflight(cli, "pf2", "--to", "v1.31")
    etcd = _checks(report)["etcd"]
    assert code == 4 and report["passed"] is False
    assert (etcd["status"], etcd["severity"], etcd["reason"]) == ("failed", "blocking", "EtcdMemberUnhealthy")
    assert "cp-3" in etcd["message"]
