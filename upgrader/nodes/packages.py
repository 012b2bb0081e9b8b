"""Which package manager a node has, and which Kubernetes package repository it is set up for.

Read over the node's transport with a few short commands, argv lists only (no shell):

- the package manager: the first of ``apt-get --version``, ``dnf --version``, ``yum --version``
  that exits 0;
- apt: the files under /etc/apt/sources.list.d (and /etc/apt/sources.list) mentioning pkgs.k8s.io
  or kubernetes (``grep -rlsE``), each read capped at :data:`MAX_FILE` bytes; the first
  repository URL in them (one-line ``deb [...] URL SUITE`` or deb822 ``URIs: URL``), and its minor
  when it is a pkgs.k8s.io per-minor repository (``https://pkgs.k8s.io/core:/stable:/v1.31/deb/``);
- dnf/yum: /etc/yum.repos.d/kubernetes.repo's ``baseurl``.

Every command has a timeout; an unreachable node or a command that times out raises
:class:`TransportError` (the caller records it on the node, see services/inventory.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from upgrader.errors import TransportError
from upgrader.ports import CommandResult, NodeTransport

TIMEOUT = 10.0  # seconds, per command
MAX_FILE = 64 * 1024  # bytes of a repository file that are read; a sources file is a few lines
MAX_FILES = 16  # repository files looked at per node
APT_SOURCES = ("/etc/apt/sources.list.d", "/etc/apt/sources.list")
YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
_MENTION = r"pkgs\.k8s\.io|kubernetes"
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@?#\s]*@")
_MINOR = re.compile(r"://pkgs\.k8s\.io/core:/stable:/(v[0-9]{1,3}\.[0-9]{1,3})/(?:deb|rpm)", re.ASCII)
_DEB_LINE = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", re.MULTILINE)
_DEB822 = re.compile(r"^\s*URIs:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
_BASEURL = re.compile(r"^\s*baseurl\s*=\s*(\S+)", re.MULTILINE | re.IGNORECASE)
_EXIT_UNREACHABLE = 255  # ssh's own failure (and the sandbox transport's)
_EXIT_TIMEOUT = 124


@dataclass(frozen=True, slots=True)
class Repo:
    url: str
    file: str
    minor: str | None


@dataclass(frozen=True, slots=True)
class NodePackages:
    manager: str | None  # apt, dnf, yum, or None when none answered
    repo: Repo | None


def probe(transport: NodeTransport, *, timeout: float = TIMEOUT) -> NodePackages:
    """The node's package manager and Kubernetes repository; TransportError when the node cannot be asked."""
    manager = None
    for name, argv in (("apt", ["apt-get", "--version"]), ("dnf", ["dnf", "--version"]),
                       ("yum", ["yum", "--version"])):
        if _run(transport, argv, timeout).ok:
            manager = name
            break
    if manager == "apt":
        return NodePackages("apt", _apt_repo(transport, timeout))
    if manager in ("dnf", "yum"):
        return NodePackages(manager, _yum_repo(transport, timeout))
    return NodePackages(None, None)


def _run(transport: NodeTransport, argv: list[str], timeout: float) -> CommandResult:
    result = transport.run(argv, timeout)
    if result.exit_code == _EXIT_UNREACHABLE:
        raise TransportError(f"{argv[0]}: {_first_line(result.stderr) or 'the node did not answer'}")
    if result.exit_code == _EXIT_TIMEOUT:
        raise TransportError(f"{' '.join(argv[:2])} timed out after {timeout:g}s")
    return result


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")[:200]


def _read(transport: NodeTransport, path: str, timeout: float) -> str | None:
    """The first MAX_FILE bytes of a node file, or None when it does not exist or cannot be read."""
    result = _run(transport, ["head", "-c", str(MAX_FILE), "--", path], timeout)
    return result.stdout if result.ok else None


def _apt_repo(transport: NodeTransport, timeout: float) -> Repo | None:
    # exit 1: nothing matched; 2: a path was missing (silenced by -s), the others still searched
    found = _run(transport, ["grep", "-rlsE", "--", _MENTION, *APT_SOURCES], timeout)
    for path in sorted({p.strip() for p in found.stdout.splitlines() if p.strip().startswith("/")})[:MAX_FILES]:
        if not (path.endswith((".list", ".sources")) or path == "/etc/apt/sources.list"):
            continue  # apt reads only these
        text = _read(transport, path, timeout)
        if text is None:
            continue
        repo = apt_repo_in(text, path)
        if repo is not None:
            return repo
    return None


def apt_repo_in(text: str, path: str) -> Repo | None:
    """The first Kubernetes repository an apt sources file names (comments and other repositories skipped)."""
    urls = [m.group(1) for m in _DEB_LINE.finditer(text)] + [m.group(1) for m in _DEB822.finditer(text)]
    return _kubernetes_repo(urls, path)


def _yum_repo(transport: NodeTransport, timeout: float) -> Repo | None:
    text = _read(transport, YUM_REPO, timeout)
    if text is None:
        return None
    return yum_repo_in(text, YUM_REPO)


def yum_repo_in(text: str, path: str) -> Repo | None:
    return _kubernetes_repo([m.group(1) for m in _BASEURL.finditer(text)], path)


def _kubernetes_repo(urls: list[str], path: str) -> Repo | None:
    for url in urls:
        if "pkgs.k8s.io" in url or "kubernetes" in url:
            url = without_credentials(url)
            m = _MINOR.search(url)
            return Repo(url=url[:2048], file=path, minor=m.group(1) if m else None)
    return None


def without_credentials(url: str) -> str:
    """The URL with any ``user:password@`` dropped (a private mirror's login is never recorded or shown)."""
    return _USERINFO.sub(r"\1", url)
