"""What this kubeadm is: the node's installed kubeadm package, ``kubeadm version`` and ``config images``.

Its version is the installed kubeadm package of the node, so upgrading kubeadm means installing the
package, as on a real node.
"""

from __future__ import annotations

import json

import yaml

from upgrader.domain.versions import Version
from upgrader.errors import InvalidVersionError
from upgrader.sandbox import releases
from upgrader.sandbox.node import images as images_
from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node, option


def installed_version(node: Node) -> Version:
    pkg = machine.packages(node.layout).get("kubeadm")
    if pkg is None:
        raise SystemExit("kubeadm: command not found")
    return releases.parse_package(pkg.version)


def version(node: Node, args: list[str]) -> int:
    info = releases.version_info(installed_version(node))
    fmt = option(args, "-o", "--output")
    if fmt == "json":
        node.say(json.dumps({"clientVersion": info}, indent=2))
    elif fmt == "yaml":
        node.say(yaml.safe_dump({"clientVersion": info}, sort_keys=False).rstrip())
    elif fmt == "short":
        node.say(info["gitVersion"])
    else:
        fields = ", ".join(f'{k[0].upper() + k[1:]}:"{v}"' for k, v in info.items())
        node.say(f"kubeadm version: &version.Info{{{fields}}}")
    return 0


def images(node: Node, args: list[str], *, pull: bool) -> int:
    text = option(args, "--kubernetes-version") or str(installed_version(node))
    try:
        target = Version.parse(text)
    except InvalidVersionError:
        node.warn(f'could not convert "{text}" to a Kubernetes version\nTo see the stack trace of this error '
                  "execute with --v=5 or higher")
        return 1
    pulled: list[str] = []
    for image in releases.images(target):
        if pull and not releases.is_released(target):  # the registry has no such tag
            node.warn(f'failed to pull image "{image}": output: level=fatal msg="pulling image: rpc error: code = '
                      f'NotFound desc = failed to pull and unpack image \\"{image}\\": {image}: not found"\n, error: '
                      "exit status 1\nTo see the stack trace of this error execute with --v=5 or higher")
            return 1
        node.say(f"[config/images] Pulled {image}" if pull else image)
        pulled.append(image)
    if pull:  # containerd now has them: ctr and crictl list them
        images_.record_pulled(node.layout, pulled)
    return 0
