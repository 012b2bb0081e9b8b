"""In-memory fakes of the ports, shipped in the package so use cases can be tested in milliseconds.

Each fake implements its Protocol in ``upgrader.ports`` and passes the same contract tests as the
real adapter (tests/integration/test_port_contracts.py): same records, same errors and exit codes,
same transaction semantics. They are not mocks: they keep state and enforce the rules.
"""

from upgrader.fakes.clock import FakeClock
from upgrader.fakes.cluster import FakeClusterApi
from upgrader.fakes.etcd import FakeEtcdTool
from upgrader.fakes.ledger import InMemoryLedger, InMemoryRepository, InMemoryUnitOfWork
from upgrader.fakes.nodes import FakeTransport

__all__ = ["FakeClock", "FakeClusterApi", "FakeEtcdTool", "FakeTransport", "InMemoryLedger", "InMemoryRepository",
           "InMemoryUnitOfWork"]
