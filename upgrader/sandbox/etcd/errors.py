"""What etcd failures look like to the rest of the sandbox: one root, :class:`EtcdError`.

The API server answers an EtcdError as a 500 ``etcdserver: ...``, the kubelets and controllers retry on
their next tick, and ``sandbox fault`` reports it as "nothing was changed".
"""

from __future__ import annotations


class EtcdError(Exception):
    """etcd failed."""


class EtcdStartError(EtcdError):
    """An etcd member did not start or did not become healthy."""


class EtcdUnavailableError(EtcdError):
    """No etcd endpoint answered."""
