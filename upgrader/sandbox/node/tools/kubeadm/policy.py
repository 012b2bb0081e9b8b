"""kubeadm's upgrade version policy (cmd/kubeadm/app/phases/upgrade/policy.go), as a pure function.

Mandatory violations cannot be overridden; skippable ones can with ``--force``. The messages are
kubeadm's, word for word, because operators and upgrader's own error handling match on them.

The kubelet-skew rule here is written again on purpose, apart from the planner's
(:mod:`upgrader.domain.skew`): the sandbox is an independent oracle of kubeadm, so a planner that
gets the rule wrong meets a kubeadm that refuses, as on a real cluster. Never import one from the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from upgrader.domain.versions import Version

MAXIMUM_ALLOWED_MINOR_SKEW = 1


@dataclass(frozen=True, slots=True)
class PolicyErrors:
    mandatory: list[str] = field(default_factory=list)
    skippable: list[str] = field(default_factory=list)


def kubelet_skew(kubeadm: Version) -> int:
    """How many minors older than the target a kubelet may be: 1 up to v1.28, 3 from v1.29 (PR #120825).

    Kept apart from the planner's ``kubeadm_kubelet_skew`` on purpose: an independent oracle.
    """
    return 3 if kubeadm.minor >= 29 else 1


def enforce(*, cluster: Version, target: Version, kubeadm: Version, kubelets: list[Version]) -> PolicyErrors:
    """EnforceVersionPolicies: may kubeadm at `kubeadm` move a cluster at `cluster` to `target`?"""
    errs = PolicyErrors()
    t = f'"{target}"'
    if target.minor > cluster.minor + MAXIMUM_ALLOWED_MINOR_SKEW or target.major != cluster.major:
        errs.mandatory.append(
            f"Specified version to upgrade to {t} is too high; kubeadm can upgrade only "
            f"{MAXIMUM_ALLOWED_MINOR_SKEW} minor version at a time")
    if target.minor < cluster.minor - MAXIMUM_ALLOWED_MINOR_SKEW:
        errs.mandatory.append(
            f"Specified version to downgrade to {t} is too low; kubeadm can downgrade only "
            f"{MAXIMUM_ALLOWED_MINOR_SKEW} minor version at a time")
    if target.minor > kubeadm.minor:
        errs.mandatory.append(
            f"Specified version to upgrade to {t} is at least one minor release higher than the kubeadm "
            f"minor release ({target.minor} > {kubeadm.minor}). Such an upgrade is not supported")
    elif kubeadm < target:
        errs.skippable.append(
            f'Specified version to upgrade to {t} is higher than the kubeadm version "{kubeadm}". '
            "Upgrade kubeadm first using the tool you used to install kubeadm")
    if kubeadm.minor > target.minor:
        errs.skippable.append(
            f"Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version "
            f"{kubeadm.major}.{kubeadm.minor}")
    if target < cluster:
        errs.skippable.append(
            f'Specified version to upgrade to {t} is lower than the cluster version "{cluster}". '
            "Downgrades are not supported yet")
    too_old = sorted({str(k) for k in kubelets if target.minor - k.minor > kubelet_skew(kubeadm)})
    if too_old:
        errs.skippable.append(
            f"There are kubelets in this cluster that are too old that have these versions [{' '.join(too_old)}]")
    return errs


def render(errs: PolicyErrors, *, force: bool) -> str | None:
    """kubeadm's fatal output for these errors, or None when the upgrade may go on."""
    if errs.mandatory:
        lines = "\n".join(f"\t- {e}" for e in errs.mandatory)
        return ("[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n"
                f"{lines}\n\nPlease fix the misalignments highlighted above and try upgrading again")
    if errs.skippable and not force:
        lines = "\n".join(f"\t- {e}" for e in errs.skippable)
        return ("[upgrade/version] FATAL: the --version argument is invalid due to these errors:\n\n"
                f"{lines}\n\nCan be bypassed if you pass the --force flag")
    return None
