"""A control-plane binary's ``--help``, read from its image through the node's containerd (``ctr``).

kubeadm nodes run the control plane as static pods, so the binaries upgrader asks about are in the
images (``registry.k8s.io/kube-apiserver:vX``), not on the host. The image is pulled when the node does
not hold it yet (kubeadm would pull it for the upgrade anyway) and run once, exec form, removed after.
Everything is an argv list; the help text is returned as printed, for the pure parser in
:mod:`upgrader.domain.emulation`.
"""

from __future__ import annotations

import os

from upgrader.domain.versions import Version
from upgrader.errors import TransportError
from upgrader.ports import NodeTransport

NAMESPACE = "k8s.io"
DEFAULT_REPOSITORY = "registry.k8s.io"
PULL_TIMEOUT = 600.0  # a first pull of a control-plane image over a slow link


class ComponentHelpError(TransportError):
    """The binary's help could not be read on the node (no ctr, the image would not pull or run)."""

    exit_code = 6


def image(component: str, version: Version, repository: str | None = None) -> str:
    return f"{(repository or DEFAULT_REPOSITORY).rstrip('/')}/{component}:{version}"


def images_list() -> list[str]:
    return ["ctr", "-n", NAMESPACE, "images", "ls", "-q"]


def images_pull(ref: str) -> list[str]:
    return ["ctr", "-n", NAMESPACE, "images", "pull", ref]


def run_help(ref: str, component: str, container_id: str) -> list[str]:
    return ["ctr", "-n", NAMESPACE, "run", "--rm", ref, container_id, component, "--help"]


def container_id(component: str, version: Version) -> str:
    """Unique per process: two upgraders asking at once must not collide on the container name."""
    return f"upgrader-help-{component}-{str(version).replace('.', '-')}-{os.getpid()}"


def read_help(node: NodeTransport, *, component: str, version: Version, repository: str | None = None,
              timeout: float = 120.0) -> str:
    """``COMPONENT --help`` from the node's copy of the component's image at ``version``."""
    ref = image(component, version, repository)
    listed = node.run(images_list(), timeout)
    if not listed.ok:
        raise ComponentHelpError(f"`ctr images ls` failed (exit {listed.exit_code}): {_last(listed.stderr)}")
    if ref not in listed.stdout.split():
        pulled = node.run(images_pull(ref), max(timeout, PULL_TIMEOUT))
        if not pulled.ok:
            raise ComponentHelpError(f"could not pull {ref} (exit {pulled.exit_code}): {_last(pulled.stderr)}")
    shown = node.run(run_help(ref, component, container_id(component, version)), timeout)
    text = shown.stdout + shown.stderr  # cobra prints usage to stdout, some builds to stderr
    if not shown.ok and "--" not in text:
        raise ComponentHelpError(f"{component} --help in {ref} failed (exit {shown.exit_code}): {_last(text)}")
    return text


def _last(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
