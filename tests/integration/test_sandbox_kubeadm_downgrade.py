"""The sandbox's kubeadm as a rollback and a two-step upgrade meet it, through the node transport.

A one-minor `kubeadm upgrade apply vLOWER` runs as current policy.go allows it (a bigger step is
refused with its exact message); the CoreDNS preflight checks fail when the older kubeadm does not
know the cluster's CoreDNS, unless ignored; etcd keeps its newer version; `--etcd-upgrade=false`
leaves etcd's manifest alone; the ClusterConfiguration's extraArgs reach the manifests; and the
kubeadm binary's version decides the wording (v1.32+ phase workflow, or the older "Enjoy!").
kubeadm talks to a small fake API whose "kubelet" follows the manifests at once (or never).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.sandbox_helpers import FakeKubeApi
from upgrader.domain.versions import Minor, Version
from upgrader.sandbox import releases
from upgrader.sandbox.apiserver.seed import cluster_configuration, sample_workloads
from upgrader.sandbox.node import manifests
from upgrader.sandbox.node import provision as noderoot
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import Timeouts, new_config

HINT = "To see the stack trace of this error execute with --v=5 or higher\n"
NEWEST = {m: releases.patches(Minor(1, m))[-1] for m in (31, 32, 33, 34)}


class FakeApi(FakeKubeApi):
    """Mirror pods follow each node's manifests at once unless ``kubelet_follows`` is off; /version is
    cp-1's kube-apiserver manifest; every node is Ready at the sandbox's version."""

    def __init__(self) -> None:
        super().__init__()
        self.kubelet_follows = True
        self.frozen: dict[str, str] = {}

    def manifest(self, node: str, component: str) -> Path:
        assert self.cfg is not None
        return self.cfg.node_root(node) / "etc/kubernetes/manifests" / f"{component}.yaml"

    def mirror_pod(self, component: str, node: str) -> dict | None:
        path = self.manifest(node, component)
        pod = manifests.load(path) if path.exists() else None
        if pod is None:
            return None
        digest = manifests.content_hash(path) if self.kubelet_follows else self.frozen.setdefault(
            f"{node}/{component}", manifests.content_hash(path))
        return {"metadata": {"name": f"{component}-{node}", "namespace": "kube-system",
                             "annotations": {"kubernetes.io/config.hash": digest}},
                "spec": {"nodeName": node,
                         "containers": [{"name": component, "image": manifests.container(pod)["image"]}]}}

    def mirror_pods(self, component: str) -> list[dict]:
        assert self.cfg is not None
        return [p for n in self.cfg.control_planes if (p := self.mirror_pod(component, n))]

    def version(self) -> str:
        assert self.cfg is not None
        if not self.kubelet_follows:
            return self.cfg.version
        return manifests.image_tag(manifests.load(self.manifest("cp-1", "kube-apiserver")) or {})

    def node_list(self) -> list[dict]:
        assert self.cfg is not None
        return [{"metadata": {"name": n, "labels": {"node-role.kubernetes.io/control-plane": ""}
                              if n in self.cfg.control_planes else {}},
                 "status": {"nodeInfo": {"kubeletVersion": self.cfg.version},
                            "conditions": [{"type": "Ready", "status": "True"}]}} for n in self.cfg.nodes]

    def image(self, addon: str) -> str:
        return str(self.addons[addon]["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def sandbox(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeApi]:
    """A sandbox at ``request.param`` (version, control planes) whose API is the fake."""
    version, control_planes = request.param
    fake = FakeApi()
    cfg = new_config(name="t", sandbox_dir=tmp_path / "sbx", version=version, control_planes=control_planes,
                     workers=1, lb_port=fake.port, timeouts=Timeouts(kubeadm=1.0))
    cfg = dataclasses.replace(cfg, apiserver_ports=dict.fromkeys(cfg.control_planes, fake.port),
                              etcd_client_ports=dict.fromkeys(cfg.control_planes, fake.port))
    cfg.dir.mkdir(parents=True)
    cfg.save()
    for node in cfg.nodes:
        noderoot.create(cfg, node)
    fake.cfg = cfg
    config = cluster_configuration(version, cluster_name="t", control_plane_endpoint=f"127.0.0.1:{fake.port}")
    fake.config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                       "data": {"ClusterConfiguration": config}}
    fake.addons = {obj["metadata"]["name"]: copy.deepcopy(obj) for _, obj in sample_workloads(version, workers=1)
                   if obj["metadata"]["name"] in ("kube-proxy", "coredns")}
    try:
        yield fake
    finally:
        fake.close()


def run(fake: FakeApi, node: str, *argv: str) -> tuple[int, str, str]:
    assert fake.cfg is not None
    r = SandboxTransport(fake.cfg.dir, node).run(list(argv), 60)
    return r.exit_code, r.stdout, r.stderr


def kubeadm_at(fake: FakeApi, node: str, version: Version, *, allow_downgrades: bool = False) -> None:
    """Point the apt source at the version's minor and install that kubeadm, as the upgrade page says."""
    current = fake.cfg.version if fake.cfg else ""
    repo = "/etc/apt/sources.list.d/kubernetes.list"
    move = f"sed -i 's|/{Version.parse(current).line}/deb|/{version.line}/deb|' {repo}"
    flags = "--allow-downgrades " if allow_downgrades else ""
    code, out, err = run(fake, node, "sh", "-c", f"{move} && apt-get update && apt-mark unhold kubeadm && "
                         f"apt-get install -y {flags}kubeadm={version.deb} && apt-mark hold kubeadm")
    assert code == 0, out + err


def image(fake: FakeApi, node: str, component: str) -> str:
    return manifests.image_tag(manifests.load(fake.manifest(node, component)) or {})


def flags(fake: FakeApi, node: str, component: str) -> list[str]:
    return list(manifests.container(manifests.load(fake.manifest(node, component)) or {})["command"])


# --- a one-minor downgrade --------------------------------------------------------------------


@pytest.mark.parametrize("sandbox", [(str(NEWEST[32]), 1)], indirect=True)
def test_a_one_minor_downgrade_runs_and_keeps_the_newer_etcd(sandbox: FakeApi) -> None:
    etcd_before = sandbox.manifest("cp-1", "etcd").read_bytes()
    two_down = Version(1, 30, 6)
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(two_down), "--yes")
    assert code == 1
    assert err == ("error execution phase preflight: the version argument is invalid due to these fatal errors:\n\n"
                   f'\t- Specified version to upgrade to "{two_down}" is equal to or lower than the minimum supported '
                   f'version "{NEWEST[32]}". Please specify a higher version to upgrade to\n'
                   f'\t- Specified version to downgrade to "{two_down}" is too low; kubeadm can downgrade only 1 '
                   "minor version at a time\n\n"
                   f"Please fix the misalignments highlighted above and try upgrading again\n{HINT}")

    target = Version(1, 31, 4)
    with pytest.raises(AssertionError, match="E: Packages were downgraded and -y was used without --allow-downgrades"):
        kubeadm_at(sandbox, "cp-1", target)
    kubeadm_at(sandbox, "cp-1", target, allow_downgrades=True)
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes")
    assert code == 0, err
    assert "Downgrades are not supported" not in out + err
    # kubeadm v1.31 words it the pre-phase way; both minors run CoreDNS 1.11.3, so no CoreDNS check fails
    assert out.endswith(f'\n[upgrade/successful] SUCCESS! Your cluster was upgraded to "{target}". Enjoy!\n\n'
                        "[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading "
                        "your kubelets if you haven't already done so.\n")
    assert "[ERROR CoreDNS" not in err and "[WARNING CoreDNS" not in err
    assert ('[upgrade/etcd] Non fatal issue encountered during upgrade: the desired etcd version "3.5.16-0" is older '
            f'than the currently installed "{releases.etcd_tag(NEWEST[32])}". Skipping etcd upgrade\n') in out
    assert sandbox.manifest("cp-1", "etcd").read_bytes() == etcd_before
    assert {c: image(sandbox, "cp-1", c) for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")} \
        == dict.fromkeys(("kube-apiserver", "kube-controller-manager", "kube-scheduler"), str(target))
    conf = yaml.safe_load(sandbox.config_map["data"]["ClusterConfiguration"])
    assert conf["kubernetesVersion"] == str(target)
    assert sandbox.image("kube-proxy") == f"registry.k8s.io/kube-proxy:{target}"


@pytest.mark.parametrize("sandbox", [(str(NEWEST[34]), 1)], indirect=True)
def test_coredns_preflight_fails_a_downgrade_unless_ignored(sandbox: FakeApi) -> None:
    target = NEWEST[33]
    before = {c: sandbox.manifest("cp-1", c).read_bytes() for c in manifests.COMPONENTS}
    kubeadm_at(sandbox, "cp-1", target, allow_downgrades=True)
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes")
    assert code == 1
    assert err == ("error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                   "\t[ERROR CoreDNSUnsupportedPlugins]: start version '1.12.1' not supported\n"
                   "\t[ERROR CoreDNSMigration]: CoreDNS will not be upgraded: start version '1.12.1' not supported\n"
                   "[preflight] If you know what you are doing, you can make a check non-fatal with "
                   f"`--ignore-preflight-errors=...`\n{HINT}")
    assert {c: sandbox.manifest("cp-1", c).read_bytes() for c in manifests.COMPONENTS} == before

    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes",
                         "--ignore-preflight-errors=CoreDNSUnsupportedPlugins,CoreDNSMigration")
    assert code == 0, err
    assert err == ("\t[WARNING CoreDNSUnsupportedPlugins]: start version '1.12.1' not supported\n"
                   "\t[WARNING CoreDNSMigration]: CoreDNS will not be upgraded: start version '1.12.1' not supported\n")
    assert out.endswith(f'\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{target}".\n\n'
                        "[upgrade] Now please proceed with upgrading the rest of the nodes by following the right "
                        "order.\n")
    assert "Enjoy!" not in out
    assert image(sandbox, "cp-1", "etcd") == releases.etcd_tag(NEWEST[34]), "etcd 3.6 is never taken back to 3.5"
    assert image(sandbox, "cp-1", "kube-apiserver") == str(target)


# --- v1.32+ wording of a failure, --etcd-upgrade=false, extraArgs -------------------------------


@pytest.mark.parametrize("sandbox", [(str(NEWEST[32]), 1)], indirect=True)
def test_a_v132_kubeadm_fails_in_its_control_plane_phase_and_restores(sandbox: FakeApi) -> None:
    target = Version(1, 33, 4)
    kubeadm_at(sandbox, "cp-1", target)
    sandbox.kubelet_follows = False
    before = {c: sandbox.manifest("cp-1", c).read_bytes() for c in manifests.COMPONENTS}
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes", "--etcd-upgrade=false")
    assert code == 1
    assert err == ("error execution phase control-plane: couldn't complete the static pod upgrade: couldn't upgrade "
                   "control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: "
                   "static Pod hash for component kube-apiserver on Node cp-1 did not change after 1s: context "
                   f"deadline exceeded\n{HINT}")
    assert {c: sandbox.manifest("cp-1", c).read_bytes() for c in manifests.COMPONENTS} == before
    assert "SUCCESS" not in out


@pytest.mark.parametrize("sandbox", [(str(NEWEST[33]), 2)], indirect=True)
def test_etcd_upgrade_false_and_extra_args_survive_apply_and_node(sandbox: FakeApi) -> None:
    """The two-step's step one: v1.34 binaries emulating v1.33, etcd kept at 3.5 until finalize."""
    conf = yaml.safe_load(sandbox.config_map["data"]["ClusterConfiguration"])
    for section in ("apiServer", "controllerManager", "scheduler"):
        conf[section] = {"extraArgs": [*conf[section].get("extraArgs", []), {"name": "emulated-version",
                                                                             "value": "1.33"}]}
    sandbox.config_map["data"]["ClusterConfiguration"] = yaml.safe_dump(conf)
    etcd_before = {n: sandbox.manifest(n, "etcd").read_bytes() for n in ("cp-1", "cp-2")}
    target = NEWEST[34]
    for node in ("cp-1", "cp-2"):
        kubeadm_at(sandbox, node, target)

    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes", "--etcd-upgrade=false")
    assert code == 0, err
    assert "[upgrade/etcd]" not in out and 'Preparing for "etcd" upgrade' not in out
    code, out, err = run(sandbox, "cp-2", "kubeadm", "upgrade", "node", "--etcd-upgrade=false")
    assert code == 0, err
    assert ("[upgrade/control-plane] The control plane instance for this node was successfully upgraded!\n"
            in out)
    assert "[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n" in out
    assert out.endswith("[upgrade] The configuration for this node was successfully upgraded!\n[upgrade] Now you "
                        "should go ahead and upgrade the kubelet package using your package manager.\n")
    for node in ("cp-1", "cp-2"):
        assert sandbox.manifest(node, "etcd").read_bytes() == etcd_before[node]
        assert image(sandbox, node, "etcd") == releases.etcd_tag(NEWEST[33])
        tmp = sandbox.cfg.node_root(node) / "etc/kubernetes/tmp" if sandbox.cfg else Path()
        assert not list(tmp.glob("kubeadm-backup-etcd-*")), "no etcd upgrade, no etcd backup"
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            command = flags(sandbox, node, component)
            assert "--emulated-version=1.33" in command, (node, component)
            assert command[1:] == sorted(command[1:], key=lambda f: f.partition("=")[0]), "kubeadm sorts flags"
            assert image(sandbox, node, component) == str(target)
    assert flags(sandbox, "cp-1", "kube-apiserver").count("--authorization-mode=Node,RBAC") == 1


@pytest.mark.parametrize("sandbox", [("v1.30.6", 1)], indirect=True)
def test_v1beta3_extra_args_map_reaches_the_manifests_and_is_uploaded_as_a_list(sandbox: FakeApi) -> None:
    conf = yaml.safe_load(sandbox.config_map["data"]["ClusterConfiguration"])
    assert conf["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    conf["scheduler"] = {"extraArgs": {"v": "4", "bind-address": "127.0.0.2"}}
    sandbox.config_map["data"]["ClusterConfiguration"] = yaml.safe_dump(conf)
    target = Version(1, 31, 4)
    kubeadm_at(sandbox, "cp-1", target)
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes")
    assert code == 0 and f'SUCCESS! Your cluster was upgraded to "{target}". Enjoy!' in out, err
    command = flags(sandbox, "cp-1", "kube-scheduler")
    assert "--bind-address=127.0.0.2" in command and "--bind-address=127.0.0.1" not in command
    assert command[-1] == "--v=4"
    uploaded = yaml.safe_load(sandbox.config_map["data"]["ClusterConfiguration"])
    assert uploaded["scheduler"]["extraArgs"] == [{"name": "bind-address", "value": "127.0.0.2"},
                                                  {"name": "v", "value": "4"}]


@pytest.mark.parametrize("sandbox", [(str(NEWEST[32]), 1)], indirect=True)
def test_dry_run_checks_and_changes_nothing(sandbox: FakeApi) -> None:
    before = {c: sandbox.manifest("cp-1", c).read_bytes() for c in manifests.COMPONENTS}
    target = Version(1, 31, 4)
    kubeadm_at(sandbox, "cp-1", target, allow_downgrades=True)
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--dry-run")
    assert (code, err) == (0, "")
    assert out.endswith("[dryrun] Finished dryrunning successfully!\n")
    assert {c: sandbox.manifest("cp-1", c).read_bytes() for c in manifests.COMPONENTS} == before
    assert yaml.safe_load(sandbox.config_map["data"]["ClusterConfiguration"])["kubernetesVersion"] == str(NEWEST[32])


@pytest.mark.parametrize("sandbox", [(str(NEWEST[33]), 1)], indirect=True)
def test_the_component_images_print_their_emulation_range(sandbox: FakeApi) -> None:
    """What the two-step reads before a hop: the range from the new binary's own --help, never computed."""
    for tag, options in [("v1.34.2", "Options are: kube=1.31..1.34(default:1.34)\n"),
                         ("v1.32.3", "Options are:\n" + " " * 59 + "kube=1.31..1.32 (default=1.32)If the component")]:
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            assert run(sandbox, "cp-1", "ctr", "-n", "k8s.io", "images", "pull",
                       f"registry.k8s.io/{component}:{tag}")[0] == 0
            code, out, err = run(sandbox, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm",
                                 f"registry.k8s.io/{component}:{tag}", "upgrader-help", component, "--help")
            assert (code, err) == (0, ""), (component, tag)
            assert f"Usage:\n  {component} [flags]\n" in out and options in out, out
    old = "registry.k8s.io/kube-apiserver:v1.30.6"
    assert run(sandbox, "cp-1", "ctr", "-n", "k8s.io", "images", "pull", old)[0] == 0
    code, out, _ = run(sandbox, "cp-1", "ctr", "-n", "k8s.io", "run", "--rm", old, "upgrader-help", "kube-apiserver",
                       "--help")
    assert code == 0 and "Usage:\n  kube-apiserver [flags]\n" in out and "--emulated-version" not in out


@pytest.mark.parametrize("sandbox", [(str(NEWEST[32]), 2)], indirect=True)
def test_other_control_planes_follow_a_downgrade_with_upgrade_node(sandbox: FakeApi) -> None:
    target = Version(1, 31, 4)
    etcd_before = {n: sandbox.manifest(n, "etcd").read_bytes() for n in ("cp-1", "cp-2")}
    for node in ("cp-1", "cp-2"):
        kubeadm_at(sandbox, node, target, allow_downgrades=True)
    code, out, err = run(sandbox, "cp-1", "kubeadm", "upgrade", "apply", str(target), "--yes")
    assert code == 0, err
    assert "[upgrade/addons] skip upgrade addons because control plane instances [cp-2] have not been upgraded" in out
    code, out, err = run(sandbox, "cp-2", "kubeadm", "upgrade", "node")
    assert code == 0, err
    assert ('[upgrade] Upgrading your Static Pod-hosted control plane instance to version "v1.31.4"...\n' in out)
    assert "Skipping etcd upgrade\n" in out
    # before v1.32 the addons are part of the control-plane phase: they come before its closing line
    assert ("[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy\n"
            "[upgrade] The control plane instance for this node was successfully updated!\n"
            "[upgrade] Backing up kubelet config file to ") in out
    assert out.endswith("[upgrade] The configuration for this node was successfully updated!\n[upgrade] Now you "
                        "should go ahead and upgrade the kubelet package using your package manager.\n")
    for node in ("cp-1", "cp-2"):
        assert sandbox.manifest(node, "etcd").read_bytes() == etcd_before[node]
        assert image(sandbox, node, "kube-apiserver") == str(target)
    assert sandbox.image("kube-proxy") == f"registry.k8s.io/kube-proxy:{target}"
