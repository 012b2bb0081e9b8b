"""What a snapshot keeps besides etcd: each control-plane node's files, and kubeadm-config.

From every control-plane node, through its transport: the static pod manifests, the kubelet's
config and kubeadm flags, the Kubernetes package versions (dpkg-query, else rpm) and the package
repository config; from the API, the kubeadm-config ConfigMap. Each is stored 0600 beside the etcd
file with its sha256. Certificates and keys (/etc/kubernetes/pki) are never captured, and no
captured content is ever logged or echoed: only paths and checksums are.

Only a file that is not there is skipped (a node without an apt or a yum repository file). Any
other read failure (permission denied, sudo refusing, the node lost) fails the snapshot: a
snapshot silently missing a manifest would be a rollback that cannot bring it back. A file name
outside ``[A-Za-z0-9._-]`` (``etcd (copy).yaml``) is stored under a sanitised name; its record
keeps the node path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upgrader.domain.records import ClusterRecord, SnapshotArtefact
from upgrader.errors import FileMissingError, NodeFileError, NodeUnreachableError, TransportError
from upgrader.ports import NodeTransport, SnapshotStore
from upgrader.services.wiring import AppContext

MANIFESTS = "/etc/kubernetes/manifests"
KNOWN_MANIFESTS = ("kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml", "etcd.yaml")
KUBELET_FILES = (("kubelet-config", "/var/lib/kubelet/config.yaml"),
                 ("kubelet-flags", "/var/lib/kubelet/kubeadm-flags.env"))
REPO_FILES = ("/etc/apt/sources.list.d/kubernetes.list", "/etc/yum.repos.d/kubernetes.repo")
PACKAGES = ("kubeadm", "kubelet", "kubectl")
COMMAND_TIMEOUT = 30.0
# What SshTransport's read_file (``sudo cat``) says of a missing file: it raises a plain TransportError
# with cat's stderr; LocalTransport, SandboxTransport and the fakes raise FileMissingError.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]", re.ASCII)


@dataclass
class Captured:
    artefacts: list[SnapshotArtefact] = field(default_factory=list)
    packages: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> package -> version


def capture(app: AppContext, cluster: ClusterRecord, *, inventory: Mapping[str, Any],
            kubeadm_config: Mapping[str, str] | None, store: SnapshotStore, directory: Path) -> Captured:
    captured = Captured()
    if kubeadm_config is not None:
        text = "".join(f"# {key}\n{value}\n" if len(kubeadm_config) > 1 else value
                       for key, value in sorted(kubeadm_config.items()))
        _keep(captured, store, directory, node="api", kind="kubeadm-config",
              node_path="configmap:kube-system/kubeadm-config", name="kubeadm-config.yaml", data=text.encode())
    for node in sorted(str(n["name"]) for n in inventory.get("nodes", []) if n.get("control_plane")):
        _capture_node(captured, app.transport(cluster, node, inventory=inventory), node=node, store=store,
                      directory=directory)
    return captured


def _capture_node(captured: Captured, transport: NodeTransport, *, node: str, store: SnapshotStore,
                  directory: Path) -> None:
    for name in _manifest_names(transport):
        _maybe_file(captured, transport, node=node, kind="manifest", node_path=f"{MANIFESTS}/{name}", store=store,
                    directory=directory)
    for kind, path in KUBELET_FILES:
        _maybe_file(captured, transport, node=node, kind=kind, node_path=path, store=store, directory=directory)
    for path in REPO_FILES:
        _maybe_file(captured, transport, node=node, kind="repo-config", node_path=path, store=store,
                    directory=directory)
    listing, versions = _packages(transport)
    if listing is not None:
        captured.packages[node] = versions
        _keep(captured, store, directory, node=node, kind="packages", node_path=listing[0], name="packages.txt",
              data=listing[1].encode())


def _manifest_names(transport: NodeTransport) -> list[str]:
    done = transport.run(["ls", "-1", MANIFESTS], COMMAND_TIMEOUT)
    if not done.ok:
        return list(KNOWN_MANIFESTS)
    names = [n.strip() for n in done.stdout.splitlines()]
    return sorted(n for n in names if n.endswith((".yaml", ".yml", ".json")) and "/" not in n and not n.startswith("."))


def _maybe_file(captured: Captured, transport: NodeTransport, *, node: str, kind: str, node_path: str,
                store: SnapshotStore, directory: Path) -> None:
    """Keep a node file when it is there; only a missing one is skipped, any other failure is an error."""
    try:
        data = transport.read_file(node_path)
    except FileMissingError:
        return
    except NodeUnreachableError:
        raise
    except TransportError as e:  # every transport says "missing" with FileMissingError (ssh: by exit code)
        raise NodeFileError(f"{node}: cannot read {node_path} for the snapshot: {e.message}; "
                            "nothing was recorded") from e
    _keep(captured, store, directory, node=node, kind=kind, node_path=node_path,
          name=node_path.lstrip("/").replace("/", "_"), data=data)


def _keep(captured: Captured, store: SnapshotStore, directory: Path, *, node: str, kind: str, node_path: str,
          name: str, data: bytes) -> None:
    stored = store.put_file(directory, f"artefacts/{safe_name(node)}/{_unused(captured, node, safe_name(name))}",
                            data)
    captured.artefacts.append(SnapshotArtefact(node=node, kind=kind, node_path=node_path,
                                               stored_path=str(stored.path), sha256=stored.sha256, size=stored.size))


def safe_name(name: str) -> str:
    """A store file name for any node file name: characters outside [A-Za-z0-9._-] become '_', and it
    starts with a letter or digit (never hidden, never '..')."""
    cleaned = _UNSAFE.sub("_", name)[:200]
    return cleaned if cleaned[:1].isalnum() else f"x{cleaned}"


def _unused(captured: Captured, node: str, name: str) -> str:
    """``name``, or ``name-2``, ... when two node files sanitise to the same name."""
    taken = {Path(a.stored_path).name for a in captured.artefacts if a.node == node}
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _packages(transport: NodeTransport) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """(("command:...", output), {package: version}) from dpkg-query, else rpm; (None, {}) when neither is there."""
    for argv in (["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", *PACKAGES],
                 ["rpm", "-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n", *PACKAGES]):
        done = transport.run(argv, COMMAND_TIMEOUT)
        if done.exit_code == 127 or (not done.stdout.strip() and not done.ok):
            continue
        versions: dict[str, str] = {}
        for line in done.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in PACKAGES:
                versions[parts[0]] = parts[1]
        return (f"command:{argv[0]}", done.stdout), versions
    return None, {}
