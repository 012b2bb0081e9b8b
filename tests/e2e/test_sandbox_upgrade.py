"""One full manual upgrade v1.30 -> v1.31, exactly as DOMAIN.md's documented kubeadm procedure does it,
using only node commands (through `upgrader sandbox exec`) and API calls (kubectl).

Afterwards everything kubeadm moves has moved: the control plane, the kubelets, the CoreDNS and
kube-proxy addons (only once the last control-plane node was upgraded), and the kubeadm-config
ConfigMap, which kubeadm v1.31 writes in its own config API, v1beta4."""

from __future__ import annotations

import json
import urllib.request

import yaml

from tests.e2e.conftest import Cli, eventually

CPS = ["cp-1", "cp-2", "cp-3"]
WORKERS = ["worker-1", "worker-2", "worker-3"]
REPO = "sed -i 's|core:/stable:/v1.30/deb|core:/stable:/v1.31/deb|' /etc/apt/sources.list.d/kubernetes.list"
KUBEADM = ("apt-mark unhold kubeadm && apt-get update && apt-get install -y kubeadm='1.31.4-1.1' "
           "&& apt-mark hold kubeadm")
KUBELET = ("apt-mark unhold kubelet kubectl && apt-get install -y kubelet='1.31.4-1.1' kubectl='1.31.4-1.1' "
           "&& apt-mark hold kubelet kubectl")


PROXY_130, PROXY_131 = "registry.k8s.io/kube-proxy:v1.30.6", "registry.k8s.io/kube-proxy:v1.31.4"
# kubeadm's CoreDNSVersion: v1.11.1 in v1.30, v1.11.3 in v1.31 (cmd/kubeadm/app/constants/constants.go)
COREDNS_130, COREDNS_131 = "registry.k8s.io/coredns/coredns:v1.11.1", "registry.k8s.io/coredns/coredns:v1.11.3"


def _addon_images(cli: Cli, kc: str) -> tuple[str, str]:
    proxy = json.loads(cli.kubectl(kc, "get", "daemonset", "-n", "kube-system", "kube-proxy", "-o", "json").stdout)
    dns = json.loads(cli.kubectl(kc, "get", "deployment", "-n", "kube-system", "coredns", "-o", "json").stdout)
    return (proxy["spec"]["template"]["spec"]["containers"][0]["image"],
            dns["spec"]["template"]["spec"]["containers"][0]["image"])


def _pod_images(cli: Cli, kc: str, selector: str) -> set[str]:
    pods = json.loads(cli.kubectl(kc, "get", "pods", "-n", "kube-system", "-l", selector, "-o", "json").stdout)
    return {c["image"] for p in pods["items"] for c in p["spec"]["containers"]}


def sh(cli: Cli, node: str, script: str) -> str:
    return cli.exec("upg", node, "sh", "-c", script).stdout


def _kubelet_hop(cli: Cli, kc: str, node: str) -> None:
    cli.kubectl(kc, "drain", node, "--ignore-daemonsets", "--timeout", "120s")
    sh(cli, node, KUBELET)
    sh(cli, node, "systemctl daemon-reload && systemctl restart kubelet")
    cli.kubectl(kc, "uncordon", node)

    def ready_at_new_version() -> bool:
        got = json.loads(cli.kubectl(kc, "get", "node", node, "-o", "json").stdout)
        ready = [c["status"] for c in got["status"]["conditions"] if c["type"] == "Ready"]
        return got["status"]["nodeInfo"]["kubeletVersion"] == "v1.31.4" and ready == ["True"]

    eventually(ready_at_new_version, timeout=30)


def test_manual_upgrade_from_v1_30_to_v1_31(cli: Cli) -> None:
    info = cli.up("upg", "--version", "v1.30.6")
    kc = info["kubeconfig"]
    for node in CPS + WORKERS:
        sh(cli, node, REPO)

    # first control-plane node: kubeadm package, plan, apply
    sh(cli, "cp-1", KUBEADM)
    assert json.loads(cli.exec("upg", "cp-1", "kubeadm", "version", "-o", "json").stdout)[
        "clientVersion"]["gitVersion"] == "v1.31.4"
    plan = cli.exec("upg", "cp-1", "kubeadm", "upgrade", "plan").stdout
    assert "kubeadm upgrade apply v1.31.4" in plan
    applied = cli.exec("upg", "cp-1", "kubeadm", "upgrade", "apply", "v1.31.4", "--yes").stdout
    assert '[upgrade/successful] SUCCESS! Your cluster was upgraded to "v1.31.4". Enjoy!' in applied
    assert ("[upgrade/addons] skip upgrade addons because control plane instances [cp-2 cp-3] have not been "
            "upgraded") in applied
    assert _addon_images(cli, kc) == (PROXY_130, COREDNS_130)

    # other control-plane nodes: kubeadm package, upgrade node; the last one moves the addons
    for node in CPS[1:]:
        sh(cli, node, KUBEADM)
        out = cli.exec("upg", node, "kubeadm", "upgrade", "node").stdout
        assert "[upgrade] The control plane instance for this node was successfully updated!" in out
        assert ("[addons] Applied essential addon: kube-proxy" in out) is (node == CPS[-1]), (node, out)
    assert _addon_images(cli, kc) == (PROXY_131, COREDNS_131)

    # kubelets: control planes first, then workers (which also run `kubeadm upgrade node`)
    for node in CPS:
        _kubelet_hop(cli, kc, node)
    for node in WORKERS:
        sh(cli, node, KUBEADM)
        assert "Skipping phase. Not a control plane node." in cli.exec("upg", node, "kubeadm", "upgrade",
                                                                       "node").stdout
        _kubelet_hop(cli, kc, node)

    status = cli.status("upg")
    assert status["api_version"] == "v1.31.4"
    for node in CPS:  # every API server endpoint, not just the one the load balancer picked
        with urllib.request.urlopen(f"http://127.0.0.1:{status['ports']['apiserver'][node]}/version") as r:
            assert json.loads(r.read())["gitVersion"] == "v1.31.4"
    assert {(n["kubelet_version"], n["ready"], n["schedulable"]) for n in status["nodes"]} == {
        ("v1.31.4", True, True)}
    want = {"registry.k8s.io/kube-apiserver:v1.31.4", "registry.k8s.io/kube-controller-manager:v1.31.4",
            "registry.k8s.io/kube-scheduler:v1.31.4", "registry.k8s.io/etcd:3.5.16-0"}

    def mirror_pods_at_the_new_versions() -> bool:
        # Kubelets write their mirror pods on their own ticks, as real ones do: wait for them, and say
        # which pod lags (and what its node's manifest says) if one never catches up.
        pods = json.loads(cli.kubectl(kc, "get", "pods", "-n", "kube-system", "-l", "tier=control-plane",
                                      "-o", "json").stdout)["items"]
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        lagging = [(p["metadata"]["name"], p["spec"]["containers"][0]["image"],
                    p["metadata"].get("annotations", {}).get("kubernetes.io/config.hash"),
                    sh(cli, p["spec"]["nodeName"], f"grep image: /etc/kubernetes/manifests/"
                                                   f"{p['metadata']['name'].rsplit('-', 2)[0]}.yaml"))
                   for p in pods if p["spec"]["containers"][0]["image"] not in want]
        assert images == want, lagging
        return True

    try:
        eventually(mirror_pods_at_the_new_versions, timeout=30)
    except AssertionError as e:
        raise AssertionError(f"{e}{cli.diagnostics('upg')}") from None
    config = json.loads(cli.kubectl(kc, "get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "json").stdout)
    cluster_config = yaml.safe_load(config["data"]["ClusterConfiguration"])
    assert cluster_config["kubernetesVersion"] == "v1.31.4"
    assert cluster_config["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cluster_config["apiServer"]["extraArgs"] == [{"name": "authorization-mode", "value": "Node,RBAC"}]
    assert "timeoutForControlPlane" not in cluster_config["apiServer"]

    # the addons' pods follow their new templates
    eventually(lambda: _pod_images(cli, kc, "k8s-app=kube-proxy") == {PROXY_131}, timeout=60)
    eventually(lambda: _pod_images(cli, kc, "k8s-app=kube-dns") == {COREDNS_131}, timeout=60)

    listed = json.loads(cli.run("sandbox", "list", "-o", "json").stdout)
    assert [(s["name"], s["version"], s["version_source"], s["created_version"]) for s in listed] == [
        ("upg", "v1.31.4", "apiserver", "v1.30.6")]
    for node in CPS:
        backups = cli.exec("upg", node, "ls", "/etc/kubernetes/tmp").stdout.split()
        assert any(b.startswith("kubeadm-backup-manifests-") for b in backups), backups
        [etcd_backup] = [b for b in backups if b.startswith("kubeadm-backup-etcd-")]
        # kubeadm copies the data dir into the backup dir (`cp -r /var/lib/etcd DIR`): DIR/etcd/member
        assert cli.exec("upg", node, "ls", f"/etc/kubernetes/tmp/{etcd_backup}").stdout.split() == ["etcd"]
        assert "member" in cli.exec("upg", node, "ls", f"/etc/kubernetes/tmp/{etcd_backup}/etcd").stdout.split()
        assert "snap" in cli.exec("upg", node, "ls", f"/etc/kubernetes/tmp/{etcd_backup}/etcd/member").stdout.split()
        old = cli.exec("upg", node, "sh", "-c",
                       "cat /etc/kubernetes/tmp/kubeadm-backup-manifests-*/kube-apiserver.yaml")
        assert "image: registry.k8s.io/kube-apiserver:v1.30.6" in old.stdout
    held = cli.exec("upg", "worker-3", "apt-mark", "showhold").stdout.split()
    assert held == ["kubeadm", "kubectl", "kubelet"]
