"""What a person confirms before a kubeadm backup manifest is put back: which backup (its path and
kubeadm's timestamp), the image tag it runs, and whether that tag keeps the HA skew rule.

DOMAIN.md "Version skew policy": kube-apiserver instances in HA are within 1 minor of each other. A
backup from an older hop (kubeadm keeps every ``kubeadm-backup-manifests-*`` dir) can be two minors
behind the other control-plane nodes: restoring it would break that rule, so it is refused. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from upgrader.domain.versions import Version

_STAMP = re.compile(r"kubeadm-backup-manifests-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})(?:/|$)", re.ASCII)
_IMAGE = re.compile(r"^\s*(?:-\s+)?image:\s*['\"]?(?P<image>[^\s'\"]+)", re.MULTILINE)
_TAG = re.compile(r":v(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]*)?$", re.ASCII)
MAX_HA_SKEW = 1  # minors between kube-apiserver instances


def backup_stamp(path: str) -> str | None:
    """kubeadm's ``YYYY-MM-DD-HH-MM-SS`` of a backup path, as ``YYYY-MM-DD HH:MM:SS`` (node's clock)."""
    m = _STAMP.search(path)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)} {m.group(4)}:{m.group(5)}:{m.group(6)}" if m else None


def manifest_image(text: str) -> str | None:
    """The first container image of a static pod manifest."""
    m = _IMAGE.search(text)
    return m.group("image") if m else None


def image_version(image: str | None) -> Version | None:
    """The Kubernetes version of an image tag (``...:v1.31.4``), None when the tag is no version."""
    m = _TAG.search(image or "")
    return Version(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def skew_refusal(backup: Version | None, others: Mapping[str, Version]) -> str | None:
    """Why putting back a manifest at ``backup`` breaks the HA skew with the other nodes' API servers
    (node -> version), or None when it keeps it (or nothing is known to compare)."""
    if backup is None:
        return None
    far = sorted(n for n, v in others.items() if v.major != backup.major or abs(v.minor - backup.minor) > MAX_HA_SKEW)
    if not far:
        return None
    shown = ", ".join(f"{n} {others[n]}" for n in far)
    return (f"the backup runs {backup}, more than {MAX_HA_SKEW} minor from the kube-apiserver of {shown} "
            "(HA skew rule): it is an older hop's backup; restore the right one by hand or roll the upgrade back")
