"""Command-line flags the sandbox's kube-apiserver and kubelet refuse, as the real binaries do once a
minor removed them, and the exact words they exit with.

A flag removed in a minor makes the binary exit at start (cobra/pflag's ``unknown flag``): the
kube-apiserver's container prints ``Error: unknown flag: --insecure-port`` and the kubelet logs
``"command failed" err="failed to parse kubelet flag: unknown flag: --container-runtime"`` then
systemd restarts it, forever. Only flags whose removal is sure are listed:

- kube-apiserver 1.24 removed the insecure serving flags ``--insecure-port``, ``--insecure-bind-address``,
  ``--address`` and ``--port`` (kubernetes CHANGELOG-1.24);
- kubelet 1.24 removed the dockershim flags (``--network-plugin``, ``--cni-bin-dir``, ``--cni-conf-dir``;
  kubespray #8924, kubernetes/website #34755), 1.27 ``--container-runtime`` (replicatedhq/kURL #4451).

(``--pod-infra-container-image``, removed from the kubelet in 1.35, is not listed: the sandbox's kubeadm
still writes it into kubeadm-flags.env at every version.)
"""

from __future__ import annotations

import shlex

from upgrader.domain.versions import Minor, Version

APISERVER: dict[str, Minor] = {
    "insecure-port": Minor(1, 24), "insecure-bind-address": Minor(1, 24), "address": Minor(1, 24),
    "port": Minor(1, 24),
}
KUBELET: dict[str, Minor] = {
    "network-plugin": Minor(1, 24), "cni-bin-dir": Minor(1, 24), "cni-conf-dir": Minor(1, 24),
    "container-runtime": Minor(1, 27),
}
# what a fault writes to leave a flag that the version refuses: flag -> value, newest removal first
FAULT_VALUES = {"container-runtime": "remote", "network-plugin": "cni", "insecure-port": "0"}
KUBELET_FLAGS = "/var/lib/kubelet/kubeadm-flags.env"


def refused(flags: list[str], table: dict[str, Minor], version: Version | None) -> str | None:
    """The first of ``flags`` (``--name=value`` or ``--name``) that ``version`` no longer accepts, as ``--name``."""
    if version is None:
        return None
    for flag in flags:
        name = flag[2:].partition("=")[0] if flag.startswith("--") else ""
        removed = table.get(name)
        if removed is not None and not version.line < removed:
            return f"--{name}"
    return None


def fault_flag(table: dict[str, Minor], version: Version) -> str:
    """A ``--name=value`` that ``version`` refuses, removed as recently as possible before it."""
    gone = sorted(((m.major, m.minor), n) for n, m in table.items() if not version.line < m and n in FAULT_VALUES)
    if not gone:
        raise ValueError(f"no flag removed by {version.line} is known")
    name = gone[-1][1]
    return f"--{name}={FAULT_VALUES[name]}"


def apiserver_error(flag: str) -> str:
    """What kube-apiserver prints (stderr) before it exits 1 on a flag it does not know."""
    return f"Error: unknown flag: {flag}"


def kubelet_error(flag: str) -> str:
    return f'"command failed" err="failed to parse kubelet flag: unknown flag: {flag}"'


def env_flags(text: str) -> list[str]:
    """The flags of KUBELET_KUBEADM_ARGS in a kubeadm-flags.env text."""
    found: list[str] = []
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "KUBELET_KUBEADM_ARGS":
            try:
                words = shlex.split(value)
            except ValueError:
                words = value.strip('"').split()
            found += [w for word in words for w in word.split()]
    return found


def add_env_flag(text: str, flag: str) -> str:
    """kubeadm-flags.env with ``flag`` appended to KUBELET_KUBEADM_ARGS."""
    flags = [*env_flags(text), flag]
    return f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n'
