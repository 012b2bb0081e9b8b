"""What the sandbox knows about Kubernetes releases: which exist, and what kubeadm pairs with them.

The sandbox refuses versions it cannot describe honestly, so an unknown patch (v1.30.99) is bad input
rather than a cluster that pretends. Which releases exist comes from upgrader's release catalog
(upgrader/data/catalog.txt), the same list the planner plans through, so every version a plan
names can be installed on a sandbox node. Supported: v1.24.0 up to the catalog's newest.

The etcd image follows kubeadm's ``SupportedEtcdVersion`` map (cmd/kubeadm/app/constants/constants.go),
which is edited in patch releases (etcd bumps are cherry-picked to supported branches: 3.5.15 in
mid-2024, 3.5.16 in late 2024, 3.5.21 in mid-2025, 3.5.24 in late 2025). The table gives, per minor,
the patch release from which a tag applies; it is reconstructed from those cherry-picks, so treat
the exact patch boundaries as approximate. What matters for rehearsal is real: tags change
between patch releases and never go backwards within a minor.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache

from upgrader.data import builtin_catalog
from upgrader.domain.catalog import Catalog
from upgrader.domain.versions import Minor, Version
from upgrader.errors import InvalidVersionError

OLDEST = Version(1, 24, 0)


@cache
def _catalog() -> Catalog:
    """The built-in release catalog from :data:`OLDEST` on (read once)."""
    return Catalog.of(v for v in builtin_catalog().versions if v.major == 1 and v >= OLDEST)


# minor -> [(first patch, etcd image tag)], ascending
ETCD_TAGS: dict[int, list[tuple[int, str]]] = {
    24: [(0, "3.5.3-0"), (9, "3.5.6-0")],
    25: [(0, "3.5.4-0"), (5, "3.5.6-0")],
    26: [(0, "3.5.6-0"), (8, "3.5.9-0")],
    27: [(0, "3.5.7-0"), (4, "3.5.9-0"), (10, "3.5.10-0")],
    28: [(0, "3.5.9-0"), (5, "3.5.10-0"), (8, "3.5.12-0"), (13, "3.5.15-0")],
    29: [(0, "3.5.10-0"), (3, "3.5.12-0"), (8, "3.5.15-0"), (10, "3.5.16-0")],
    30: [(0, "3.5.12-0"), (5, "3.5.15-0"), (7, "3.5.16-0")],
    31: [(0, "3.5.15-0"), (2, "3.5.16-0"), (10, "3.5.21-0"), (14, "3.5.24-0")],
    32: [(0, "3.5.16-0"), (6, "3.5.21-0"), (10, "3.5.24-0")],
    33: [(0, "3.5.21-0"), (6, "3.5.24-0")],
    34: [(0, "3.6.4-0"), (2, "3.6.5-0")],
    # Past what the stored kubeadm sources showed: 3.6.x as kubeadm pins it for 1.34, approximate.
    35: [(0, "3.6.5-0")],
    36: [(0, "3.6.6-0")],
    37: [(0, "3.7.0-0")],  # DOMAIN.md: 1.37 -> etcd 3.7.0
}

COREDNS: dict[int, str] = {
    24: "v1.8.6", 25: "v1.9.3", 26: "v1.9.3", 27: "v1.10.1", 28: "v1.10.1", 29: "v1.11.1",
    30: "v1.11.1", 31: "v1.11.3", 32: "v1.11.3", 33: "v1.12.0", 34: "v1.12.1", 35: "v1.13.1", 36: "v1.13.1",
    37: "v1.13.1",
}
PAUSE: dict[int, str] = {24: "3.7", 25: "3.8", 31: "3.10", 32: "3.10", 33: "3.10", 34: "3.10.1"}
GO_VERSION: dict[int, str] = {
    24: "go1.19.13", 25: "go1.20.10", 26: "go1.21.9", 27: "go1.21.13", 28: "go1.22.5", 29: "go1.22.8",
    30: "go1.22.8", 31: "go1.22.9", 32: "go1.23.4", 33: "go1.24.0", 34: "go1.24.6", 35: "go1.25.3",
    36: "go1.26.1", 37: "go1.26.4",
}
REGISTRY = "registry.k8s.io"


def newest() -> Version:
    """The newest release the sandbox knows."""
    return _catalog().versions[-1]


def check_supported(version: Version | Minor) -> Version:
    """The release to run for ``version`` (a minor means its newest patch), or InvalidVersionError saying why not."""
    line = version.line if isinstance(version, Version) else version
    if line < OLDEST.line:
        raise InvalidVersionError(f"version {version} is older than the sandbox supports (oldest: {OLDEST})")
    newest_patch = _catalog().newest(line)
    if newest_patch is None or (isinstance(version, Version) and version > newest_patch):
        raise InvalidVersionError(f"unknown Kubernetes version {version}: no such release "
                                  f"(the sandbox knows {OLDEST} to {newest()})")
    return version if isinstance(version, Version) else newest_patch


def is_released(version: Version) -> bool:
    try:
        check_supported(version)
    except InvalidVersionError:
        return False
    return True


def patches(minor: Minor) -> list[Version]:
    """Every release of a minor, oldest first (what the pkgs.k8s.io minor repository holds)."""
    return list(_catalog().patches(minor))


def etcd_tag(version: Version) -> str:
    """kubeadm's etcd image tag for a control plane at version (nearest minor when unlisted)."""
    minor = min(max(version.minor, min(ETCD_TAGS)), max(ETCD_TAGS))
    tag = ETCD_TAGS[minor][0][1]
    for first_patch, candidate in ETCD_TAGS[minor]:
        if version.minor != minor or version.patch >= first_patch:
            tag = candidate
    return tag


def etcd_semver(tag: str) -> tuple[int, ...]:
    """Comparable form of an etcd image tag such as 3.5.16-0."""
    base, _, build = tag.partition("-")
    return (*(int(p) for p in base.split(".")), int(build or 0))


# The first official (etcd-io built) tags; Kubernetes-built ones before them (contract, DOMAIN.md "etcd snapshots")
_FIRST_OFFICIAL = (3, 5, 24)


@dataclass(frozen=True, slots=True)
class EtcdImage:
    """What a registry.k8s.io/etcd tag holds: which build it is and which tools are in it.

    Tags up to 3.5.21-0 are built by Kubernetes (a shell, etcd and etcdctl, no etcdutl); 3.5.24-0 and
    every 3.6+ tag are etcd's official images (etcd, etcdctl, etcdutl, no shell). etcdctl's ``snapshot
    restore`` has ``--bump-revision``/``--mark-compacted`` from 3.5.10 and is gone from 3.6 (only
    ``snapshot save`` is left); etcdutl has them in every official image.
    """

    tag: str
    version: tuple[int, int, int]

    @property
    def official(self) -> bool:
        return self.version >= _FIRST_OFFICIAL

    @property
    def kind(self) -> str:
        return "official" if self.official else "kubernetes-built"

    @property
    def tools(self) -> tuple[str, ...]:
        """The executables on the image's PATH."""
        return ("etcd", "etcdctl", "etcdutl") if self.official else ("sh", "etcd", "etcdctl")

    @property
    def semver(self) -> str:
        return ".".join(str(p) for p in self.version)

    @property
    def minor(self) -> tuple[int, int]:
        return self.version[0], self.version[1]

    @property
    def etcdctl_restores(self) -> bool:
        """Whether its etcdctl still has ``snapshot restore``/``status`` (removed in 3.6)."""
        return self.minor < (3, 6)

    def bump_flags(self, tool: str) -> bool:
        """Whether TOOL's ``snapshot restore`` takes --bump-revision/--mark-compacted."""
        if tool == "etcdutl":
            return "etcdutl" in self.tools
        return tool == "etcdctl" and self.etcdctl_restores and self.version >= (3, 5, 10)


def etcd_image(tag: str) -> EtcdImage:
    """The kind and tools of an etcd image tag (``3.5.21-0``: Kubernetes-built; ``3.7.0-0``: official);
    InvalidVersionError for a tag that is not ``X.Y.Z-N``."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)-\d+", tag)
    if match is None:
        raise InvalidVersionError(f"{tag!r} is not an etcd image tag (like 3.5.24-0)")
    major, minor, patch = (int(g) for g in match.groups())
    return EtcdImage(tag, (major, minor, patch))


def coredns_tag(version: Version) -> str:
    return COREDNS.get(version.minor, "v1.11.3")


def pause_tag(version: Version) -> str:
    return PAUSE.get(version.minor, "3.9")


def image(component: str, tag: str) -> str:
    return f"{REGISTRY}/{component}:{tag}"


def images(version: Version) -> list[str]:
    """The images `kubeadm config images list` prints for a version."""
    v = str(version)
    return [
        image("kube-apiserver", v),
        image("kube-controller-manager", v),
        image("kube-scheduler", v),
        image("kube-proxy", v),
        image("coredns/coredns", coredns_tag(version)),
        image("pause", pause_tag(version)),
        image("etcd", etcd_tag(version)),
    ]


def version_info(version: Version) -> dict[str, str]:
    """A Go version.Info as kubeadm/kubelet print it; the commit is a stable stand-in."""
    commit = hashlib.sha1(str(version).encode()).hexdigest()
    return {
        "major": str(version.major),
        "minor": str(version.minor),
        "gitVersion": str(version),
        "gitCommit": commit,
        "gitTreeState": "clean",
        "buildDate": _build_date(version),
        "goVersion": GO_VERSION.get(version.minor, "go1.22.9"),
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _build_date(version: Version) -> str:
    """Roughly when it shipped: minors every 4 months from v1.24 (May 2022), patches monthly."""
    months = 2022 * 12 + 4 + (version.minor - 24) * 4 + version.patch
    return f"{months // 12}-{months % 12 + 1:02d}-10T18:00:00Z"


def parse_package(text: str) -> Version:
    """A pkgs.k8s.io package version, Debian (1.31.4-1.1) or RPM (1.31.4-150500.1.1) -> v1.31.4.

    The package versions themselves are :attr:`Version.deb` and :attr:`Version.rpm`: the sandbox
    stores each node's installed versions in its package manager's spelling."""
    return Version.parse(text.split("-", 1)[0])
