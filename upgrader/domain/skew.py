"""The version-skew rules the planner must never break (DOMAIN.md "Version skew policy").

- kube-apiserver instances: newest and oldest within 1 minor.
- kubelet: never newer than any apiserver; at most 3 minors older than every apiserver
  (only 2 for kubelets older than v1.25).
- kubeadm's own check before ``upgrade apply`` to T: kubelets at most 1 minor behind T while
  kubeadm is v1.28 or older, 3 minors from v1.29 (kubernetes/kubernetes PR #120825).
"""

from __future__ import annotations

from upgrader.domain.versions import Minor

_KUBELET_SKEW_WIDENED = Minor(1, 25)
_KUBEADM_SKEW_WIDENED = Minor(1, 29)


def kubelet_max_skew(kubelet: Minor) -> int:
    """How many minors a kubelet of this minor may trail the apiservers."""
    return 3 if kubelet >= _KUBELET_SKEW_WIDENED else 2


def kubeadm_kubelet_skew(target: Minor) -> int:
    """How many minors kubeadm ``upgrade apply`` to ``target`` lets kubelets trail it.

    The sandbox's simulated kubeadm writes this rule again on purpose: it is an independent oracle
    that refuses what a wrong plan would ask of a real kubeadm. Never import one from the other.
    """
    return 3 if target >= _KUBEADM_SKEW_WIDENED else 1


def kubelet_fits(kubelet: Minor, *, oldest_apiserver: Minor, newest_apiserver: Minor) -> bool:
    """True when the policy allows this kubelet beside apiservers spanning that range."""
    return kubelet <= oldest_apiserver and newest_apiserver.minus(kubelet) <= kubelet_max_skew(kubelet)


def kubelet_too_old(kubelet: Minor, *, newest_apiserver: Minor) -> bool:
    return newest_apiserver.minus(kubelet) > kubelet_max_skew(kubelet)


def lowest_kubelet_for_hop(hop: Minor) -> Minor:
    """The oldest kubelet minor that may stay put while the control plane moves to ``hop``.

    Both rules bind: kubeadm's pre-apply check, and the skew policy against the new apiserver.
    """
    allowed = kubeadm_kubelet_skew(hop)
    candidate = Minor(hop.major, hop.minor - allowed)
    while kubelet_too_old(candidate, newest_apiserver=hop):
        candidate = candidate.next()
    return candidate


def kubelet_may_stay(kubelet: Minor, *, hop: Minor) -> bool:
    return kubelet >= lowest_kubelet_for_hop(hop)
