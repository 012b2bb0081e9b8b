"""The yum repositories of a RHEL sandbox node, and the Kubernetes packages they offer to dnf.

dnf reads every ``*.repo`` file in /etc/yum.repos.d on each run. pkgs.k8s.io has one repository per
minor (``baseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/``) holding every patch of that minor
only, so moving to the next minor means editing ``baseurl`` (and ``gpgkey``), as the kubeadm upgrade
page says; dnf keeps metadata per repository URL, so the next command fetches the new one without a
``makecache``. A repository's ``exclude=`` (the install page puts kubelet, kubeadm, kubectl there)
hides those packages from dnf unless ``--disableexcludes`` names the repository (or ``all``).

The sandbox has no network: a pkgs.k8s.io minor that upgrader's release catalog knows is served from
the catalog, any other repository URL fails as an unreachable one does.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from upgrader.domain.versions import Minor
from upgrader.errors import NodePathError
from upgrader.sandbox import releases
from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node

ARCH = "x86_64"
METADATA_EXPIRE = 48 * 3600.0  # dnf's default metadata_expire
MAX_REPO_FILES = 64
_PKGS = re.compile(r"^https://pkgs\.k8s\.io/core:/stable:/(v\d{1,3}\.\d{1,3})/rpm/?$", re.ASCII)
_LIST = re.compile(r"[\s,]+")
_TRUE = ("1", "yes", "true", "on")


@dataclass(frozen=True, slots=True)
class Repo:
    id: str
    name: str
    baseurl: str
    excludes: tuple[str, ...]

    @property
    def minor(self) -> str | None:
        """The pkgs.k8s.io minor this repository serves (v1.31), when it is one the sandbox knows."""
        m = _PKGS.match(self.baseurl)
        return m.group(1) if m and releases.patches(Minor.parse(m.group(1))) else None


@dataclass(frozen=True, slots=True)
class Offered:
    """A package in a repository: kubeadm 1.31.4-150500.1.1 from kubernetes."""

    name: str
    evr: str  # version-release; pkgs.k8s.io packages have no epoch
    repo: str
    excluded: bool

    @property
    def nevra(self) -> str:
        return f"{self.name}-{self.evr}.{ARCH}"


class RepoConfigError(Exception):
    """A .repo file dnf cannot parse; the message is dnf's."""


def enabled_repos(node: Node) -> list[Repo]:
    """Every enabled repository of the node's /etc/yum.repos.d/*.repo files, in file name order."""
    found: list[Repo] = []
    for path in _repo_files(node):
        parser = configparser.ConfigParser(interpolation=None, strict=False, default_section="\0")
        try:
            parser.read_string(machine.read_text(node.layout, path), source=path)
        except configparser.Error as e:
            first = str(e).splitlines()[0]
            raise RepoConfigError(f"Parsing file \"{path}\" failed: {first}") from e
        for section in parser.sections():
            if section == "main" or parser.get(section, "enabled", fallback="1").strip().lower() not in _TRUE:
                continue
            excludes = " ".join(parser.get(section, key, fallback="") for key in ("exclude", "excludepkgs"))
            urls = parser.get(section, "baseurl", fallback="").split()  # dnf takes the first of a list
            found.append(Repo(id=section, name=parser.get(section, "name", fallback=section).strip(),
                              baseurl=urls[0] if urls else "", excludes=tuple(p for p in _LIST.split(excludes) if p)))
    return found


def _repo_files(node: Node) -> list[str]:
    try:
        directory = node.layout.host_path(machine.YUM_REPOS)
        names = sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".repo"))
    except (OSError, NodePathError):
        return []
    return [f"{machine.YUM_REPOS}/{n}" for n in names[:MAX_REPO_FILES]]


def offered(repos: list[Repo], *, disabled_excludes: set[str]) -> list[Offered]:
    """The Kubernetes packages the repositories hold, oldest first; excluded ones are marked, not dropped
    (dnf tells "filtered out by exclude filtering" apart from "no match")."""
    out: list[Offered] = []
    for repo in repos:
        minor = repo.minor
        if minor is None:
            continue
        keep = bool({"all", repo.id} & disabled_excludes)
        for version in releases.patches(Minor.parse(minor)):
            for name in machine.K8S_PACKAGES:
                excluded = not keep and any(fnmatch.fnmatchcase(name, p) for p in repo.excludes)
                out.append(Offered(name, version.rpm, repo.id, excluded))
    return out


def matches(spec: str, name: str, evr: str) -> bool:
    """Whether a dnf package spec names this package: NAME, NAME.ARCH, NAME-VERSION, NAME-VERSION-RELEASE,
    with or without the arch and the epoch (``0:``), globs allowed."""
    version = evr.split("-", 1)[0]
    forms = (name, f"{name}.{ARCH}", f"{name}-{version}", f"{name}-{evr}", f"{name}-{evr}.{ARCH}",
             f"{name}-0:{version}", f"{name}-0:{evr}", f"{name}-0:{evr}.{ARCH}")
    return any(fnmatch.fnmatchcase(form, spec) for form in forms)


def names_only(spec: str, name: str) -> bool:
    """The spec names the package without a version (``kubeadm``, ``kube*``, ``kubeadm.x86_64``)."""
    return fnmatch.fnmatchcase(name, spec) or fnmatch.fnmatchcase(f"{name}.{ARCH}", spec)


def evr_key(evr: str) -> tuple[int, ...]:
    """Sort key of a pkgs.k8s.io version-release (1.31.4-150500.1.1): numbers only, as rpm compares them."""
    return tuple(int(p) for p in re.findall(r"\d+", evr))


def load_metadata(node: Node, repos: list[Repo], *, refresh: bool, cache_only: bool, quiet: bool) -> int:
    """Fetch what is missing or expired (printing dnf's lines), or say when it last was; 0, or dnf's exit 1."""
    cache = machine.dnf_cache(node.layout)
    now = time.time()
    stale = [r for r in repos if refresh or now - cache.get(r.baseurl, 0.0) > METADATA_EXPIRE]
    if cache_only and (missing := [r for r in repos if r.baseurl not in cache]):
        node.warn(f"Error: Cache-only enabled but no cache for '{missing[0].id}'")
        return 1
    if cache_only:
        stale = []
    for repo in stale:
        if repo.minor is None:
            _fetch_failed(node, repo, quiet=quiet)
            return 1
        if not quiet:
            node.say(f"{repo.name[:48]:<48} 41 kB/s |  17 kB     00:00")
        cache[repo.baseurl] = now
    if stale:
        machine.save_dnf_cache(node.layout, cache)
    elif repos and not quiet:
        oldest = min(cache[r.baseurl] for r in repos)
        ago = str(timedelta(seconds=int(now - oldest)))
        on = time.strftime("%a %d %b %Y %I:%M:%S %p UTC", time.gmtime(oldest))
        node.say(f"Last metadata expiration check: {ago} ago on {on}.")
    return 0


def _fetch_failed(node: Node, repo: Repo, *, quiet: bool) -> None:
    if not quiet:
        node.say(f"{repo.name[:48]:<48}0.0  B/s |   0  B     00:00")
    url = repo.baseurl.rstrip("/") + "/repodata/repomd.xml"
    reason = (f"Status code: 403 for {url} (IP: 3.167.227.100)" if repo.baseurl.startswith("https://pkgs.k8s.io/")
              else f"Curl error (6): Couldn't resolve host name for {url} [Could not resolve host]")
    node.warn(f"Errors during downloading metadata for repository '{repo.id}':\n  - {reason}")
    node.warn(f"Error: Failed to download metadata for repo '{repo.id}': Cannot download repomd.xml: "
              "Cannot download repodata/repomd.xml: All mirrors were tried")
