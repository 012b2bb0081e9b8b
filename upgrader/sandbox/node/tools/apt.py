"""Simulated ``apt-get`` and ``apt-mark`` for the pkgs.k8s.io packages kubeadm, kubelet and kubectl.

They follow apt's rules that upgrades trip over: the per-minor repository only offers its own
minor (so the source list must move first, then ``apt-get update``), held packages are not changed
without ``--allow-change-held-packages`` and downgrades need ``--allow-downgrades`` under ``-y``
(checked in that order: downgrades first; the rollback's ``apt-get install -y --allow-downgrades
kubeadm=1.31.4-1.1`` goes back a minor once the source list points at it again).
Messages and exit codes (100 for errors) are apt's.
"""

from __future__ import annotations

import re

from upgrader.domain.versions import Minor
from upgrader.node_layout import NodeLayout
from upgrader.sandbox import releases
from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node

_REPO = re.compile(r"https://pkgs\.k8s\.io/core:/stable:/(v\d+\.\d+)/deb/")
CDN = "https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes:/core:/stable:/{minor}/deb"
HEADER = "Reading package lists...\nBuilding dependency tree...\nReading state information..."
SIZES = {"kubeadm": "10.4 MB", "kubelet": "15.2 MB", "kubectl": "10.9 MB"}


def source_minor(layout: NodeLayout) -> str | None:
    m = _REPO.search(machine.read_text(layout, machine.SOURCES))
    return m.group(1) if m else None


def available(layout: NodeLayout) -> list[str]:
    """Debian versions the last `apt-get update` saw for the Kubernetes packages, oldest first."""
    minor = machine.apt_lists(layout).get("minor")
    return [v.deb for v in releases.patches(Minor.parse(minor))] if minor else []


VERSION = "apt 2.6.1 (amd64)"  # Debian 12's


def apt_get(node: Node, args: list[str]) -> int:
    if args in (["--version"], ["-v"]):  # what tools probe to find which package manager a node has
        node.say(f"{VERSION}\nSupported modules:\n*Ver: Standard .deb\n*Pkg:  Debian dpkg interface (Priority 30)")
        return 0
    opts = {a for a in args if a.startswith("-")}
    words = [a for a in args if not a.startswith("-")]
    if not words:
        node.warn("E: No command given")  # apt-get with no verb prints its help; keep it short
        return 100
    verb, names = words[0], words[1:]
    if verb == "update":
        return _update(node)
    if verb == "install":
        return _install(node, names, opts)
    node.warn(f"E: Invalid operation {verb}")
    return 100


def _update(node: Node) -> int:
    minor = source_minor(node.layout)
    node.say("Hit:1 http://deb.debian.org/debian bookworm InRelease")
    if minor is None:
        machine.save_apt_lists(node.layout, None)
        node.say("Reading package lists...")
        return 0
    cdn = CDN.format(minor=minor)
    if not releases.patches(Minor.parse(minor)):
        node.say(f"Err:2 {cdn}  InRelease\n  403  Forbidden [IP: 3.167.227.100 443]")
        node.say("Reading package lists...")
        node.warn(f"E: Failed to fetch {cdn}/InRelease  403  Forbidden [IP: 3.167.227.100 443]")
        node.warn(f"E: The repository 'https://pkgs.k8s.io/core:/stable:/{minor}/deb  InRelease' is not signed.")
        return 100
    node.say(f"Get:2 {cdn}  InRelease [1,192 B]\nGet:3 {cdn}  Packages [4,865 B]")
    node.say("Fetched 6,057 B in 1s (7,011 B/s)\nReading package lists...")
    machine.save_apt_lists(node.layout, minor)
    return 0


def _install(node: Node, names: list[str], opts: set[str]) -> int:
    node.say(HEADER)
    installed = machine.packages(node.layout)
    offered = available(node.layout)
    wanted: dict[str, str] = {}
    for spec in names:
        name, _, version = spec.partition("=")
        if name not in machine.K8S_PACKAGES:
            node.warn(f"E: Unable to locate package {name}")
            return 100
        if version and version not in offered:
            node.warn(f"E: Version '{version}' for '{name}' was not found")
            return 100
        if not offered:
            node.warn(f"E: Package '{name}' has no installation candidate")
            return 100
        wanted[name] = version or offered[-1]
    return _apply(node, installed, wanted, opts)


def _apply(node: Node, installed: dict[str, machine.Package], wanted: dict[str, str], opts: set[str]) -> int:
    offered = available(node.layout)
    same = [n for n, v in wanted.items() if n in installed and installed[n].version == v]
    for name in same:
        node.say(f"{name} is already the newest version ({wanted[name]}).")
    changes = {n: v for n, v in wanted.items() if n not in same}
    down = [n for n, v in changes.items() if n in installed and offered.index(v) < _rank(offered, installed[n].version)]
    up = [n for n in changes if n not in down]
    held = [n for n in changes if n in installed and installed[n].hold]
    assume_yes = bool(opts & {"-y", "--yes", "--assume-yes", "-qy", "-yq"})
    _summary(node, up, down, held)
    if not changes:
        return 0
    # apt's fail-safe (apt-private/private-install.cc): under -y, downgrades are checked before holds
    if down and assume_yes and "--allow-downgrades" not in opts:
        node.warn("E: Packages were downgraded and -y was used without --allow-downgrades.")
        return 100
    if held and assume_yes and "--allow-change-held-packages" not in opts:
        node.warn("E: Held packages were changed and -y was used without --allow-change-held-packages.")
        return 100
    if not assume_yes:
        node.say("Do you want to continue? [Y/n] Abort.")
        return 1
    _unpack(node, installed, changes)
    return 0


def _rank(offered: list[str], version: str) -> int:
    """Position of an installed version among the offered ones (older minors sort first)."""
    if version in offered:
        return offered.index(version)
    return -1 if releases.parse_package(version) < releases.parse_package(offered[0]) else len(offered)


def _summary(node: Node, up: list[str], down: list[str], held: list[str]) -> None:
    if held:
        node.say("The following held packages will be changed:\n  " + " ".join(held))
    if up:
        node.say("The following packages will be upgraded:\n  " + " ".join(up))
    if down:
        node.say("The following packages will be DOWNGRADED:\n  " + " ".join(down))
    downgraded = f", {len(down)} downgraded" if down else ""
    node.say(f"{len(up)} upgraded, 0 newly installed{downgraded}, 0 to remove and 0 not upgraded.")


def _unpack(node: Node, installed: dict[str, machine.Package], changes: dict[str, str]) -> None:
    minor = machine.apt_lists(node.layout).get("minor", "")
    for i, (name, version) in enumerate(changes.items(), start=1):
        node.say(f"Get:{i} {CDN.format(minor=minor)}  {name} {version} [{SIZES[name]}]")
    node.say("(Reading database ... 60123 files and directories currently installed.)")
    for name, version in changes.items():
        old = installed[name].version if name in installed else None
        node.say(f"Preparing to unpack .../{name}_{version}_amd64.deb ...")
        node.say(f"Unpacking {name} ({version})" + (f" over ({old}) ..." if old else " ..."))
        installed[name] = machine.Package(name, version, installed[name].hold if name in installed else False)
    for name, version in changes.items():
        node.say(f"Setting up {name} ({version}) ...")
    machine.save_packages(node.layout, installed)
    if "kubelet" in changes:  # the package ships kubelet.service: systemd wants a daemon-reload
        unit = machine.kubelet_unit(node.layout)
        machine.save_kubelet_unit(node.layout, {**unit, "unit_changed": True})


def apt_mark(node: Node, args: list[str]) -> int:
    if not args:
        node.warn("E: No command given")
        return 100
    verb, names = args[0], [a for a in args[1:] if not a.startswith("-")]
    pkgs = machine.packages(node.layout)
    if verb == "showhold":
        for name in sorted(n for n, p in pkgs.items() if p.hold):
            node.say(name)
        return 0
    if verb not in ("hold", "unhold"):
        node.warn(f"E: Invalid operation {verb}")
        return 100
    for name in names:
        if name not in pkgs:
            node.warn(f"E: Unable to locate package {name}")
            return 100
    for name in names:
        _mark(node, pkgs, name, hold=verb == "hold")
    machine.save_packages(node.layout, pkgs)
    return 0


def _mark(node: Node, pkgs: dict[str, machine.Package], name: str, *, hold: bool) -> None:
    pkg = pkgs[name]
    if pkg.hold == hold:
        node.say(f"{name} was already set on hold." if hold else f"{name} was already not on hold.")
        return
    pkgs[name] = machine.Package(name, pkg.version, hold)
    node.say(f"{name} set on hold." if hold else f"Canceled hold on {name}.")
