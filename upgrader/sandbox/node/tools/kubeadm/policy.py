"""kubeadm's upgrade version policy (cmd/kubeadm/app/phases/upgrade/policy.go), as a pure function.

Mandatory violations cannot be overridden; skippable ones can with ``--force``. The messages are
kubeadm's, word for word, because operators and upgrader's own error handling match on them.
A one-minor downgrade is allowed by the policy (``MaximumAllowedMinorVersionDowngradeSkew``); only
a bigger step is refused. The kubeadm v1.9-era "Downgrades are not supported yet" is long gone.

The kubelet-skew rule here is written again on purpose, apart from the planner's
(:mod:`upgrader.domain.skew`): the sandbox is an independent oracle of kubeadm, so a planner that
gets the rule wrong meets a kubeadm that refuses, as on a real cluster. Never import one from the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from upgrader.domain.versions import Version
from upgrader.sandbox.node.tools.kubeadm.cluster import Fatal

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
    if (target.major, target.minor) < (kubeadm.major, kubeadm.minor - 1):  # constants.MinimumControlPlaneVersion
        # kubeadm quotes the cluster version as "the minimum supported version" here; so does this
        errs.mandatory.append(
            f"Specified version to upgrade to {t} is equal to or lower than the minimum supported version "
            f'"{cluster}". Please specify a higher version to upgrade to')
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
    too_old = sorted({str(k) for k in kubelets if target.minor - k.minor > kubelet_skew(kubeadm)})
    if too_old:
        errs.skippable.append(
            f"There are kubelets in this cluster that are too old that have these versions [{' '.join(too_old)}]")
    return errs


def render(errs: PolicyErrors, *, force: bool) -> Fatal | None:
    """kubeadm's fatal error for these errors (its v1.32+ form drops the ``--`` of ``--version``), or
    None when the upgrade may go on."""
    if errs.mandatory:
        lines = "\n".join(f"\t- {e}" for e in errs.mandatory)
        why = (f"argument is invalid due to these fatal errors:\n\n{lines}\n\nPlease fix the misalignments "
               "highlighted above and try upgrading again")
    elif errs.skippable and not force:
        lines = "\n".join(f"\t- {e}" for e in errs.skippable)
        why = f"argument is invalid due to these errors:\n\n{lines}\n\nCan be bypassed if you pass the --force flag"
    else:
        return None
    return Fatal(f"[upgrade/version] FATAL: the --version {why}", phase="preflight", modern=f"the version {why}")
