"""A RHEL sandbox (`sandbox up --os rhel`) through the real CLI: what upgrader reads of it, and the documented
manual upgrade of its control plane from v1.31 to v1.32 with dnf, using only node commands (through
`upgrader sandbox exec`) and kubectl.

The procedure is the kubeadm upgrade page's yum/dnf tab: move kubernetes.repo's baseurl and gpgkey to the
next minor, `yum install -y kubeadm-'1.32.x-*' --disableexcludes=kubernetes`, `kubeadm upgrade plan` and
`apply`, then drain, install kubelet and kubectl the same way, restart the kubelet and uncordon."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Cli, eventually
from upgrader.domain.versions import Minor
from upgrader.sandbox import releases

NAME = "rh"
REPO = "/etc/yum.repos.d/kubernetes.repo"
V132 = releases.patches(Minor(1, 32))[-1]  # "replace x with the latest patch version"
X = f"{V132.major}.{V132.minor}.{V132.patch}"
TO_132 = f"sed -i 's|core:/stable:/v1.31/rpm/|core:/stable:/v1.32/rpm/|g' {REPO}"
KUBEADM = f"yum install -y kubeadm-'{X}-*' --disableexcludes=kubernetes"
KUBELET = f"yum install -y kubelet-'{X}-*' kubectl-'{X}-*' --disableexcludes=kubernetes"


def sh(cli: Cli, node: str, script: str) -> str:
    return cli.exec(NAME, node, "sh", "-c", script).stdout


def _what_upgrader_reads(cli: Cli, store: Path) -> None:
    inv = json.loads(cli.run("inventory", NAME, "-o", "json").stdout)
    found = {n["name"]: n["packages"] for n in inv["nodes"]}
    assert {n: (p["manager"], p["repo"]["file"], p["repo"]["minor"]) for n, p in found.items()} == {
        n: ("dnf", REPO, "v1.31") for n in ("cp-1", "worker-1")}

    done = cli.run("preflight", NAME, "--to", "v1.32", "-o", "json", check=False, timeout=300)
    report = json.loads(done.stdout)
    failed = {c["name"]: c["message"] for c in report["checks"] if c["status"] != "passed"}
    assert (done.returncode, failed) == (0, {}), done.stderr

    snap = json.loads(cli.run("snapshot", "create", NAME, "--store", str(store), "-o", "json").stdout)
    repos = [a for a in snap["artefacts"] if a["kind"] == "repo-config"]
    assert [(a["node"], a["node_path"]) for a in repos] == [("cp-1", REPO)]
    assert "baseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/" in Path(repos[0]["stored_path"]).read_text()
    assert snap["versions"]["packages"]["cp-1"] == {p: "1.31.4-150500.1.1" for p in ("kubeadm", "kubelet", "kubectl")}


def test_a_rhel_sandbox_is_read_and_upgraded_with_dnf(cli: Cli, tmp_path: Path) -> None:
    info = cli.up(NAME, "--os", "rhel", "--version", "v1.31.4", "--control-planes", "1", "--workers", "1")
    assert info["os"] == "rhel" and cli.status(NAME)["os"] == "rhel"
    kc = info["kubeconfig"]
    assert cli.exec(NAME, "cp-1", "apt-get", "update", check=False).returncode == 127
    _what_upgrader_reads(cli, tmp_path / "store")

    # kubeadm: the repository of v1.31 does not have it, the one of v1.32 does once the exclude is lifted
    missing = cli.exec(NAME, "cp-1", "sh", "-c", KUBEADM, check=False)
    assert missing.returncode == 1 and f"No match for argument: kubeadm-{X}-*" in missing.stdout
    sh(cli, "cp-1", TO_132)
    excluded = cli.exec(NAME, "cp-1", "sh", "-c", KUBEADM.replace(" --disableexcludes=kubernetes", ""), check=False)
    assert excluded.returncode == 1 and "filtered out by exclude filtering" in excluded.stdout
    listed = sh(cli, "cp-1", "yum list --showduplicates kubeadm --disableexcludes=kubernetes")
    assert "kubeadm.x86_64" in listed and f"{X}-150500.1.1" in listed and "1.31.5-150500.1.1" not in listed
    assert "Upgraded:\n  kubeadm-" in sh(cli, "cp-1", KUBEADM)
    assert sh(cli, "cp-1", "rpm -q kubeadm").strip() == f"kubeadm-{X}-150500.1.1.x86_64"
    assert cli.exec(NAME, "cp-1", "kubeadm", "version", "-o", "short").stdout.strip() == f"v{X}"

    plan = cli.exec(NAME, "cp-1", "kubeadm", "upgrade", "plan").stdout
    assert f"kubeadm upgrade apply v{X}" in plan
    applied = cli.exec(NAME, "cp-1", "kubeadm", "upgrade", "apply", f"v{X}", "--yes").stdout
    # the wording changed in v1.32 (DOMAIN.md): accept either
    assert "SUCCESS!" in applied and f'was upgraded to "v{X}"' in applied, applied
    assert json.loads(cli.kubectl(kc, "get", "--raw", "/version").stdout)["gitVersion"] == f"v{X}"

    # the control-plane node's kubelet and kubectl
    cli.kubectl(kc, "drain", "cp-1", "--ignore-daemonsets", "--timeout", "120s")
    sh(cli, "cp-1", KUBELET)
    assert sh(cli, "cp-1", "rpm -q --qf '%{VERSION}-%{RELEASE}\\n' kubelet kubectl").split() == [
        f"{X}-150500.1.1"] * 2
    sh(cli, "cp-1", "systemctl daemon-reload && systemctl restart kubelet")
    cli.kubectl(kc, "uncordon", "cp-1")

    def ready_at_new_version() -> bool:
        got = json.loads(cli.kubectl(kc, "get", "node", "cp-1", "-o", "json").stdout)
        ready = [c["status"] for c in got["status"]["conditions"] if c["type"] == "Ready"]
        return got["status"]["nodeInfo"]["kubeletVersion"] == f"v{X}" and ready == ["True"]

    eventually(ready_at_new_version, timeout=60)
    worker = json.loads(cli.kubectl(kc, "get", "node", "worker-1", "-o", "json").stdout)
    assert worker["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4", "the worker was left alone"
    inv = json.loads(cli.run("inventory", NAME, "-o", "json").stdout)
    assert {n["name"]: n["packages"]["repo"]["minor"] for n in inv["nodes"]} == {"cp-1": "v1.32", "worker-1": "v1.31"}
