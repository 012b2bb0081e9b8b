"""``crictl`` on a sandbox node, read-only: ``crictl images``, ``crictl ps [-a] [--name RE]`` (also ``-o json``)
and ``crictl logs [--tail N] ID``.

The images are the node's (see :mod:`upgrader.sandbox.node.images`, the same list as ``ctr -n k8s.io
images ls``); the containers are the static pods the node's kubelet runs (a manifest moved away is
listed until the kubelet has stopped its pod, as on a real node), Running, or Exited when it crash-loops
(``ps -a`` only, with its attempt count; ``logs`` shows why it exited); on a node
root where no kubelet ever ran, one container per manifest in ``/etc/kubernetes/manifests``. Anything
that would change the runtime (``rmi``, ``pull``, ``stop``, ``exec``...) is refused with a line on stderr.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from upgrader.sandbox.node import images, machine, manifests
from upgrader.sandbox.node.tools import Node, option


def main(node: Node, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-") and a not in ("json", "yaml", "table")]
    fmt = option(args, "-o", "--output") or "table"
    if words[:1] in (["images"], ["image"], ["img"]):
        return _images(node, fmt, quiet=any(a in ("-q", "--quiet") for a in args))
    if words[:1] == ["ps"]:
        return _ps(node, fmt, every=any(a in ("-a", "--all") for a in args), name=option(args, "--name"))
    if words[:1] == ["logs"]:
        return _logs(node, args)
    node.warn(f"crictl {' '.join(words[:1]) or '(no command)'}: not simulated on sandbox node {node.name} (it is "
              "read-only here: images and ps are)")
    return 1


def _image_id(ref: str) -> str:
    return images.digest(ref)


def _images(node: Node, fmt: str, *, quiet: bool) -> int:
    refs = images.present(node.layout)
    if fmt == "json":
        node.say(json.dumps({"images": [{"id": _image_id(r), "repoTags": [r], "repoDigests": [], "size": "0",
                                         "uid": None, "username": "", "spec": None, "pinned": False}
                                        for r in refs]}, indent=2))
        return 0
    if quiet:
        for r in refs:
            node.say(_image_id(r))
        return 0
    node.say(f"{'IMAGE':<48}{'TAG':<20}{'IMAGE ID':<16}SIZE")
    for r in refs:
        name, tag = images.split(r)
        node.say(f"{name:<48}{tag:<20}{_image_id(r)[7:20]:<16}-")
    return 0


def _running(node: Node) -> dict[str, dict[str, Any]]:
    """component -> {"image", "started", "attempt", "state", "log"}: what the node's kubelet runs (and what
    exited); without a kubelet ever run on the node (a node root made without a supervisor), one running
    container per manifest."""
    published = machine.running_pods(node.layout)
    if published is not None:
        return {c: p for c, p in published.items() if c in manifests.COMPONENTS and isinstance(p, dict)}
    found = {}
    for component in manifests.COMPONENTS:
        pod, _ = manifests.read_node_manifest(node.layout, component)
        if pod is not None:
            found[component] = {"image": str(manifests.container(pod).get("image", "")), "started": 0.0}
    return found


def _containers(node: Node) -> list[dict[str, Any]]:
    found = []
    running = _running(node)
    for component in [c for c in manifests.COMPONENTS if c in running]:
        p = running[component]
        image = str(p.get("image", ""))
        found.append(_container(node, component, image, float(p.get("started", 0)), int(p.get("attempt", 0)),
                                exited=p.get("state") == "exited", log=str(p.get("log", ""))))
        for dead in p.get("dead") or []:  # earlier attempts the kubelet keeps: (started, attempt, log)
            if isinstance(dead, list) and len(dead) == 3:
                found.append(_container(node, component, image, float(dead[0]), int(dead[1]), exited=True,
                                        log=str(dead[2])))
    return found


def _container(node: Node, component: str, image: str, started: float, attempt: int, *, exited: bool,
               log: str) -> dict[str, Any]:
    cid = hashlib.sha256(f"{node.name}/{component}/{image}/{started}".encode()).hexdigest()
    return {"id": cid, "image": image, "name": component, "pod": f"{component}-{node.name}",
            "podId": hashlib.sha256(f"{node.name}/{component}".encode()).hexdigest(),
            "createdAt": str(int(started * 1e9)), "attempt": attempt, "exited": exited, "log": log}


def _ps(node: Node, fmt: str, *, every: bool, name: str | None) -> int:
    found = [c for c in _containers(node) if (every or not c["exited"]) and (name is None or
                                                                           re.search(name, c["name"]))]
    if fmt == "json":
        node.say(json.dumps({"containers": [
            {"id": c["id"], "podSandboxId": c["podId"], "metadata": {"name": c["name"], "attempt": c["attempt"]},
             "createdAt": c["createdAt"],
             "image": {"image": c["image"]}, "imageRef": _image_id(c["image"]),
             "state": "CONTAINER_EXITED" if c["exited"] else "CONTAINER_RUNNING",
             "labels": {"io.kubernetes.container.name": c["name"], "io.kubernetes.pod.name": c["pod"],
                        "io.kubernetes.pod.namespace": "kube-system"}} for c in found]}, indent=2))
        return 0
    node.say(f"{'CONTAINER':<16}{'IMAGE':<16}{'CREATED':<16}{'STATE':<10}{'NAME':<26}{'ATTEMPT':<10}"
             f"{'POD ID':<16}POD")
    for c in found:
        state = "Exited" if c["exited"] else "Running"
        node.say(f"{c['id'][:13]:<16}{_image_id(c['image'])[7:20]:<16}{'-':<16}{state:<10}{c['name']:<26}"
                 f"{c['attempt']!s:<10}{c['podId'][:13]:<16}{c['pod']}")
    return 0


def _logs(node: Node, args: list[str]) -> int:
    """``crictl logs [--tail N] ID``: an exited container's last words; a running one's log file."""
    tail = option(args, "--tail")
    words = [a for i, a in enumerate(args) if not a.startswith("-") and a != "logs" and
             not (i > 0 and args[i - 1] in ("--tail", "--since"))]
    if not words:
        node.warn('ID cannot be empty')
        return 1
    match = [c for c in _containers(node) if c["id"].startswith(words[0])]
    if len(match) != 1:
        node.warn(f'rpc error: code = NotFound desc = an error occurred when try to find container "{words[0]}": '
                  "not found")
        return 1
    c = match[0]
    text = c["log"] if c["exited"] else machine.read_text(node.layout, f"/var/log/pods/{c['name']}.log")
    lines = text.splitlines()
    if tail is not None and tail.lstrip("-").isdigit() and int(tail) >= 0:
        lines = lines[-int(tail):] if int(tail) else []
    for line in lines:
        node.warn(line)  # a container's stderr goes to crictl's stderr
    return 0
