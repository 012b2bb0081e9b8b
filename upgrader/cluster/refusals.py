"""What to tell the operator when the API answers but refuses: one message per status, shared by every read."""

from __future__ import annotations

from upgrader.errors import ClusterUnreachableError


def api_refused(subject: str, status: int | None, reason: str | None, *,
                what: str = "the API") -> ClusterUnreachableError:
    """The error for an answer that is not the object asked for (exit 2, like an unreachable API);
    ``subject`` says whose (``cluster prod``).

    401 is spelled out: the usual cause is a kubeconfig whose token or client certificate has expired
    or been revoked (a kubeadm admin.conf certificate lasts a year), and the fix is new credentials."""
    if status == 401:
        return ClusterUnreachableError(
            f"{subject}: {what} refused the kubeconfig's credentials (401 Unauthorized): its token or "
            "client certificate is unknown, revoked or expired; get new credentials (on a control-plane node, "
            "`kubeadm kubeconfig user` or `kubeadm certs renew admin.conf`) and try again")
    if status == 403:
        return ClusterUnreachableError(
            f"{subject}: {what} refused access (403 Forbidden): the kubeconfig's user may not read "
            "what upgrader needs (nodes, pods, PodDisruptionBudgets, ConfigMaps in kube-system, /metrics)")
    return ClusterUnreachableError(f"{subject}: {what} answered {status} {reason or ''}".rstrip())
