"""Simulated ``dnf`` (and ``yum``, the same program on RHEL 9) for the pkgs.k8s.io packages kubeadm, kubelet
and kubectl, on a RHEL sandbox node.

It follows the dnf 4 rules an upgrade trips over: the repository of a minor only offers that minor
(see :mod:`.yum_repos`: edit kubernetes.repo's baseurl to move on); the install page's ``exclude=``
line hides the packages unless ``--disableexcludes=kubernetes``; ``install NAME-VERSION-RELEASE``
installs exactly that version, downgrading when it is older (dnf 4 does, unlike apt without
``--allow-downgrades``), while ``install NAME`` never goes down; ``downgrade`` steps back. Messages,
streams (dnf logs information on stdout, warnings and errors on stderr) and exit codes (1 for any
error) are dnf 4.14's, as on RHEL 9. ``-q`` silences the information, not the listings.

Verbs: ``install``, ``downgrade``, ``list``, ``makecache``, ``clean``; ``--version``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node, dnf_transaction, yum_repos
from upgrader.sandbox.node.tools.yum_repos import Offered, evr_key

_BUILT = "  Built    : Red Hat, Inc. <http://bugzilla.redhat.com/bugzilla> at"
VERSION_TEXT = (f"4.14.0\n  Installed: dnf-0:4.14.0-17.el9.noarch at Tue 05 Nov 2024 10:00:00 AM UTC\n"
                f"{_BUILT} Wed 25 Sep 2024 09:00:00 AM UTC\n\n"
                f"  Installed: rpm-0:4.16.1.3-34.el9.x86_64 at Tue 05 Nov 2024 10:00:00 AM UTC\n"
                f"{_BUILT} Mon 19 Aug 2024 09:00:00 AM UTC")
COMMANDS = {"install": "install", "in": "install", "downgrade": "downgrade", "dg": "downgrade", "list": "list",
            "ls": "list", "makecache": "makecache", "mc": "makecache", "clean": "clean"}
FLAGS = {"-y": "assume_yes", "--assumeyes": "assume_yes", "--assumeno": "assume_no", "-q": "quiet",
         "--quiet": "quiet", "--showduplicates": "show_duplicates", "--refresh": "refresh", "-C": "cache_only",
         "--cacheonly": "cache_only"}
HARMLESS = frozenset({"-v", "--verbose", "--best", "--nobest", "--noplugins", "--nogpgcheck", "--allowerasing",
                      "--skip-broken", "--color=never", "--nodocs"})
NARROWS = ("all", "installed", "available")
# dnf's other commands: real, but not simulated here (said so, rather than "No such command")
OTHER_COMMANDS = frozenset({"upgrade", "update", "up", "remove", "erase", "rm", "reinstall", "info", "search",
                            "repolist", "repoinfo", "check-update", "history", "versionlock", "mark", "autoremove",
                            "distro-sync", "provides", "repoquery", "upgrade-minimal", "swap", "module", "group"})


@dataclass
class Invocation:
    prog: str
    command: str | None = None
    words: list[str] = field(default_factory=list)
    disabled_excludes: set[str] = field(default_factory=set)
    assume_yes: bool = False
    assume_no: bool = False
    quiet: bool = False
    show_duplicates: bool = False
    refresh: bool = False
    cache_only: bool = False
    version: bool = False


def dnf(node: Node, args: list[str]) -> int:
    return run(node, "dnf", args)


def yum(node: Node, args: list[str]) -> int:
    return run(node, "yum", args)


def run(node: Node, prog: str, args: list[str]) -> int:
    inv = _parse(node, prog, args)
    if inv is None:
        return 1
    if inv.version:
        node.say(VERSION_TEXT)
        return 0
    if inv.command is None:
        node.say(f"usage: {prog} [options] COMMAND")
        node.warn("Error: No command given")  # real dnf prints its whole help here; this stays short
        return 1
    if inv.command in OTHER_COMMANDS:
        node.warn(f"{prog}: {inv.command} is not simulated on sandbox node {node.name} (install, downgrade, list, "
                  "makecache and clean are)")
        return 1
    if inv.command not in COMMANDS:
        node.warn(f"No such command: {inv.command}. Please use /usr/bin/{prog} --help\nIt could be a DNF plugin "
                  f"command, try: \"dnf install 'dnf-command({inv.command})'\"")
        return 1
    verb = COMMANDS[inv.command]
    if verb == "clean":
        return _clean(node, inv)
    if verb in ("install", "downgrade") and not inv.words:
        node.say(f"usage: {prog} {verb} [options] PACKAGE [PACKAGE ...]")
        node.warn("Command line error: the following arguments are required: PACKAGE")
        return 1
    try:
        repos = yum_repos.enabled_repos(node)
    except yum_repos.RepoConfigError as e:
        node.warn(f"Error: {e}")
        return 1
    if code := yum_repos.load_metadata(node, repos, refresh=inv.refresh, cache_only=inv.cache_only,
                                       quiet=inv.quiet):
        return code
    offered = yum_repos.offered(repos, disabled_excludes=inv.disabled_excludes)
    if verb == "makecache":
        _info(node, inv, "Metadata cache created.")
        return 0
    if verb == "list":
        return _list(node, inv, offered)
    if verb == "install":
        return _install(node, inv, offered)
    return _downgrade(node, inv, offered)


def _parse(node: Node, prog: str, args: list[str]) -> Invocation | None:
    inv = Invocation(prog)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        name, has_value, value = arg.partition("=")
        if name in ("--disableexcludes", "--disableexcludepkgs"):
            if not has_value:
                value, i = (args[i] if i < len(args) else ""), i + 1
            inv.disabled_excludes.update(v for v in value.split(",") if v)
        elif arg == "--version":
            inv.version = True
        elif arg in FLAGS:
            setattr(inv, FLAGS[arg], True)
        elif arg.startswith("-") and len(arg) > 2 and arg[1] != "-" and all(f"-{c}" in FLAGS for c in arg[1:]):
            for c in arg[1:]:  # -yq
                setattr(inv, FLAGS[f"-{c}"], True)
        elif arg in HARMLESS:
            continue
        elif arg.startswith("-"):
            node.warn(f"Command line error: {name}: not simulated on sandbox node {node.name} (it knows "
                      "-y, -q, -C, --refresh, --showduplicates, --disableexcludes)")
            return None
        elif inv.command is None:
            inv.command = arg
        else:
            inv.words.append(arg)
    return inv


def _answer(inv: Invocation) -> bool | None:
    """The confirmation the command line gives: --assumeno wins over -y, as in dnf; None: ask."""
    return False if inv.assume_no else (True if inv.assume_yes else None)


def _info(node: Node, inv: Invocation, text: str) -> None:
    if not inv.quiet:
        node.say(text)


def _install(node: Node, inv: Invocation, offered: list[Offered]) -> int:
    """dnf 4 ``install``: the newest match of each spec; a spec with a version installs exactly that one."""
    installed = machine.packages(node.layout)
    errors: list[str] = []
    changes: dict[str, Offered] = {}
    for spec in inv.words:
        hits = [o for o in offered if yum_repos.matches(spec, o.name, o.evr)]
        usable = [o for o in hits if not o.excluded]
        if not usable:
            why = "All matches were filtered out by exclude filtering for argument" if hits else "No match for argument"
            _info(node, inv, f"{why}: {spec}")
            errors.append(spec)
            continue
        for name in dict.fromkeys(o.name for o in usable):
            best = max((o for o in usable if o.name == name), key=lambda o: evr_key(o.evr))
            current = installed.get(name)
            never_down = yum_repos.names_only(spec, name)  # `install kubeadm` does not downgrade
            if current and (best.evr == current.version or (
                    never_down and evr_key(best.evr) < evr_key(current.version))):
                _info(node, inv, f"Package {name}-{current.version}.{yum_repos.ARCH} is already installed.")
                continue
            changes[name] = best
    if errors:
        node.warn(f"Error: Unable to find a match: {' '.join(errors)}")
        return 1
    return dnf_transaction.run(node, changes, answer=_answer(inv), quiet=inv.quiet)


def _downgrade(node: Node, inv: Invocation, offered: list[Offered]) -> int:
    """dnf 4 ``downgrade``: to the version given, or to the one just below the installed one."""
    installed = machine.packages(node.layout)
    usable = [o for o in offered if not o.excluded]
    marked = False
    changes: dict[str, Offered] = {}
    for spec in inv.words:
        hits = [o for o in usable if yum_repos.matches(spec, o.name, o.evr)]
        if not hits:
            _info(node, inv, f"No package {spec} available.")
            continue
        names = [n for n in dict.fromkeys(o.name for o in hits) if n in installed]
        if not names:
            _info(node, inv, f"Packages for argument {spec} available, but not installed.")
            continue
        marked = True
        for name in names:
            lower = [o for o in hits if o.name == name and evr_key(o.evr) < evr_key(installed[name].version)]
            if not lower:
                node.warn(f"Package {name} of lowest version already installed, cannot downgrade it.")
                continue
            changes[name] = max(lower, key=lambda o: evr_key(o.evr))
    if not marked:
        node.warn("Error: No packages marked for downgrade.")
        return 1
    return dnf_transaction.run(node, changes, answer=_answer(inv), quiet=inv.quiet)


def _list(node: Node, inv: Invocation, offered: list[Offered]) -> int:
    """``dnf list [--showduplicates] [all|installed|available] [PATTERN...]``: installed packages show the
    repository they came from as ``@kubernetes``; excluded ones are not available."""
    words = list(inv.words)
    narrow = words.pop(0) if words and words[0] in NARROWS else "all"
    installed = machine.packages(node.layout)

    def wanted(name: str, evr: str) -> bool:
        return not words or any(yum_repos.matches(p, name, evr) for p in words)

    inst = [(f"{p.name}.{yum_repos.ARCH}", p.version, "@kubernetes") for p in sorted(installed.values(),
            key=lambda p: p.name) if wanted(p.name, p.version)] if narrow in ("all", "installed") else []
    avail: list[tuple[str, str, str]] = []
    if narrow in ("all", "available"):
        for o in sorted((o for o in offered if not o.excluded and wanted(o.name, o.evr)),
                        key=lambda o: (o.name, evr_key(o.evr))):
            current = installed.get(o.name)
            newer = current is None or evr_key(o.evr) > evr_key(current.version)
            if (current is None or o.evr != current.version) and (inv.show_duplicates or newer):
                avail.append((f"{o.name}.{yum_repos.ARCH}", o.evr, o.repo))
        if not inv.show_duplicates:  # the newest of each name only
            avail = [row for i, row in enumerate(avail) if i + 1 == len(avail) or avail[i + 1][0] != row[0]]
    if words and not inst and not avail:
        node.warn("Error: No matching Packages to list")
        return 1
    widths = _columns([*inst, *avail])
    for title, rows in (("Installed Packages", inst), ("Available Packages", avail)):
        if rows:
            node.say(title)
            for na, evr, repo in rows:
                node.say(f"{na:<{widths[0]}} {evr:<{widths[1]}} {repo}")
    return 0


def _columns(rows: list[tuple[str, str, str]], total: int = 80) -> tuple[int, int]:
    """Widths of the name.arch and version columns: each as wide as its longest entry, then the room
    left on an 80-column line split between them, as dnf lays out a listing that is not on a terminal."""
    if not rows:
        return 0, 0
    na, evr, repo = (max(len(r[i]) for r in rows) for i in range(3))
    spare = max(0, total - (na + evr + repo + 2))
    return na + spare // 2, evr + spare - spare // 2


def _clean(node: Node, inv: Invocation) -> int:
    if not inv.words:
        node.warn("Command line error: the following arguments are required: type")
        return 1
    if inv.words[:1] not in (["all"], ["metadata"], ["expire-cache"], ["packages"], ["dbcache"]):
        node.warn("Command line error: argument type: invalid choice: "
                  f"'{inv.words[0]}' (choose from 'metadata', 'packages', 'dbcache', 'expire-cache', "
                  "'all')")
        return 1
    cache = machine.dnf_cache(node.layout)
    if inv.words[0] in ("all", "metadata", "expire-cache", "dbcache"):
        machine.save_dnf_cache(node.layout, {})
    count = 4 * len(cache) if inv.words[0] in ("all", "metadata", "dbcache") else 0
    _info(node, inv, f"{count} file removed" if count == 1 else f"{count} files removed")
    return 0
