"""How upgrader reaches a cluster's etcd: the contract the inventory, preflight and snapshot use cases share.

By default the etcd client tools run on the orchestrator's host against a member's client URL,
with kubeadm's etcd client certificate read over the node transport into a private temp dir (and
an SSH local forward when the port is not reachable directly). External etcd (kubeadm-config says
so) uses the configured endpoints and client certificates. See DOMAIN.md, "etcd snapshots".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from upgrader.domain.records import ClusterRecord
from upgrader.ports import EtcdMember, EtcdTls, EtcdTool

if TYPE_CHECKING:
    from upgrader.services.wiring import AppContext


@dataclass
class EtcdSession:
    """A reachable etcd for one use case: the tool, client URLs reachable from here, TLS files."""

    tool: EtcdTool
    endpoints: list[str]  # reachable from this host (a forwarded 127.0.0.1:PORT when tunnelled)
    tls: EtcdTls | None
    external: bool = False
    node_of_endpoint: dict[str, str] = field(default_factory=dict)  # endpoint -> control-plane node

    def members(self, timeout: float = 10.0) -> list[EtcdMember]:
        return self.tool.members(self.endpoints, self.tls, timeout)


@contextmanager
def etcd_session(app: AppContext, cluster: ClusterRecord,
                 inventory: Mapping[str, Any] | None = None) -> Iterator[EtcdSession]:
    """Open a session on the cluster's etcd; temp files and forwards are gone when it closes."""
    if app.etcd_session_factory is not None:  # tests: a session over upgrader.fakes.FakeEtcdTool
        with app.etcd_session_factory(cluster, inventory) as session:
            yield session
        return
    raise NotImplementedError("etcd access is being built (issue 9)")
    yield  # pragma: no cover
