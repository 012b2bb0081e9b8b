"""The argv of every package command an upgrade runs on a node, for apt and for dnf/yum nodes.

DOMAIN.md's procedure, per hop and node: point the pkgs.k8s.io repository at the hop's minor, then
apt: ``apt-mark unhold P && apt-get update && apt-get install -y P=BUILD && apt-mark hold P``;
dnf/yum: the repository file ``exclude=``s the Kubernetes packages (that is their hold), so an install
names the exact build with ``--disableexcludes=kubernetes``. A build is the repository's own
package version (``1.31.4-1.1`` deb, ``1.31.4-150500.1.1`` rpm), found in its listing, never guessed.

Everything here is an argv list or a pure text function: no shell, nothing built from a string.
"""

from __future__ import annotations

import re

from upgrader.domain.versions import Minor, Version

APT = "apt"
RPM_MANAGERS = ("dnf", "yum")
APT_LIST = "/etc/apt/sources.list.d/kubernetes.list"
YUM_REPO = "/etc/yum.repos.d/kubernetes.repo"
_REPO_MINOR = re.compile(r"(pkgs\.k8s\.io/core:/stable:/)v[0-9]{1,3}\.[0-9]{1,3}(/(?:deb|rpm)/)", re.ASCII)
_MADISON = re.compile(r"^\s*(\S+)\s*\|\s*(\S+)\s*\|", re.MULTILINE)
_DNF_LINE = re.compile(r"^(\S+?)\.\S+\s+(\S+)\s+@?\S+\s*$", re.MULTILINE)


def retarget_repo(text: str, minor: Minor) -> str | None:
    """The repository file with every pkgs.k8s.io per-minor URL moved to ``minor`` (its gpgkey too);
    None when the file names no such URL (a mirror upgrader cannot retarget)."""
    if not _REPO_MINOR.search(text):
        return None
    return _REPO_MINOR.sub(lambda m: f"{m.group(1)}{minor}{m.group(2)}", text)


def refresh(manager: str) -> list[str]:
    """Re-read the repository after it moved."""
    return ["apt-get", "update"] if manager == APT else [manager, "makecache"]


def list_builds(manager: str, package: str) -> list[str]:
    if manager == APT:
        return ["apt-cache", "madison", package]
    return [manager, "list", "--showduplicates", package, "--disableexcludes=kubernetes"]


def parse_builds(manager: str, package: str, stdout: str) -> list[str]:
    """The builds of ``package`` a listing offers (``apt-cache madison`` or ``dnf list --showduplicates``)."""
    if manager == APT:
        return [build for name, build in _MADISON.findall(stdout) if name == package]
    return [build for name, build in _DNF_LINE.findall(stdout) if name == package]


def pick_build(builds: list[str], version: Version) -> str | None:
    """The build of exactly ``version`` (``1.31.4-...``); the last listed when there are several."""
    prefix = f"{version.major}.{version.minor}.{version.patch}-"
    matching = [b for b in builds if b.startswith(prefix)]
    return matching[-1] if matching else None


def install(manager: str, builds: dict[str, str]) -> list[list[str]]:
    """The commands that install exactly these builds and keep them from moving on their own."""
    names = sorted(builds)
    if manager == APT:
        return [
            ["apt-mark", "unhold", *names],
            ["apt-get", "install", "-y", *(f"{n}={builds[n]}" for n in names)],
            ["apt-mark", "hold", *names],
        ]
    return [[manager, "install", "-y", *(f"{n}-{builds[n]}" for n in names), "--disableexcludes=kubernetes"]]


def installed_build(manager: str, package: str) -> list[str]:
    """Prints the installed build of ``package`` alone (exit non-zero when it is not installed)."""
    if manager == APT:
        return ["dpkg-query", "-W", "--showformat=${Version}", package]
    return ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}\\n", package]


def held(manager: str) -> list[str] | None:
    """Lists held packages (apt only: dnf's hold is the repository's exclude line)."""
    return ["apt-mark", "showhold"] if manager == APT else None


def upstream_of(build: str) -> str:
    """``1.31.4-1.1`` -> ``v1.31.4``."""
    return "v" + build.split("-", 1)[0]


def images_pull(version: Version) -> list[str]:
    return ["kubeadm", "config", "images", "pull", "--kubernetes-version", str(version)]


def kubeadm_apply(version: Version) -> list[str]:
    return ["kubeadm", "upgrade", "apply", str(version), "--yes"]


def kubeadm_node() -> list[str]:
    return ["kubeadm", "upgrade", "node"]


KUBEADM_LOCK = "/etc/kubernetes"  # on every kubeadm node; flock(1) locks a directory as well as a file
KUBEADM_BUSY = 75  # flock's exit when the lock stayed taken (EX_TEMPFAIL); kubeadm's own failures exit 1


def kubeadm_locked(argv: list[str], wait: float) -> list[str]:
    """argv under an exclusive flock(1) of the node's /etc/kubernetes, taken within ``wait`` seconds or
    exit KUBEADM_BUSY (see :mod:`upgrader.engine.kubeadm_lock` for why)."""
    return ["flock", "--exclusive", "--timeout", f"{wait:g}", "--conflict-exit-code", str(KUBEADM_BUSY),
            KUBEADM_LOCK, *argv]


def restart_kubelet() -> list[list[str]]:
    return [["systemctl", "daemon-reload"], ["systemctl", "restart", "kubelet"]]


def downgrade(manager: str, builds: dict[str, str]) -> list[list[str]]:
    """The commands that take these packages DOWN to exactly these builds and hold them there: apt needs
    ``--allow-downgrades`` (without it a lower build is refused), dnf/yum have their own ``downgrade``."""
    names = sorted(builds)
    if manager == APT:
        return [
            ["apt-mark", "unhold", *names],
            ["apt-get", "install", "-y", "--allow-downgrades", *(f"{n}={builds[n]}" for n in names)],
            ["apt-mark", "hold", *names],
        ]
    return [[manager, "downgrade", "-y", *(f"{n}-{builds[n]}" for n in names), "--disableexcludes=kubernetes"]]


def build_version(build: str) -> tuple[int, ...] | None:
    """``1.31.4-1.1`` -> (1, 31, 4); None when it does not start with a version."""
    head = build.split("-", 1)[0].lstrip("v")
    parts = head.split(".")
    return tuple(int(p) for p in parts) if len(parts) == 3 and all(p.isdigit() for p in parts) else None


# -- certificates (kubeadm's "Certificate Management with kubeadm") --------------------------------

def certs_check() -> list[str]:
    return ["kubeadm", "certs", "check-expiration"]


def certs_renew_all() -> list[str]:
    return ["kubeadm", "certs", "renew", "all"]


def running_containers() -> list[str]:
    """The node's running containers as its container runtime lists them (cri-tools come with kubeadm)."""
    return ["crictl", "ps", "-o", "json"]

