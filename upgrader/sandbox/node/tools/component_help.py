"""What ``kube-apiserver|kube-controller-manager|kube-scheduler --help`` says about ``--emulated-version``.

The image of each control-plane component (registry.k8s.io/kube-apiserver:vX, run through the node's
``ctr``) is where an operator, or upgrader, reads the emulation range a binary accepts: DOMAIN.md says
to read it there and never compute it. The range is the sandbox API server's own rule
(:mod:`upgrader.sandbox.apiserver.emulation`), printed in the wording of k8s.io/component-base for
that release: v1.31 and v1.32 registered the flag with ``Options are:`` followed by the range on its
own line and no line break before the last sentence; from v1.33 (the ``compatibility`` package) the
range follows ``Options are:`` on the same line as ``kube=1.31..1.34(default:1.34)``. Binaries older
than v1.31 have no such flag, so their help has no such paragraph.
"""

from __future__ import annotations

from upgrader.domain.versions import Version
from upgrader.sandbox.apiserver.emulation import EmulationRange, allowed_range

COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
SUMMARY = {
    "kube-apiserver": "The Kubernetes API server validates and configures data\nfor the api objects which include "
                      "pods, services, replicationcontrollers, and\nothers. The API Server services REST operations "
                      "and provides the\nfrontend to the cluster's shared state through which all other components "
                      "interact.",
    "kube-controller-manager": "The Kubernetes controller manager is a daemon that embeds\nthe core control loops "
                               "shipped with Kubernetes.",
    "kube-scheduler": "The Kubernetes scheduler is a control plane process which assigns\nPods to Nodes.",
}
FLAG = "      --emulated-version strings"
GATES = "      --feature-gates colonSeparatedMultimapStringString"
GATES_USAGE = ("Comma-separated list of component:key=value pairs that describe feature gates for alpha/experimental "
               "features of different components.")
COLUMN = len(GATES) + 3  # pflag starts every usage text of a section three past its longest flag


def emulated_version_usage(version: Version) -> str | None:
    """The flag's usage text as the binary registers it, or None when the binary has no such flag."""
    allowed = allowed_range(version.major, version.minor)
    if allowed is None:
        return None
    head = ("The versions different components emulate their capabilities (APIs, features, ...) of.\n"
            "If set, the component will emulate the behavior of this version instead of the underlying binary "
            "version.\nVersion format could only be major.minor, for example: "
            "'--emulated-version=wardle=1.2,kube=1.31'.")
    tail = 'If the component is not specified, defaults to "kube"'
    if version.minor <= 32:
        return f"{head} Options are:\n{_old_option(allowed, version)}{tail}"
    return f"{head}\nOptions are: {_new_option(allowed, version)}\n{tail}"


def _old_option(allowed: EmulationRange, version: Version) -> str:
    own = f"{version.major}.{version.minor}"
    return f"kube={version.major}.{allowed.lowest}..{version.major}.{allowed.highest} (default={own})"


def _new_option(allowed: EmulationRange, version: Version) -> str:
    own = f"{version.major}.{version.minor}"
    return f"kube={version.major}.{allowed.lowest}..{version.major}.{allowed.highest}(default:{own})"


def flag_paragraph(version: Version) -> str:
    """The ``--emulated-version`` entry as pflag prints it (usage lines indented to one column), or ""."""
    usage = emulated_version_usage(version)
    if usage is None:
        return ""
    indent = "\n" + " " * COLUMN
    return FLAG.ljust(COLUMN) + usage.replace("\n", indent)


def help_text(component: str, version: str) -> str:
    """``COMPONENT --help`` of the binary at ``version`` (the image tag ``v1.34.2``, or ``1.34.2``), cut
    to its summary and the generic section's ``--emulated-version`` entry (absent before v1.31), without
    the final newline.

    ValueError for a component that is not one of :data:`COMPONENTS` or a version that does not parse.
    """
    if component not in COMPONENTS:
        raise ValueError(f"not a control-plane component with --emulated-version: {component!r}")
    parsed = Version.parse(version if version.startswith("v") else f"v{version}")
    lines = [SUMMARY[component], "", "Usage:", f"  {component} [flags]", "", "Generic flags:", ""]
    paragraph = flag_paragraph(parsed)
    if paragraph:
        lines.append(paragraph)
    lines.append(GATES.ljust(COLUMN) + GATES_USAGE)
    return "\n".join(lines)  # the caller prints it as a line, as the binary ends it with one newline
