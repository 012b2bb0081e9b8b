"""Which operating system a sandbox node plays: Debian (apt, dpkg) or RHEL (dnf, rpm).

Chosen once per sandbox (``sandbox up --os``, kept in ``config.json``) so upgrader's package steps
can be rehearsed against both package managers. A node's OS is a fact of its root, as on a real
machine: provisioning writes its ``/etc/os-release``, and the node's tools read that file to know
which package manager the node has. A node root without one (made before there was a choice) is
Debian.

The two OSes differ only where the Kubernetes packages are concerned: the repository file
(``/etc/apt/sources.list.d/kubernetes.list`` or ``/etc/yum.repos.d/kubernetes.repo``), the package
manager (apt-get/apt-mark/dpkg or dnf/yum/rpm; the other one's commands are not there) and the
package version spelling (``1.31.4-1.1`` or ``1.31.4-150500.1.1``). Everything else (kubeadm, the
kubelet, systemctl) is the same on both.
"""

from __future__ import annotations

from upgrader.domain.text import excerpt
from upgrader.domain.versions import Version
from upgrader.errors import UsageError
from upgrader.node_layout import NodeLayout
from upgrader.sandbox.node import machine

DEBIAN = "debian"
RHEL = "rhel"
NAMES = (DEBIAN, RHEL)
OS_RELEASE = "/etc/os-release"

# What Debian 12 and RHEL 9.5 ship as /etc/os-release (the parts tools read: ID, ID_LIKE, VERSION_ID)
OS_RELEASE_TEXT = {
    DEBIAN: ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
             'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.debian.org/"\n'
             'SUPPORT_URL="https://www.debian.org/support"\nBUG_REPORT_URL="https://bugs.debian.org/"\n'),
    RHEL: ('NAME="Red Hat Enterprise Linux"\nVERSION="9.5 (Plow)"\nID="rhel"\nID_LIKE="fedora"\n'
           'VERSION_ID="9.5"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Red Hat Enterprise Linux 9.5 (Plow)"\n'
           'ANSI_COLOR="0;31"\nCPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"\n'
           'HOME_URL="https://www.redhat.com/"\nBUG_REPORT_URL="https://issues.redhat.com/"\n'),
}


def check(name: str) -> None:
    """For `sandbox up --os`: one of :data:`NAMES`, or a UsageError (exit 2) saying which."""
    if name not in NAMES:
        raise UsageError(f"--os {excerpt(name)}: use {DEBIAN} (the default: apt and dpkg) or {RHEL} (dnf and rpm)")


def package_version(name: str, version: Version) -> str:
    """The pkgs.k8s.io package version of a release in this OS's package manager's spelling."""
    return version.rpm if name == RHEL else version.deb


def of_release(text: str) -> str:
    """The OS an os-release file describes: RHEL for RHEL and its relatives (ID or ID_LIKE), else Debian."""
    ids: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in ("ID", "ID_LIKE"):
            ids.update(value.strip().strip("\"'").split())
    return RHEL if ids & {"rhel", "fedora", "centos"} else DEBIAN


def node_os(layout: NodeLayout) -> str:
    """The OS of the node whose root this is (its /etc/os-release; Debian without one)."""
    return of_release(machine.read_text(layout, OS_RELEASE))
