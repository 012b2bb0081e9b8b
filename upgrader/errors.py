"""One exception tree for every expected failure; each class carries its exit code.

Only the CLI turns these into exits (see ARCHITECTURE.md "Errors and exit codes"). The docstring of
each class is its default message, so ``raise ClusterNotFoundError()`` still says something useful.
"""

from __future__ import annotations


class UpgraderError(Exception):
    """upgrader failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(UpgraderError):
    """Bad usage, bad input or configuration."""

    exit_code = 2


class InvalidVersionError(UsageError):
    """Not a Kubernetes version (expected vMAJOR.MINOR.PATCH or vMAJOR.MINOR)."""


class InvalidInventoryError(UsageError):
    """The inventory document is malformed."""


class InvalidCatalogError(UsageError):
    """The release catalog is malformed."""


class InvalidNameError(UsageError):
    """Names are lowercase letters, digits and '-', 1 to 63 characters, starting with a letter."""


class ClusterNotFoundError(UsageError):
    """No such cluster in the ledger."""


class ClusterExistsError(UsageError):
    """A cluster with that name is already registered."""


class KubeconfigError(UsageError):
    """The kubeconfig file is unusable."""


class DatabaseError(UsageError):
    """The ledger database is unusable."""


class SchemaMismatchError(DatabaseError):
    """The ledger schema does not match this version of upgrader."""


class NoUpgradePathError(UpgraderError):
    """No valid upgrade plan exists."""

    exit_code = 3


class SkewViolationError(NoUpgradePathError):
    """The cluster is in a state the documented kubeadm procedure cannot produce."""


class PreflightError(UpgraderError):
    """Preflight refused; nothing was changed."""

    exit_code = 4


class RunLockedError(UpgraderError):
    """Another run holds the cluster's lock."""

    exit_code = 7


class LedgerBusyError(UpgraderError):
    """The ledger stayed busy: another process held its write lock for longer than upgrader waits."""

    exit_code = 7


class IntegrityError(UpgraderError):
    """Integrity check failed."""

    exit_code = 8


class RehearsalFailedError(IntegrityError):
    """`apply --rehearse`: the rollback rehearsal of a hop's snapshot failed; the hop did not start."""


class PlanNotFoundError(UsageError):
    """No plan with that id in the ledger."""


class LockLostError(RunLockedError):
    """This run no longer holds the cluster's lock: its lease expired and another run took it over."""


class ClusterUnreachableError(UsageError):
    """The cluster's API could not be reached with the registered kubeconfig."""


class MissingProgramError(UsageError):
    """An outside program upgrader needs is not installed."""


class HostKeyError(UsageError):
    """The node's SSH host key is unknown or has changed; refused (see --accept-new-host-keys)."""


class EtcdToolError(UsageError):
    """The etcd client tools on this host are missing or too old for the cluster's etcd."""


class EtcdCommandError(UpgraderError):
    """An etcd client tool failed in a way upgrader does not recognise (its last line says how).

    Exit 2: the environment failed (the tool, the member), not upgrader; 1 is kept for bugs."""

    exit_code = 2


class SnapshotStoreError(UsageError):
    """The snapshot store cannot take the snapshot (not writable, or full); nothing was recorded."""


class SnapshotNotFoundError(UsageError):
    """No snapshot with that id in the ledger."""


class TransportError(UpgraderError):
    """The node could not be reached or the file operation failed.

    Exit 2: a node that refuses a read or a write is the environment's failure, not a bug (1)."""

    exit_code = 2


class NodeUnreachableError(TransportError):
    """The node is unreachable (no connection, or it was lost): no command ran, or its outcome is unknown.

    Exit 2 like an unreachable API (ClusterUnreachableError): the operator fixes an address, a route
    or the node, then runs the command again."""

    exit_code = 2


class NodeAuthError(TransportError):
    """The node refused our ssh login (wrong user or key)."""

    exit_code = 2


class NodePathError(TransportError):
    """The node path leaves the node's root directory."""


class FileMissingError(TransportError):
    """The node has no file at that path (ENOENT): the one read failure a caller may take as "not there"."""


class NodeFileError(TransportError):
    """A node file or command that must succeed failed (permission denied, sudo refused, ...): nothing was recorded.

    Exit 2: the operator fixes the node's permissions or sudo rules, then runs the command again."""

    exit_code = 2


class RunNotFoundError(UsageError):
    """No run with that id in the ledger."""


class InvalidTransitionError(UpgraderError):
    """A run or step status change that the run state machine forbids (a bug, exit 1)."""


class NodeNotFoundError(UsageError):
    """The cluster's API has no node with that name."""


class ClusterChangedError(NoUpgradePathError):
    """The cluster changed since the plan was made; make a new plan (exit 3)."""


class RunRefusedError(UsageError):
    """This plan or run cannot be applied or resumed as asked (already applied, cluster removed, finished run)."""


class RunFailedError(UpgraderError):
    """A step or health gate failed and the run stopped; manual action needed (exit 6)."""

    exit_code = 6


class RolledBackError(UpgraderError):
    """A step failed and the cluster was rolled back to the known-good snapshot (exit 5)."""

    exit_code = 5


class RunInterruptedError(UpgraderError):
    """The run was interrupted at a safe point; it is resumable (exit 130)."""

    exit_code = 130


class DrainError(UpgraderError):
    """The drain stopped: the API refused an eviction for a reason other than a disruption budget (exit 6).

    The node stays cordoned and its remaining pods stay where they are; manual action is needed."""

    exit_code = 6


class DrainTimeoutError(DrainError):
    """The drain timed out: pods are still on the node, their evictions refused by a PodDisruptionBudget (exit 6).

    ``pods`` are the ``namespace/name`` still there, ``budgets`` the ``namespace/name`` of the
    PodDisruptionBudgets that guard them; the node stays cordoned (``--force-drain`` deletes them)."""

    def __init__(self, message: str | None = None, *, pods: tuple[str, ...] = (),
                 budgets: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.pods = pods
        self.budgets = budgets


class InvalidScheduleError(UsageError):
    """The schedule is malformed (a window, freeze, age, channel or target that upgrader cannot read)."""


class CatalogUnavailableError(UsageError):
    """The release listing could not be read (network down, server error, timeout); nothing was stored.

    Exit 2. A schedule tick carries on with the listing the ledger already holds."""


class PlaybookError(UsageError):
    """A playbook or runbook file that is not valid: the message names the file, the step and the field."""
