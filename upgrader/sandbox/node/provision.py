"""Provisions a sandbox node: lays out its root directory as `kubeadm init`/`join` and the packages would.

After this, the node looks like a kubeadm node to anything that reads its files: manifests, pki,
kubeconfigs, kubelet config, the pkgs.k8s.io package repository for its minor (an apt source on a
Debian node, a yum repository on a RHEL node, see :mod:`.distros`), installed kubeadm/kubelet/kubectl
packages (held on Debian, excluded from the repository on RHEL), /etc/hostname and /etc/os-release,
root's home (with ``/root/.kube/config`` on a control-plane node, as operators copy it after
``kubeadm init``), and the node's commands in ``/usr/bin`` and ``/usr/sbin`` (see :mod:`.wrappers`:
simulated tools and guards for host tools).
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import yaml

from upgrader.domain.versions import Version
from upgrader.files import atomic_write
from upgrader.ports import NodeLayout
from upgrader.sandbox import releases
from upgrader.sandbox.node import distros, isolation, machine, manifests, wrappers
from upgrader.sandbox.sandbox_config import SandboxConfig

CP_PKI = (
    "ca", "apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-ca",
    "front-proxy-client", "etcd/ca", "etcd/server", "etcd/peer", "etcd/healthcheck-client",
)


def create(cfg: SandboxConfig, node: str) -> NodeLayout:
    """Create the node root for a new sandbox (idempotent for files that already exist)."""
    layout = NodeLayout(cfg.node_root(node))
    version = Version.parse(cfg.version)
    control_plane = node in cfg.control_planes
    write_pki(layout, control_plane=control_plane)
    write_kubeconfigs(cfg, layout, node, control_plane=control_plane)
    write_kubelet_config(layout, version)
    write_packages(layout, version, os_name=cfg.os)
    if control_plane:
        manifests.write_all(cfg, node, version, layout.manifests_dir)
        layout.host_path("/var/lib/etcd").mkdir(parents=True, exist_ok=True)
        os.chmod(layout.host_path("/var/lib/etcd"), 0o700)
    layout.host_path("/etc/kubernetes/tmp").mkdir(parents=True, exist_ok=True)
    layout.host_path("/tmp").mkdir(parents=True, exist_ok=True)
    os.chmod(layout.host_path("/tmp"), 0o1777)
    layout.host_path("/etc/hostname").write_text(f"{node}\n")
    write_os_files(layout, node, os_name=cfg.os)
    write_home(layout, control_plane=control_plane)
    write_tools(cfg, layout, node)
    return layout


def _pem(kind: str, name: str) -> str:
    body = base64.b64encode(f"upgrader sandbox placeholder {kind} for {name}".encode()).decode()
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n"


def write_pki(layout: NodeLayout, *, control_plane: bool) -> None:
    pki = layout.host_path("/etc/kubernetes/pki")
    (pki / "etcd").mkdir(parents=True, exist_ok=True)
    names = CP_PKI if control_plane else ("ca",)
    for name in names:
        (pki / f"{name}.crt").write_text(_pem("CERTIFICATE", name))
        if control_plane:
            key = pki / f"{name}.key"
            key.write_text(_pem("RSA PRIVATE KEY", name))
            key.chmod(0o600)
    if control_plane:
        (pki / "sa.pub").write_text(_pem("PUBLIC KEY", "sa"))
        (pki / "sa.key").write_text(_pem("RSA PRIVATE KEY", "sa"))
        (pki / "sa.key").chmod(0o600)
    now = time.time()
    machine.save_certs(layout, {"issued": now, "ca_issued": now})


def kubeconfig(server: str, user: str, *, cluster: str = "kubernetes") -> dict[str, Any]:
    """A kubeconfig for the sandbox's plain-http endpoint (no credentials: the sandbox trusts loopback)."""
    context = f"{user}@{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"cluster": {"server": server}, "name": cluster}],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {"token": f"sandbox-{user}"}}],
    }


def write_kubeconfigs(cfg: SandboxConfig, layout: NodeLayout, node: str, *, control_plane: bool) -> None:
    files = {"kubelet.conf": f"system:node:{node}"}
    if control_plane:
        files |= {"admin.conf": "kubernetes-admin", "super-admin.conf": "kubernetes-super-admin",
                  "controller-manager.conf": "system:kube-controller-manager",
                  "scheduler.conf": "system:kube-scheduler"}
    for name, user in files.items():
        path = layout.host_path(f"/etc/kubernetes/{name}")
        path.write_text(yaml.safe_dump(kubeconfig(cfg.server, user), sort_keys=False))
        path.chmod(0o600)


def kubelet_config() -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "systemd",
        "clusterDNS": ["10.96.0.10"],
        "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": "unix:///var/run/containerd/containerd.sock",
        "rotateCertificates": True,
        "staticPodPath": "/etc/kubernetes/manifests",
    }


def write_kubelet_config(layout: NodeLayout, version: Version) -> None:
    """What kubeadm writes at join and on `upgrade node`: the config and the flags env file."""
    path = layout.host_path("/var/lib/kubelet/config.yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubelet_config(), sort_keys=False))
    flags = ("--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock "
             f"--pod-infra-container-image={releases.image('pause', releases.pause_tag(version))}")
    (path.parent / "kubeadm-flags.env").write_text(f'KUBELET_KUBEADM_ARGS="{flags}"\n')


def write_packages(layout: NodeLayout, version: Version, *, os_name: str = distros.DEBIAN) -> None:
    """The repository of the version's minor and kubeadm, kubelet and kubectl installed at the version, as the
    kubernetes.io install page leaves a node: on Debian the apt source (updated) and the packages held; on
    RHEL the yum repository, whose ``exclude=`` line keeps dnf from touching them unless told."""
    minor = str(version.line)
    if os_name == distros.RHEL:
        atomic_write(layout.host_path(machine.YUM_REPO), machine.yum_repo(minor).encode())
    else:
        atomic_write(layout.host_path(machine.SOURCES), machine.repo_line(minor).encode())
        atomic_write(layout.host_path("/etc/apt/keyrings/kubernetes-apt-keyring.gpg"),
                     b"upgrader sandbox placeholder keyring\n")
        machine.save_apt_lists(layout, minor)
    held = os_name != distros.RHEL
    pkgs = {n: machine.Package(n, distros.package_version(os_name, version), hold=held) for n in machine.K8S_PACKAGES}
    machine.save_packages(layout, pkgs)
    machine.save_kubelet_unit(layout, {"generation": 0, "wanted": "active", "unit_changed": False})


OS_FILES = {
    "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
    "/etc/group": "root:x:0:\n",
    "/etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\t{node}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "/etc/nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
}


def write_os_files(layout: NodeLayout, node: str, *, os_name: str = distros.DEBIAN) -> None:
    """What a root has in /etc that commands on the node look up (users, localhost, which OS it is); the
    machine's own are never shown to a node."""
    for path, text in {**OS_FILES, distros.OS_RELEASE: distros.OS_RELEASE_TEXT[os_name]}.items():
        target = layout.host_path(path)
        if not target.exists():
            target.write_text(text.format(node=node))


def write_home(layout: NodeLayout, *, control_plane: bool) -> None:
    """root's home; on a control-plane node ``~/.kube/config`` is admin.conf, as after `kubeadm init`."""
    home = layout.host_path("/root")
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    if control_plane:
        admin = layout.host_path("/etc/kubernetes/admin.conf").read_bytes()
        atomic_write(layout.host_path("/root/.kube/config"), admin, 0o600)


def write_tools(cfg: SandboxConfig, layout: NodeLayout, node: str) -> None:
    """The node's commands where a real node has them: wrappers that run the simulated tool (or refuse).

    An isolated node also gets its mount points (see :mod:`.isolation`); its transport checks them
    again before every command."""
    if cfg.isolation == isolation.NAMESPACE:
        isolation.NodeNamespace(cfg.dir, node, etcd_tools=cfg.node_etcd_tools).prepare()
    else:
        wrappers.ensure(layout.root, wrappers.host_scripts(sandbox_dir=cfg.dir, node=node, root=layout.root))
