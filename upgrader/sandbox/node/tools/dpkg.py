"""Read-only ``dpkg`` and ``dpkg-query`` for the node's package state (what the simulated apt installed).

``dpkg -l``, ``dpkg -s``, ``dpkg --get-selections``, ``dpkg --print-architecture`` and
``dpkg-query -W/-l/-s [-f FORMAT]`` answer from the node's package database, with dpkg's formats,
messages and exit codes; the node only knows the Kubernetes packages. Anything that would change
packages (``dpkg -i``, ``-r``, ``--configure`` ...) is refused: packages change through apt-get.
"""

from __future__ import annotations

import fnmatch
import re

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node

DESCRIPTIONS = {
    "kubeadm": "Command-line utility for administering a Kubernetes cluster",
    "kubelet": "Node agent for Kubernetes clusters",
    "kubectl": "Command-line utility for interacting with a Kubernetes cluster",
}
LIST_HEADER = ("Desired=Unknown/Install/Remove/Purge/Hold\n"
               "| Status=Not/Inst/Conf-files/Unpacked/halF-conf/Half-inst/trig-aWait/Trig-pend\n"
               "|/ Err?=(none)/Reinst-required (Status,Err: uppercase=bad)")
DEFAULT_FORMAT = "${binary:Package}\\t${Version}\\n"
_FIELD = re.compile(r"\$\{([^};]+)(?:;(-?\d+))?\}")


def fields(pkg: machine.Package) -> dict[str, str]:
    want = "hold" if pkg.hold else "install"
    return {
        "Package": pkg.name, "binary:Package": pkg.name, "Version": pkg.version, "Architecture": "amd64",
        "Status": f"{want} ok installed", "db:Status-Abbrev": f"{want[0]}i ", "db:Status-Want": want,
        "db:Status-Status": "installed", "db:Status-Eflag": "ok", "Priority": "optional", "Section": "admin",
        "Maintainer": "Kubernetes Authors <dev@kubernetes.io>", "Description": DESCRIPTIONS.get(pkg.name, ""),
        "Source": "kubernetes", "Homepage": "https://kubernetes.io",
    }


def _matches(node: Node, patterns: list[str]) -> tuple[list[machine.Package], int]:
    pkgs = machine.packages(node.layout)
    if not patterns:
        return [pkgs[n] for n in sorted(pkgs)], 0
    found: dict[str, machine.Package] = {}
    code = 0
    for pattern in patterns:
        hits = [pkgs[n] for n in sorted(pkgs) if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            node.warn(f"dpkg-query: no packages found matching {pattern}")
            code = 1
        found |= {p.name: p for p in hits}
    return list(found.values()), code


def list_packages(node: Node, patterns: list[str]) -> int:
    pkgs, code = _matches(node, patterns)
    if not pkgs:
        return code
    name_w = max(14, *(len(p.name) for p in pkgs))
    ver_w = max(12, *(len(p.version) for p in pkgs))
    desc_w = max(10, 80 - (4 + name_w + 1 + ver_w + 1 + 12 + 1))
    node.say(LIST_HEADER)
    node.say(f"||/ {'Name':<{name_w}} {'Version':<{ver_w}} {'Architecture':<12} Description")
    node.say(f"+++-{'=' * name_w}-{'=' * ver_w}-{'=' * 12}-{'=' * desc_w}")
    for p in pkgs:
        f = fields(p)
        node.say(f"{f['db:Status-Abbrev']} {p.name:<{name_w}} {p.version:<{ver_w}} {'amd64':<12} "
                 f"{f['Description'][:desc_w]}")
    return code


def status(node: Node, names: list[str]) -> int:
    if not names:
        node.warn("dpkg-query: error: --status needs at least one package name argument\n\n"
                  "Use --help for help about querying packages.")
        return 2
    pkgs = machine.packages(node.layout)
    code = 0
    for i, name in enumerate(names):
        if name not in pkgs:
            node.warn(f"dpkg-query: package '{name}' is not installed and no information is available\n"
                      "Use dpkg --info (= dpkg-deb --info) to examine archive files.")
            code = 1
            continue
        f = fields(pkgs[name])
        keys = ("Package", "Status", "Priority", "Section", "Maintainer", "Architecture", "Source", "Version",
                "Description", "Homepage")
        node.say(("\n" if i else "") + "\n".join(f"{k}: {f[k]}" for k in keys))
    return code


def show(node: Node, patterns: list[str], fmt: str) -> int:
    pkgs, code = _matches(node, patterns)
    template = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), fmt)
    for p in pkgs:
        f = fields(p)

        def sub(m: re.Match[str], f: dict[str, str] = f) -> str:
            value = f.get(m.group(1), "")
            width = int(m.group(2)) if m.group(2) else 0
            return value.rjust(-width) if width < 0 else value.ljust(width)

        node.out.write(_FIELD.sub(sub, template))
    node.out.flush()
    return code


def _refuse(node: Node, tool: str, action: str) -> int:
    node.warn(f"{tool}: error: {action} is not supported on sandbox node {node.name}: the sandbox's dpkg only "
              "reads its package database (install and remove packages with apt-get)")
    return 2


def dpkg(node: Node, args: list[str]) -> int:
    if not args:
        node.warn("dpkg: error: need an action option\n\nType dpkg --help for help about installing and "
                  "deinstalling packages [*];\nUse 'apt' or 'aptitude' for user-friendly package management;")
        return 2
    action, rest = args[0], args[1:]
    if action in ("-l", "--list"):
        return list_packages(node, rest)
    if action in ("-s", "--status"):
        return status(node, rest)
    if action == "--print-architecture":
        node.say("amd64")
        return 0
    if action == "--get-selections":
        pkgs, code = _matches(node, rest)
        for p in pkgs:
            node.say(f"{p.name:<48}{'hold' if p.hold else 'install'}")
        return code
    return _refuse(node, "dpkg", action)


def dpkg_query(node: Node, args: list[str]) -> int:
    fmt, rest, action = DEFAULT_FORMAT, [], None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-f", "--showformat"):
            fmt, i = (args[i + 1] if i + 1 < len(args) else ""), i + 2
            continue
        if arg.startswith("--showformat="):
            fmt = arg.split("=", 1)[1]
        elif arg.startswith("-f") and len(arg) > 2:
            fmt = arg[2:]
        elif arg in ("-W", "--show", "-l", "--list", "-s", "--status"):
            action = arg
        else:
            rest.append(arg)
        i += 1
    if action in ("-W", "--show"):
        return show(node, rest, fmt)
    if action in ("-l", "--list"):
        return list_packages(node, rest)
    if action in ("-s", "--status"):
        return status(node, rest)
    return _refuse(node, "dpkg-query", " ".join(args) or "no action")
