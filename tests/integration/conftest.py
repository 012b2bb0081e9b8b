"""Fixtures shared by the sandbox API tests: a module-scoped real etcd cluster, an API server per test."""

from __future__ import annotations

import pytest

from tests.integration.etcd_cluster import tls_etcd  # noqa: F401  (a session's TLS etcd, shared by the etcd tests)
from tests.integration.sandbox_helpers import etcd_cluster, sandbox_api


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three real etcd members for the module (a module may override this with a smaller cluster)."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as started:
        yield started


@pytest.fixture
def api(members, tmp_path):
    """A seeded sandbox API server on those members, its controllers reconciled once."""
    with sandbox_api(members, tmp_path) as sandbox:
        sandbox.reconcile()
        yield sandbox


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory):
    """A real OpenSSH server for the module (tests/integration/sshd.py); every SSH master the tests
    left open is closed before it stops."""
    from tests.integration.sshd import sshd
    from upgrader.nodes.ssh import close_all

    with sshd(tmp_path_factory.mktemp("sshd")) as server:
        try:
            yield server
        finally:
            close_all()
