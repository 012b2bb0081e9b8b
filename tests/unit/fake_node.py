"""A kubeadm node as a FakeTransport: it answers what an upgrade runs on it the way the real tools do.

apt (``apt-get``, ``apt-cache madison``, ``apt-mark``, ``dpkg-query``) or dnf (``dnf``, ``rpm``) over a
pkgs.k8s.io repository file whose minor decides which builds the refreshed cache offers (a held
package is not installed, an excluded one not without ``--disableexcludes``); ``kubeadm`` (images,
certificates, ``upgrade apply`` with kubeadm's own version policy, ``upgrade node``) rewriting the
node's static pod manifests and, through its cluster, kubeadm-config and the mirror pods; and
``systemctl restart kubelet``, after which the cluster reports the installed kubelet's version.
Tests break it on purpose: canned answers for a command (:meth:`FakeNode.answer`), a hook before or
after one (:meth:`FakeNode.hook`), a node that drops its next calls (``drop``) or answers as ssh does
when it cannot connect (``ssh_down``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from upgrader import errors
from upgrader.domain.versions import Version
from upgrader.fakes import FakeTransport
from upgrader.ports import CommandResult

PACKAGES = ("kubeadm", "kubelet", "kubectl")
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
ETCD_IMAGE = "3.5.15-0"
APT_LIST = "/etc/apt/sources.list.d/kubernetes.list"
YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
MANIFESTS = "/etc/kubernetes/manifests"
CERTS = ("CERTIFICATE   EXPIRES   RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED\n"
         "apiserver     Dec 01, 2027 10:00 UTC   364d   ca   no\n")
DF = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 100000000 1000 90000000 1% /\n"
SSH_DOWN = "ssh: connect to host {node} port 22: Connection refused\n"
_MINOR_IN_REPO = re.compile(r"pkgs\.k8s\.io/core:/stable:/v(1\.[0-9]+)/(?:deb|rpm)/")
# What each read-only probe of a dry run may run: nothing that changes a node.
READ_ONLY = {("apt-get", "--version"), ("dnf", "--version"), ("yum", "--version"), ("grep", "-rlsE"),
             ("head", "-c")}

Hook = Callable[[list[str]], None]


def build(manager: str, version: Version) -> str:
    """The repository's package version of ``version`` (``1.31.4-1.1`` deb, ``1.31.4-150500.1.1`` rpm)."""
    upstream = f"{version.major}.{version.minor}.{version.patch}"
    return f"{upstream}-1.1" if manager == "apt" else f"{upstream}-150500.1.1"


def offered(manager: str, minor: str) -> list[str]:
    """Every build a pkgs.k8s.io repository of ``minor`` (``1.31``) offers, oldest first."""
    major, m = (int(p) for p in minor.split("."))
    return [build(manager, Version(major, m, patch)) for patch in range(31)]


def manifest(component: str, image: str) -> bytes:
    return (f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: {component}\n  namespace: kube-system\n"
            f"spec:\n  containers:\n  - name: {component}\n    image: registry.k8s.io/{component}:{image}\n").encode()


def ok(stdout: str = "") -> CommandResult:
    return CommandResult(0, stdout, "")


class Cluster(Protocol):
    """What a node's commands change in the cluster around it (tests/unit/node_world.py's NodeWorld)."""

    def cluster_version(self) -> Version: ...

    def set_cluster_version(self, version: Version) -> None: ...

    def move_control_plane(self, node: FakeNode, version: Version) -> None: ...

    def set_kubelet(self, node: str, version: Version) -> None: ...


@dataclass
class _Rule:
    prefix: tuple[str, ...]
    answer: CommandResult | None = None
    before: Hook | None = None
    after: Hook | None = None
    times: int | None = None  # None: every time

    def matches(self, argv: list[str]) -> bool:
        return self.times != 0 and starts(argv, self.prefix)


def starts(argv: list[str], prefix: tuple[str, ...]) -> bool:
    """argv begins with ``prefix``; a prefix word ending in ``*`` matches any word it begins
    (``kubelet=*`` is any build of kubelet)."""
    return len(argv) >= len(prefix) and all(
        a.startswith(p[:-1]) if p.endswith("*") else a == p for a, p in zip(argv, prefix, strict=False))


class FakeNode(FakeTransport):
    """One node: its packages, its repository file, its manifests, as the commands leave them."""

    def __init__(self, world: Cluster, name: str, *, control_plane: bool, manager: str, version: Version) -> None:
        self.world, self.name, self.control_plane, self.manager = world, name, control_plane, manager
        minor = f"{version.major}.{version.minor}"
        files = {YUM_REPO: (f"[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/\n"
                            f"gpgkey=https://pkgs.k8s.io/core:/stable:/v{minor}/rpm/repodata/repomd.xml.key\n"
                            "exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n").encode()} \
            if manager == "dnf" else {APT_LIST: (
                "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
                f"https://pkgs.k8s.io/core:/stable:/v{minor}/deb/ /\n").encode()}
        if control_plane:
            files |= {f"{MANIFESTS}/{c}.yaml": manifest(c, str(version)) for c in COMPONENTS}
            files[f"{MANIFESTS}/etcd.yaml"] = manifest("etcd", ETCD_IMAGE)
        files |= {"/var/lib/kubelet/config.yaml": b"kind: KubeletConfiguration\ncgroupDriver: systemd\n"}
        super().__init__(files=files)
        self.installed = {p: build(manager, version) for p in PACKAGES}
        self.held = set(PACKAGES) if manager == "apt" else set()
        self.cache_minor: str | None = minor  # what the last `apt-get update` / `dnf makecache` read
        self.rules: list[_Rule] = []
        self.drop = 0  # the next calls raise NodeUnreachableError (the transport lost the node)
        self.ssh_down = 0  # the next commands answer as ssh does when it cannot connect (exit 255)
        self.tried: list[list[str]] = []  # every command asked for, also those that never reached the node
        self.handlers |= {"apt-get": self._apt_get, "apt-cache": self._apt_cache, "apt-mark": self._apt_mark,
                          "dpkg-query": self._dpkg_query, "dnf": self._dnf, "rpm": self._rpm,
                          "kubeadm": self._kubeadm, "systemctl": self._systemctl, "grep": self._grep,
                          "head": self._head, "ls": self._ls, "df": lambda argv: ok(DF),
                          "stat": lambda argv: ok("20480\n"), "true": lambda argv: ok("")}

    # -- breaking it ------------------------------------------------------------------------------

    def answer(self, *prefix: str, result: CommandResult, times: int | None = None) -> None:
        """Commands starting with ``prefix`` (see :func:`starts`) answer ``result`` instead of running
        (the next ``times`` of them, or all)."""
        self.rules.append(_Rule(tuple(prefix), answer=result, times=times))

    def hook(self, *prefix: str, before: Hook | None = None, after: Hook | None = None,
             times: int | None = None) -> None:
        """Call ``before``/``after`` around commands starting with ``prefix`` (a hook may raise)."""
        self.rules.append(_Rule(tuple(prefix), before=before, after=after, times=times))

    def ran_any(self, *prefix: str) -> bool:
        return any(starts(argv, prefix) for argv in self.ran)

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        self.tried.append(list(argv))
        argv = _without_flock(argv)
        if self.ssh_down > 0:
            self.ssh_down -= 1
            return CommandResult(255, "", SSH_DOWN.format(node=self.name))
        self._reach()
        self.ran.append(list(argv))
        rules = [r for r in self.rules if r.matches(argv)]
        for rule in rules:
            if rule.times is not None:
                rule.times -= 1
        for rule in rules:
            if rule.before is not None:
                rule.before(list(argv))
        canned = next((r.answer for r in rules if r.answer is not None), None)
        handler = self.handlers.get(argv[0])
        if canned is not None:
            result = canned
        elif handler is None:
            result = CommandResult(127, "", f"{argv[0]}: command not found\n")
        else:
            result = handler(list(argv))
        for rule in rules:
            if rule.after is not None:
                rule.after(list(argv))
        return result

    def _reach(self) -> None:
        if self.drop > 0:
            self.drop -= 1
            raise errors.NodeUnreachableError(f"node {self.name} is unreachable: no answer (fake)")
        super()._reach()

    # -- packages ---------------------------------------------------------------------------------

    def upstream(self, package: str) -> Version | None:
        found = self.installed.get(package)
        return Version.parse("v" + found.split("-", 1)[0]) if found else None

    def _repo_minor(self) -> str | None:
        entry = self.files.get(YUM_REPO if self.manager == "dnf" else APT_LIST)
        found = _MINOR_IN_REPO.search(entry[0].decode()) if entry else None
        return found.group(1) if found else None

    def _offered(self) -> list[str]:
        return offered(self.manager, self.cache_minor) if self.cache_minor else []

    def _apt_get(self, argv: list[str]) -> CommandResult:
        if self.manager != "apt":
            return CommandResult(127, "", "apt-get: command not found\n")
        if argv[1:] == ["--version"]:
            return ok("apt 2.4.13 (amd64)\n")
        if argv[1:] == ["update"]:
            self.cache_minor = self._repo_minor()
            return ok(f"Hit:1 https://pkgs.k8s.io/core:/stable:/v{self.cache_minor}/deb  InRelease\n"
                      "Reading package lists...\n")
        if argv[1:3] == ["install", "-y"]:
            wanted = dict(arg.split("=", 1) for arg in argv[3:] if not arg.startswith("--"))
            for package, version in wanted.items():
                if package in self.held:
                    return CommandResult(100, "Reading package lists...\n", "E: Held packages were changed and -y "
                                         "was used without --allow-change-held-packages.\n")
                if version not in self._offered():
                    return CommandResult(100, "", f"E: Version '{version}' for '{package}' was not found\n")
            lower = [p for p, v in wanted.items() if _numbers(v) < _numbers(self.installed.get(p) or "0.0.0")]
            if lower and "--allow-downgrades" not in argv:
                return CommandResult(100, "", "E: Packages were downgraded and -y was used without "
                                     "--allow-downgrades.\n")
            self.installed |= wanted
            return ok("".join(f"Setting up {p} ({v}) ...\n" for p, v in wanted.items()))
        return CommandResult(100, "", f"E: unexpected apt-get {argv[1:]}\n")

    def _apt_cache(self, argv: list[str]) -> CommandResult:
        assert argv[1] == "madison", argv
        package = argv[2]
        return ok("".join(f"   {package} | {b} | https://pkgs.k8s.io/core:/stable:/v{self.cache_minor}/deb  "
                          "Packages\n" for b in reversed(self._offered())))

    def _apt_mark(self, argv: list[str]) -> CommandResult:
        verb, names = argv[1], argv[2:]
        if verb == "hold":
            self.held |= set(names)
            return ok("".join(f"{n} set on hold.\n" for n in names))
        if verb == "unhold":
            self.held -= set(names)
            return ok("".join(f"Canceled hold on {n}.\n" for n in names))
        if verb == "showhold":
            return ok("".join(f"{n}\n" for n in sorted(self.held)))
        return CommandResult(100, "", f"E: unexpected apt-mark {verb}\n")

    def _dpkg_query(self, argv: list[str]) -> CommandResult:
        if self.manager != "apt":
            return CommandResult(127, "", "dpkg-query: command not found\n")
        args, fmt = argv[1:], "${Package}\t${Version}\n"
        assert args[0] == "-W", argv
        args = args[1:]
        if args[0] == "-f":
            fmt, args = args[1], args[2:]
        elif args[0].startswith("--showformat="):
            fmt, args = args[0].split("=", 1)[1], args[1:]
        fmt = fmt.replace("\\n", "\n")
        out = "".join(fmt.replace("${Package}", p).replace("${Version}", self.installed[p])
                      for p in args if p in self.installed)
        missing = [p for p in args if p not in self.installed]
        if missing:
            return CommandResult(1, out, "".join(f"dpkg-query: no packages found matching {p}\n" for p in missing))
        return ok(out)

    def _dnf(self, argv: list[str]) -> CommandResult:
        if self.manager != "dnf":
            return CommandResult(127, "", "dnf: command not found\n")
        if argv[1:] == ["--version"]:
            return ok("4.14.0\n")
        if argv[1:] == ["makecache"]:
            self.cache_minor = self._repo_minor()
            return ok("Metadata cache created.\n")
        excludes_off = "--disableexcludes=kubernetes" in argv
        if argv[1:3] == ["list", "--showduplicates"]:
            package = argv[3]
            if not excludes_off:
                return CommandResult(1, "", "Error: No matching Packages to list\n")
            lines = [f"{package}.x86_64    {b}    kubernetes\n" for b in self._offered()]
            return ok("Available Packages\n" + "".join(lines))
        if argv[1:3] in (["install", "-y"], ["downgrade", "-y"]):
            wanted: dict[str, str] = {}
            for arg in argv[3:]:
                if arg.startswith("--"):
                    continue
                name = next(p for p in PACKAGES if arg.startswith(p + "-"))
                wanted[name] = arg[len(name) + 1:]
            for package, version in wanted.items():
                if not excludes_off or version not in self._offered():
                    return CommandResult(1, "", f"No match for argument: {package}-{version}\n"
                                         "Error: Unable to find a match\n")
            self.installed |= wanted
            return ok("".join(f"  Upgrading        : {p}-{v}.x86_64\n" for p, v in wanted.items()) + "Complete!\n")
        return CommandResult(1, "", f"Error: unexpected dnf {argv[1:]}\n")

    def _rpm(self, argv: list[str]) -> CommandResult:
        if self.manager != "dnf":
            return CommandResult(127, "", "rpm: command not found\n")
        assert argv[1:3] == ["-q", "--qf"], argv
        fmt, names = argv[3].replace("\\n", "\n"), argv[4:]
        out, code = "", 0
        for name in names:
            if name not in self.installed:
                out, code = out + f"package {name} is not installed\n", 1
                continue
            version, release = self.installed[name].split("-", 1)
            out += fmt.replace("%{NAME}", name).replace("%{VERSION}", version).replace("%{RELEASE}", release)
        return CommandResult(code, out, "")

    # -- kubeadm and the kubelet --------------------------------------------------------------------

    def _kubeadm(self, argv: list[str]) -> CommandResult:
        if argv[1:4] == ["config", "images", "pull"] or argv[1:4] == ["config", "images", "list"]:
            version = argv[-1]
            return ok("".join(f"[config/images] Pulled registry.k8s.io/{c}:{version}\n" for c in COMPONENTS))
        if argv[1:3] == ["certs", "check-expiration"]:
            return ok(CERTS)
        if argv[1:3] == ["upgrade", "apply"]:
            target = Version.parse(argv[3])
            refused = self._policy(target)
            if refused:
                return CommandResult(1, "[upgrade/config] Reading configuration from the cluster...\n",
                                     f"[upgrade/version] FATAL: {refused}\n")
            self.world.move_control_plane(self, target)
            self.world.set_cluster_version(target)
            mine = self.upstream("kubeadm")
            if mine is not None and (mine.major, mine.minor) >= (1, 32):  # apply as a phase workflow
                return ok(f"[upgrade/preflight] You have chosen to upgrade the cluster version to \"{target}\"\n"
                          "\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to "
                          f"\"{target}\".\n\n[upgrade] Now please proceed with upgrading the rest of the nodes by "
                          "following the right order.\n")
            return ok(f"[upgrade/version] You have chosen to change the cluster version to \"{target}\"\n"
                      f"[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy!\n")
        if argv[1:3] == ["upgrade", "node"]:
            if self.control_plane:
                target = self.world.cluster_version()
                refused = self._policy(target)
                if refused:
                    return CommandResult(1, "", f"[upgrade] FATAL: {refused}\n")
                self.world.move_control_plane(self, target)
                return ok("[upgrade] The control plane instance for this node was successfully updated!\n")
            return ok("[upgrade] The configuration for this node was successfully updated!\n")
        return CommandResult(1, "", f"unknown command {argv[1:]!r} for \"kubeadm\"\n")

    def _policy(self, target: Version) -> str | None:
        """kubeadm's own refusal (policy.go) to go beyond its version."""
        mine = self.upstream("kubeadm")
        if mine is None or (target.major, target.minor) > (mine.major, mine.minor):
            return (f"Specified version to upgrade to \"{target}\" is at least one minor release higher than the "
                    f"kubeadm minor release ({target.minor} > {mine.minor if mine else '?'}). Such an upgrade is not "
                    "supported")
        if target > mine:
            return (f"Specified version to upgrade to \"{target}\" is higher than the kubeadm version \"{mine}\". "
                    "Upgrade kubeadm first using the tool you used to install kubeadm")
        return None

    def _systemctl(self, argv: list[str]) -> CommandResult:
        if argv[1:] == ["daemon-reload"]:
            return ok()
        if argv[1:] == ["restart", "kubelet"]:
            kubelet = self.upstream("kubelet")
            assert kubelet is not None
            self.world.set_kubelet(self.name, kubelet)
            return ok()
        return CommandResult(1, "", f"Unknown command verb {argv[1]}.\n")

    # -- files ------------------------------------------------------------------------------------

    def _grep(self, argv: list[str]) -> CommandResult:
        assert argv[1:3] == ["-rlsE", "--"], argv
        pattern, roots = re.compile(argv[3]), argv[4:]
        found = sorted(p for p, (data, _) in self.files.items()
                       if any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)
                       and pattern.search(data.decode(errors="replace")))
        return CommandResult(0 if found else 1, "".join(f"{p}\n" for p in found), "")

    def _head(self, argv: list[str]) -> CommandResult:
        assert argv[1] == "-c" and argv[3] == "--", argv
        entry = self.files.get(argv[4])
        if entry is None:
            return CommandResult(1, "", f"head: cannot open '{argv[4]}' for reading: No such file or directory\n")
        return ok(entry[0][:int(argv[2])].decode(errors="replace"))

    def _ls(self, argv: list[str]) -> CommandResult:
        directory = argv[-1].rstrip("/") + "/"
        names = sorted({p[len(directory):].split("/")[0] for p in self.files if p.startswith(directory)})
        if not names:
            return CommandResult(2, "", f"ls: cannot access '{argv[-1]}': No such file or directory\n")
        return ok("".join(f"{n}\n" for n in names))


def _numbers(build: str) -> tuple[int, ...]:
    return tuple(int(p) for p in build.split("-", 1)[0].split(".") if p.isdigit())


def _without_flock(argv: list[str]) -> list[str]:
    """``flock OPTIONS LOCKFILE COMMAND...`` is COMMAND on a fake node: it runs one command at a time, so
    the lock is always free (tests/integration/test_kubeadm_lock.py holds the real flock to its word)."""
    if not argv or argv[0] != "flock":
        return argv
    rest = argv[1:]
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("--timeout", "-w", "--conflict-exit-code", "-E") else rest[1:]
    return rest[1:]
