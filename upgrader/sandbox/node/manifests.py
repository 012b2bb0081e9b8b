"""kubeadm-shaped static pod manifests, written and read the way kubeadm and the kubelet do.

The sandbox keeps the real shape (flags, probes, hostPath volumes, image tags) so that anything that
inspects or edits a manifest on a real node (upgrader's observers, an operator following the etcd
restore guide) works on a sandbox node unchanged. Two deliberate differences: everything is plain
http on 127.0.0.1, and the ports are the sandbox's own.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import yaml

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError, NodePathError
from upgrader.inputs import read_regular
from upgrader.node_layout import NodeLayout
from upgrader.sandbox import releases
from upgrader.sandbox.sandbox_config import SandboxConfig

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
PKI = "/etc/kubernetes/pki"
MAX_MANIFEST = 1024 * 1024  # a static pod manifest is a few KB


def _probe(path: str, port: int, *, failure_threshold: int, initial_delay: int | None = 10) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "failureThreshold": failure_threshold,
        "httpGet": {"host": "127.0.0.1", "path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": 10,
        "timeoutSeconds": 15,
    }
    if initial_delay is not None:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def _pod(name: str, image: str, command: list[str], volumes: list[tuple[str, str, str, bool]], *,
         annotations: dict[str, Any] | None = None, cpu: str = "100m",
         probes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A static pod: volumes are (name, host path, mount path, read only)."""
    container: dict[str, Any] = {
        "command": command,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "name": name,
        **(probes or {}),
        "resources": {"requests": {"cpu": cpu}},
        "volumeMounts": [
            {"mountPath": mount, "name": vname, **({"readOnly": True} if ro else {})}
            for vname, _host, mount, ro in volumes
        ],
    }
    metadata: dict[str, Any] = {"creationTimestamp": None, "labels": {"component": name, "tier": "control-plane"},
                      "name": name, "namespace": "kube-system"}
    if annotations:
        metadata = {"annotations": annotations, **metadata}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [container],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [
                {"hostPath": {"path": host, "type": "DirectoryOrCreate"}, "name": vname}
                for vname, host, _mount, _ro in volumes
            ],
        },
        "status": {},
    }


def etcd(cfg: SandboxConfig, node: str, version: Version, *, tag: str | None = None) -> dict[str, Any]:
    client, peer = cfg.etcd_client_url(node), cfg.etcd_peer_url(node)
    command = [
        "etcd",
        f"--advertise-client-urls={client}",
        f"--cert-file={PKI}/etcd/server.crt",
        "--client-cert-auth=true",
        "--data-dir=/var/lib/etcd",
        "--experimental-initial-corrupt-check=true",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={cfg.initial_cluster()}",
        "--initial-cluster-state=new",
        f"--key-file={PKI}/etcd/server.key",
        f"--listen-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--name={node}",
        f"--peer-cert-file={PKI}/etcd/peer.crt",
        "--peer-client-cert-auth=true",
        f"--peer-key-file={PKI}/etcd/peer.key",
        f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
        "--snapshot-count=10000",
        f"--trusted-ca-file={PKI}/etcd/ca.crt",
    ]
    volumes = [("etcd-certs", f"{PKI}/etcd", f"{PKI}/etcd", False),
               ("etcd-data", "/var/lib/etcd", "/var/lib/etcd", False)]
    image = releases.image("etcd", tag or releases.etcd_tag(version))
    annotations = {"kubeadm.kubernetes.io/etcd.advertise-client-urls": client}
    port = cfg.etcd_client_ports[node]
    probes = {"livenessProbe": _probe("/health?exclude=NOSPACE&serializable=true", port, failure_threshold=8),
              "startupProbe": _probe("/health?serializable=false", port, failure_threshold=24)}
    return _pod("etcd", image, command, volumes, annotations=annotations, probes=probes)


def kube_apiserver(cfg: SandboxConfig, node: str, version: Version) -> dict[str, Any]:
    port = cfg.apiserver_ports[node]
    command = [
        "kube-apiserver",
        "--advertise-address=127.0.0.1",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={PKI}/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={PKI}/etcd/ca.crt",
        f"--etcd-certfile={PKI}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={PKI}/apiserver-etcd-client.key",
        f"--etcd-servers={cfg.etcd_client_url(node)}",
        f"--kubelet-client-certificate={PKI}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={PKI}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={PKI}/front-proxy-client.crt",
        f"--proxy-client-key-file={PKI}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--secure-port={port}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={PKI}/sa.pub",
        f"--service-account-signing-key-file={PKI}/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12",
        f"--tls-cert-file={PKI}/apiserver.crt",
        f"--tls-private-key-file={PKI}/apiserver.key",
    ]
    volumes = [("ca-certs", "/etc/ssl/certs", "/etc/ssl/certs", True), ("k8s-certs", PKI, PKI, True)]
    annotations = {"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": f"127.0.0.1:{port}"}
    probes = {"livenessProbe": _probe("/livez", port, failure_threshold=8),
              "readinessProbe": _probe("/readyz", port, failure_threshold=3, initial_delay=None),
              "startupProbe": _probe("/livez", port, failure_threshold=24)}
    image = releases.image("kube-apiserver", str(version))
    return _pod("kube-apiserver", image, command, volumes, annotations=annotations, cpu="250m", probes=probes)


def kube_controller_manager(cfg: SandboxConfig, node: str, version: Version) -> dict[str, Any]:
    conf = "/etc/kubernetes/controller-manager.conf"
    command = [
        "kube-controller-manager",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        "--bind-address=127.0.0.1",
        f"--client-ca-file={PKI}/ca.crt",
        "--cluster-name=kubernetes",
        f"--cluster-signing-cert-file={PKI}/ca.crt",
        f"--cluster-signing-key-file={PKI}/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        f"--kubeconfig={conf}",
        "--leader-elect=true",
        f"--requestheader-client-ca-file={PKI}/front-proxy-ca.crt",
        f"--root-ca-file={PKI}/ca.crt",
        f"--service-account-private-key-file={PKI}/sa.key",
        "--use-service-account-credentials=true",
    ]
    volumes = [("ca-certs", "/etc/ssl/certs", "/etc/ssl/certs", True), ("k8s-certs", PKI, PKI, True),
               ("kubeconfig", conf, conf, True)]
    image = releases.image("kube-controller-manager", str(version))
    return _pod("kube-controller-manager", image, command, volumes, cpu="200m")


def kube_scheduler(cfg: SandboxConfig, node: str, version: Version) -> dict[str, Any]:
    conf = "/etc/kubernetes/scheduler.conf"
    command = ["kube-scheduler", f"--authentication-kubeconfig={conf}", f"--authorization-kubeconfig={conf}",
               "--bind-address=127.0.0.1", f"--kubeconfig={conf}", "--leader-elect=true"]
    image = releases.image("kube-scheduler", str(version))
    return _pod("kube-scheduler", image, command, [("kubeconfig", conf, conf, True)])


RENDER = {"etcd": etcd, "kube-apiserver": kube_apiserver,
          "kube-controller-manager": kube_controller_manager, "kube-scheduler": kube_scheduler}


def dump(pod: dict[str, Any]) -> str:
    return yaml.safe_dump(pod, sort_keys=False, default_flow_style=False)


def write_all(cfg: SandboxConfig, node: str, version: Version, manifests_dir: Path) -> None:
    manifests_dir.mkdir(parents=True, exist_ok=True)
    for component, render in RENDER.items():
        (manifests_dir / f"{component}.yaml").write_text(dump(render(cfg, node, version)))


# --- reading, as the kubelet and kubeadm do -------------------------------------------------


def load(path: Path) -> dict[str, Any] | None:
    """The pod in a manifest file, or None when it is missing or unparseable (the kubelet skips it)."""
    return read(path)[0]


def content_hash(path: Path) -> str:
    """The mirror pod's kubernetes.io/config.hash: changes whenever the manifest does."""
    return read(path)[1]


def read(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the pod, its config hash) from one read of the file: kubeadm may replace the manifest between
    two reads, and a pod paired with the other content's hash would never be noticed as changed.

    The supervisor reads node files from the machine's side, so a manifest that is a link (the node
    may point it anywhere, ``/dev/zero`` included), not a regular file, or over :data:`MAX_MANIFEST`
    counts as missing, as a file the kubelet cannot parse does.
    """
    try:
        data = read_regular(path, limit=MAX_MANIFEST, nofollow=True)
    except OSError:
        return None, ""
    digest = hashlib.md5(data).hexdigest()
    try:
        pod = yaml.safe_load(data)
    except yaml.YAMLError:
        return None, digest
    if isinstance(pod, dict) and isinstance(pod.get("spec"), dict) and pod["spec"].get("containers"):
        return cast(dict[str, Any], pod), digest
    return None, digest


def read_node_manifest(layout: NodeLayout, component: str) -> tuple[dict[str, Any] | None, str]:
    """A node's static pod manifest, through its layout: a path that leads out of the node (its
    /etc/kubernetes made a link to the machine's /etc) counts as missing."""
    try:
        path = layout.host_path(f"/etc/kubernetes/manifests/{component}.yaml")
    except NodePathError:
        return None, ""
    return read(path)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], pod["spec"]["containers"][0])


def image_tag(pod: dict[str, Any]) -> str:
    return str(container(pod)["image"]).rsplit(":", 1)[-1]


def flags(pod: dict[str, Any]) -> dict[str, str]:
    """``--name=value`` arguments of the container command as a dict."""
    out: dict[str, str] = {}
    for arg in container(pod).get("command", [])[1:]:
        if arg.startswith("--"):
            key, _, value = arg[2:].partition("=")
            out[key] = value
    return out


def host_path_for(pod: dict[str, Any], container_path: str) -> str:
    """Map a path inside the container to the node path through the hostPath volume mounts."""
    volumes = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["spec"].get("volumes", [])}
    mounts = sorted(container(pod).get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    for mount in mounts:
        base = mount["mountPath"].rstrip("/")
        host = volumes.get(mount["name"])
        if host and (container_path == base or container_path.startswith(base + "/")):
            return str(host).rstrip("/") + container_path[len(base):]
    return container_path


def apiserver_versions(cfg: SandboxConfig) -> dict[str, Version]:
    """Each control-plane node's kube-apiserver version per its static pod manifest (what it runs,
    or will run when started); nodes whose manifest is missing or unreadable are left out."""
    out: dict[str, Version] = {}
    for node in cfg.control_planes:
        try:
            out[node] = Version.parse(image_tag(read_node_manifest(NodeLayout(cfg.node_root(node)),
                                                                   "kube-apiserver")[0] or {}))
        except (OSError, ValueError, KeyError, IndexError, TypeError, InvalidVersionError):
            continue
    return out
