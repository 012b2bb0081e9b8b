"""`sandbox down`: stop a sandbox, and remove its files unless it is kept for a later `up`.

Stopping an unknown or stopped sandbox is a no-op; what a killed `up` left of a sandbox it never
finished creating is cleared too (it is no sandbox). Files are deleted only where `up`'s marker says
it made them for this sandbox (see :mod:`.creation`), and never while another `up` or `down` of the
name is at work (see :mod:`.root`): the name is validated before any path is built from it.
"""

from __future__ import annotations

from upgrader.sandbox.lifecycle.creation import clear_debris, removable, remove
from upgrader.sandbox.lifecycle.registry import default_root, load, locate, remember
from upgrader.sandbox.lifecycle.root import NameLock
from upgrader.sandbox.lifecycle.teardown import stop_processes
from upgrader.sandbox.sandbox_config import SandboxConfig


def down(name: str, *, keep: bool = False) -> SandboxConfig | None:
    """Stop a sandbox and (unless keep) delete its files; None when there was no such sandbox."""
    with NameLock(name, doing="stopped"):
        found = locate(name)
        if found is None:
            remember(name, None)
            debris = default_root() / name
            if debris.is_dir():
                clear_debris(debris, name, in_root=True)
            return None
        cfg = load(found, name)
        if not keep:
            removable(cfg.dir, name)  # refused before anything is stopped
        stop_processes(cfg.dir)
        if not keep:
            remove(cfg.dir, name)
            remember(cfg.name, None)
    return cfg
