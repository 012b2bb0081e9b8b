"""Commands a real node has that would act on the host if the sandbox let them through.

Each is either simulated where the real answer is cheap and safe (``apt update``/``apt install`` as
apt-get does them, ``apt-cache madison|policy``, ``kubelet --version``, ``hostname``, ``sudo`` as
root), or refused: the command fails like an unsupported one (a message on stderr naming the
sandbox node, exit code 127, see :mod:`.guards`) and the host's binary of that name is never run.
"""

from __future__ import annotations

import os
import re

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node, apt
from upgrader.sandbox.node.tools.guards import refuse

APT_WARNING = "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n"


def apt_front(node: Node, args: list[str]) -> int:
    """``apt update`` / ``apt install``: apt-get's work, with apt's warning for scripts."""
    words = [a for a in args if not a.startswith("-")]
    if not words or words[0] not in ("update", "install"):
        return refuse("apt")(node, args)
    node.warn(APT_WARNING)
    return apt.apt_get(node, args)


def apt_cache(node: Node, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    verb, names = (words[0], words[1:]) if words else ("", [])
    if verb not in ("madison", "policy"):
        node.warn(f"E: apt-cache {verb or '(no command)'} is not simulated on sandbox node {node.name} "
                  "(madison and policy are)")
        return 100
    offered = list(reversed(apt.available(node.layout)))  # newest first
    installed = machine.packages(node.layout)
    repo = f"https://pkgs.k8s.io/core:/stable:/{machine.apt_lists(node.layout).get('minor')}/deb"
    for name in names:
        if name not in machine.K8S_PACKAGES:
            node.warn(f"N: Unable to locate package {name}")
            continue
        if verb == "madison":
            for version in offered:
                node.say(f"{name:>10} | {version} | {repo}  Packages")
        else:
            _policy(node, name, installed.get(name), offered, repo)
    return 0


def _policy(node: Node, name: str, pkg: machine.Package | None, offered: list[str], repo: str) -> None:
    current = pkg.version if pkg else None
    node.say(f"{name}:\n  Installed: {current or '(none)'}\n  Candidate: {offered[0] if offered else '(none)'}")
    node.say("  Version table:")
    for version in dict.fromkeys([*offered, *([current] if current else [])]):
        node.say(f" {'***' if version == current else '   '} {version} {500 if version in offered else 100}")
        if version in offered:
            node.say(f"        500 {repo}  Packages")
        if version == current:
            node.say("        100 /var/lib/dpkg/status")


def kubelet(node: Node, args: list[str]) -> int:
    if args in (["--version"], ["version"]):
        pkg = machine.packages(node.layout).get("kubelet")
        node.say(f"Kubernetes v{pkg.version.split('-', 1)[0]}" if pkg else "")
        return 0
    return refuse("kubelet")(node, args)


def hostname(node: Node, args: list[str]) -> int:
    if args and args[0] not in ("-s", "--short", "-f", "--fqdn", "--long"):
        node.warn(f"hostname: {' '.join(args)}: not supported on sandbox node {node.name} (the name is "
                  "fixed; the host's hostname is never changed)")
        return 1
    name = machine.read_text(node.layout, "/etc/hostname").strip() or node.name
    node.say(name)
    return 0


def sudo(node: Node, args: list[str]) -> int:
    """Everything on a sandbox node already runs as root: run the command itself, on this node's PATH."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "--":
        flag = args[i]
        if flag in ("-u", "--user") or flag.startswith(("-u", "--user=")):
            if flag in ("-u", "--user"):
                user, i = (args[i + 1] if i + 1 < len(args) else ""), i + 2
            else:
                user, i = (flag.split("=", 1)[1] if flag.startswith("--") else flag[2:]), i + 1
            if user not in ("root", "#0"):
                node.warn(f"sudo: sandbox node {node.name} runs everything as root (not as {user or '?'})")
                return 1
            continue
        if flag not in ("-E", "-H", "-n", "-S", "-i", "-s", "--preserve-env", "--login", "--non-interactive"):
            node.warn(f"sudo: {flag}: option not supported on sandbox node {node.name}")
            return 1
        i += 1
    command = args[i + 1:] if i < len(args) and args[i] == "--" else args[i:]
    while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):  # sudo VAR=value command
        name, _, value = command.pop(0).partition("=")
        if name == "PATH":  # the node's tools come first on its PATH, never the host's
            node.warn(f"sudo: sandbox node {node.name} does not let a command change its PATH")
            return 1
        os.environ[name] = value
    if not command:
        node.warn("usage: sudo [-EHns] [-u user] command [arg ...]")
        return 1
    try:
        os.execvp(command[0], command)
    except OSError:
        node.warn(f"sudo: {command[0]}: command not found")
        return 1
    return 1  # not reached
