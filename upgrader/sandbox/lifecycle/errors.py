"""What `sandbox up`, `down` and `fault` refuse or fail with.

Every refusal is a :class:`~upgrader.errors.UsageError` (exit 2): nothing was changed. A sandbox that
was started and did not come up is :class:`SandboxStartError` (exit 1); `up` has already stopped it.
"""

from __future__ import annotations

from upgrader.errors import UpgraderError, UsageError


class SandboxExistsError(UsageError):
    """A sandbox with that name is already running."""


class SandboxBusyError(UsageError):
    """Another `upgrader sandbox up` or `down` is at work on that sandbox."""


class SandboxNotFoundError(UsageError):
    """No such sandbox."""


class NotASandboxError(UsageError):
    """The directory was not made by `upgrader sandbox up`, so no sandbox command changes or removes it."""


class SandboxConflictError(UsageError):
    """The sandbox exists, and `up` resumes it as it is: its creation options cannot change."""


class PortInUseError(UsageError):
    """A port the sandbox needs is already in use."""


class SandboxUnavailableError(UsageError):
    """The sandbox's etcd or API could not be reached; nothing was changed."""


class SandboxStartError(UpgraderError):
    """The sandbox did not start."""
