"""Read-only ``rpm`` for a RHEL sandbox node's package database (what the simulated dnf installed).

``rpm -q NAME...``, ``rpm -qa [PATTERN...]`` and ``--qf``/``--queryformat`` answer from the node's
package database with rpm's formats, messages and exit codes: a package that is not installed is
reported on stdout (``package kubeadm is not installed``) and the exit code counts those. The node
only knows the Kubernetes packages. Anything that would change packages (``-i``, ``-U``, ``-e``,
``--import`` ...) is refused: packages change through dnf.
"""

from __future__ import annotations

import fnmatch
import re

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.node.tools.yum_repos import ARCH

VERSION_TEXT = "RPM version 4.16.1.3"  # RHEL 9's
DEFAULT_FORMAT = "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\\n"
SUMMARIES = {
    "kubeadm": "Command-line utility for administering a Kubernetes cluster",
    "kubelet": "Node agent for Kubernetes clusters",
    "kubectl": "Command-line utility for interacting with a Kubernetes cluster",
}
_TAG = re.compile(r"%(-?\d*)\{([A-Za-z_]+)(?::[a-z]+)?\}")


def tags(pkg: machine.Package) -> dict[str, str]:
    version, _, release = pkg.version.partition("-")
    nvr = f"{pkg.name}-{version}-{release}"
    return {"NAME": pkg.name, "VERSION": version, "RELEASE": release, "ARCH": ARCH, "EPOCH": "(none)",
            "EPOCHNUM": "0", "EVR": pkg.version, "NVR": nvr, "NEVR": nvr, "NVRA": f"{nvr}.{ARCH}",
            "NEVRA": f"{nvr}.{ARCH}", "SUMMARY": SUMMARIES.get(pkg.name, ""), "VENDOR": "(none)",
            "LICENSE": "Apache-2.0", "URL": "https://kubernetes.io", "PACKAGER": "(none)",
            "SOURCERPM": f"{pkg.name}-{version}-{release}.src.rpm"}


def unknown_tag(fmt: str) -> str | None:
    """The first tag of a query format that the sandbox's rpm does not know, or None."""
    known = tags(machine.Package("x", "0-0", hold=False))
    return next((m.group(2) for m in _TAG.finditer(fmt) if m.group(2).upper() not in known), None)


def render(fmt: str, pkg: machine.Package) -> str:
    """The query format filled in for a package (its tags checked with :func:`unknown_tag` first)."""
    values = tags(pkg)
    text = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}.get(m.group(1), m.group(1)), fmt)

    def sub(m: re.Match[str]) -> str:
        value, width = values[m.group(2).upper()], m.group(1)
        if not width or width == "-":
            return value
        n = int(width)
        return value.ljust(-n) if n < 0 else value.rjust(n)

    return _TAG.sub(sub, text)


def rpm(node: Node, args: list[str]) -> int:
    if args == ["--version"]:
        node.say(VERSION_TEXT)
        return 0
    fmt, query, everything, names = DEFAULT_FORMAT, False, False, []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("--qf", "--queryformat"):
            fmt, i = (args[i] if i < len(args) else ""), i + 1
        elif arg.startswith(("--qf=", "--queryformat=")):
            fmt = arg.split("=", 1)[1]
        elif arg in ("--query", "-q"):
            query = True
        elif arg in ("--all", "-a"):
            everything = True
        elif re.fullmatch(r"-[qa]+", arg):
            query, everything = True, everything or "a" in arg
        elif arg.startswith("-"):
            return _refuse(node, arg)
        else:
            names.append(arg)
    if not query:
        return _refuse(node, " ".join(args) or "no action")
    if everything:
        return _all(node, names, fmt)
    if not names:
        node.warn("rpm: no arguments given for query")
        return 1
    return _query(node, names, fmt)


def _query(node: Node, names: list[str], fmt: str) -> int:
    pkgs = machine.packages(node.layout)
    missing = 0
    for name in names:
        pkg = pkgs.get(name)
        if pkg is None:
            node.say(f"package {name} is not installed")
            missing += 1
            continue
        if not _emit(node, fmt, pkg):
            return 1
    return min(missing, 255)


def _all(node: Node, patterns: list[str], fmt: str) -> int:
    for pkg in sorted(machine.packages(node.layout).values(), key=lambda p: p.name):
        nevra = f"{pkg.name}-{pkg.version}.{ARCH}"
        if patterns and not any(fnmatch.fnmatchcase(pkg.name, p) or fnmatch.fnmatchcase(nevra, p) for p in patterns):
            continue
        if not _emit(node, fmt, pkg):
            return 1
    return 0


def _emit(node: Node, fmt: str, pkg: machine.Package) -> bool:
    bad = unknown_tag(fmt)
    if bad is not None:
        node.warn(f'error: incorrect format: unknown tag: "{bad}"')
        return False
    node.out.write(render(fmt, pkg))
    node.out.flush()
    return True


def _refuse(node: Node, action: str) -> int:
    node.warn(f"rpm: {action}: not supported on sandbox node {node.name}: the sandbox's rpm only queries its "
              "package database (rpm -q, -qa, --qf; install and remove packages with dnf)")
    return 1
