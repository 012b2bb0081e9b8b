"""One `kubeadm upgrade` at a time on a node, even across upgrader processes that died.

kubeadm takes no lock of its own, and a node command outlives the upgrader that started it: an
upgrader killed in a kubeadm step leaves its `kubeadm upgrade` running on the node (moving static pod
manifests, waiting for the kubelet, and, when that wait runs out, putting the old manifests back).
A resume that started a second kubeadm beside it would have two writers of the same manifests: the
first one's rollback can undo what the second one did while both report success or failure of their own.

So every kubeadm upgrade upgrader runs holds flock(1) on the node's ``/etc/kubernetes``
(:func:`upgrader.nodes.commands.kubeadm_locked`). The lock belongs to the open file kubeadm inherits
from flock, so it lasts exactly as long as that kubeadm runs, whether or not the upgrader that
started it (or flock itself) is still alive, and the kernel drops it when kubeadm ends, however it
ends. A step's act waits for it before kubeadm starts; a resumed step's observe waits for it before
it looks, so it judges what the earlier kubeadm left, not a moment in its middle.

Why a lock rather than looking for a kubeadm in the node's process list (``pgrep``): the lock is
taken atomically with starting kubeadm (nothing can start between a look and the start), it names
exactly the commands that must not overlap (not a kubeadm someone runs to print its version), and
it is what the node itself enforces. flock is util-linux's, on every distribution kubeadm supports;
on a sandbox node it is the machine's own flock on the node's own directory, so the sandbox shows
the real behaviour rather than a simulation of it.
"""

from __future__ import annotations

from upgrader.engine.context import RunContext, StepCommandError
from upgrader.errors import UpgraderError
from upgrader.nodes import commands
from upgrader.ports import CommandResult


class NodeBusyError(UpgraderError):
    """A kubeadm upgrade started earlier (by an upgrader that died) still runs on the node."""

    exit_code = 6


def run(ctx: RunContext, node: str, argv: list[str]) -> CommandResult:
    """kubeadm ``argv`` on ``node`` once no other kubeadm upgrade of upgrader's runs there."""
    wait = ctx.options.command_timeout
    locked = commands.kubeadm_locked(argv, wait)
    return _checked(node, argv, ctx.run(node, locked, timeout=wait + ctx.options.command_timeout, check=False),
                    wait)


def wait(ctx: RunContext, node: str) -> None:
    """Returns once no kubeadm upgrade of upgrader's runs on ``node`` (at once when none does)."""
    seconds = ctx.options.command_timeout
    _checked(node, ["true"], ctx.run(node, commands.kubeadm_locked(["true"], seconds), timeout=seconds + 60,
                                     check=False), seconds)


def _checked(node: str, argv: list[str], result: CommandResult, waited: float) -> CommandResult:
    if result.ok:
        return result
    if result.exit_code == commands.KUBEADM_BUSY:
        raise NodeBusyError(f"a kubeadm upgrade started earlier still runs on {node} after {waited:g}s (it holds "
                            f"{commands.KUBEADM_LOCK}); let it end or stop it, then resume")
    raise StepCommandError(node, argv, result)
