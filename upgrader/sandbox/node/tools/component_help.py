"""``COMPONENT --help`` of the kube-apiserver, kube-controller-manager and kube-scheduler images.

Placeholder: the sandbox's ``ctr run ... registry.k8s.io/kube-apiserver:vX ID kube-apiserver --help``
prints what :func:`help_text` returns. The real text (with the ``--emulated-version`` paragraph for
that binary) is written by the kubeadm side of the sandbox; this module keeps the call site stable.
"""

from __future__ import annotations


def help_text(component: str, version: str) -> str:
    """The help COMPONENT (``kube-apiserver``...) prints at VERSION (the image tag, ``v1.33.2``)."""
    return ""
