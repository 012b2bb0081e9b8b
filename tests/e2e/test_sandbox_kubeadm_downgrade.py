"""What a rollback and a two-step upgrade ask of kubeadm, on a running sandbox through the real CLI.

Up a minor with a v1.32 kubeadm (its phase-workflow wording), then back down: apt refuses the older
kubeadm without --allow-downgrades, kubeadm v1.31 runs the one-minor downgrade and keeps etcd at the
newer version. And the two-step's first step: a v1.34 control plane emulating v1.33 from the
kubeadm-config extraArgs, etcd left at 3.5 by --etcd-upgrade=false, seen in /version.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Cli, eventually
from upgrader.domain.versions import Minor, Version
from upgrader.sandbox import releases

LIST = "/etc/apt/sources.list.d/kubernetes.list"


def _sh(cli: Cli, name: str, script: str, node: str = "cp-1") -> str:
    return cli.exec(name, node, "sh", "-c", script).stdout


def _kubeadm(cli: Cli, name: str, frm: Minor, to: Version, *flags: str) -> None:
    _sh(cli, name, f"sed -i 's|/{frm}/deb|/{to.line}/deb|' {LIST} && apt-get update && apt-mark unhold kubeadm && "
                   f"apt-get install -y {' '.join(flags)} kubeadm={to.deb} && apt-mark hold kubeadm")


def _image(cli: Cli, name: str, component: str) -> str:
    text = cli.exec(name, "cp-1", "cat", f"/etc/kubernetes/manifests/{component}.yaml").stdout
    return str(yaml.safe_load(text)["spec"]["containers"][0]["image"]).rsplit(":", 1)[1]


def _version(cli: Cli, kc: str) -> dict:
    return dict(json.loads(cli.kubectl(kc, "get", "--raw", "/version").stdout))


@pytest.mark.timeout(600)
def test_up_a_minor_with_kubeadm_132_and_back_down_with_131(cli: Cli) -> None:
    start, up = Version(1, 31, 4), releases.patches(Minor(1, 32))[-1]
    kc = cli.up("dg", "--version", str(start), "--control-planes", "1", "--workers", "1")["kubeconfig"]
    _kubeadm(cli, "dg", start.line, up)
    applied = cli.exec("dg", "cp-1", "kubeadm", "upgrade", "apply", str(up), "--yes").stdout
    assert applied.endswith(f'\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "{up}".\n\n'
                            "[upgrade] Now please proceed with upgrading the rest of the nodes by following the "
                            "right order.\n"), applied
    newer_etcd = _image(cli, "dg", "etcd")
    assert newer_etcd == releases.etcd_tag(up) != releases.etcd_tag(start)

    sed_back = f"sed -i 's|/{up.line}/deb|/{start.line}/deb|' {LIST} && apt-get update && apt-mark unhold kubeadm"
    _sh(cli, "dg", sed_back)
    refused = cli.exec("dg", "cp-1", "apt-get", "install", "-y", f"kubeadm={start.deb}", check=False)
    assert refused.returncode == 100
    assert refused.stderr.endswith("E: Packages were downgraded and -y was used without --allow-downgrades.\n")
    _sh(cli, "dg", f"apt-get install -y --allow-downgrades kubeadm={start.deb} && apt-mark hold kubeadm")
    down = cli.exec("dg", "cp-1", "kubeadm", "upgrade", "apply", str(start), "--yes")
    assert f'[upgrade/successful] SUCCESS! Your cluster was upgraded to "{start}". Enjoy!' in down.stdout
    assert (f'the desired etcd version "{releases.etcd_tag(start)}" is older than the currently installed '
            f'"{newer_etcd}". Skipping etcd upgrade') in down.stdout
    assert _image(cli, "dg", "etcd") == newer_etcd and _image(cli, "dg", "kube-apiserver") == str(start)
    eventually(lambda: _version(cli, kc)["gitVersion"] == str(start), timeout=60)


@pytest.mark.timeout(600)
def test_step_one_of_a_two_step_emulates_the_old_minor_and_keeps_etcd(cli: Cli, tmp_path: Path) -> None:
    start, up = releases.patches(Minor(1, 33))[-1], releases.patches(Minor(1, 34))[-1]
    kc = cli.up("ts", "--version", str(start), "--control-planes", "1", "--workers", "1")["kubeconfig"]
    cm = json.loads(cli.kubectl(kc, "-n", "kube-system", "get", "cm", "kubeadm-config", "-o", "json").stdout)
    conf = yaml.safe_load(cm["data"]["ClusterConfiguration"])
    for section in ("apiServer", "controllerManager", "scheduler"):
        args = (conf.get(section) or {}).get("extraArgs") or []
        conf[section] = {**(conf.get(section) or {}), "extraArgs": [*args, {"name": "emulated-version",
                                                                            "value": "1.33"}]}
    cm["data"]["ClusterConfiguration"] = yaml.safe_dump(conf)
    (tmp_path / "cm.json").write_text(json.dumps(cm))
    cli.kubectl(kc, "replace", "--validate=false", "-f", str(tmp_path / "cm.json"))  # the sandbox serves no openapi
    etcd_before = cli.exec("ts", "cp-1", "cat", "/etc/kubernetes/manifests/etcd.yaml").stdout

    _kubeadm(cli, "ts", start.line, up)
    applied = cli.exec("ts", "cp-1", "kubeadm", "upgrade", "apply", str(up), "--yes", "--etcd-upgrade=false")
    assert f'SUCCESS! A control plane node of your cluster was upgraded to "{up}".' in applied.stdout
    assert cli.exec("ts", "cp-1", "cat", "/etc/kubernetes/manifests/etcd.yaml").stdout == etcd_before
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        manifest = cli.exec("ts", "cp-1", "cat", f"/etc/kubernetes/manifests/{component}.yaml").stdout
        assert "- --emulated-version=1.33\n" in manifest, component
    info = eventually(lambda: (v := _version(cli, kc))["gitVersion"] == str(up) and v, timeout=60)
    assert isinstance(info, dict) and (info["emulationMajor"], info["emulationMinor"]) == ("1", "33")
