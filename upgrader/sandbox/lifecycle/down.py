"""`sandbox down`: stop a sandbox, and remove its files unless it is kept for a later `up`.

Stopping an unknown or stopped sandbox is a no-op; what a killed `up` left of a sandbox it never
finished creating is cleared too (it is no sandbox).
"""

from __future__ import annotations

import shutil

from upgrader.sandbox.lifecycle.creation import Creation
from upgrader.sandbox.lifecycle.registry import default_root, locate, remember
from upgrader.sandbox.lifecycle.teardown import stop_processes
from upgrader.sandbox.sandbox_config import CONFIG, SandboxConfig


def _remove(cfg: SandboxConfig) -> None:
    if (cfg.dir / CONFIG).exists():
        shutil.rmtree(cfg.dir, ignore_errors=True)
    remember(cfg.name, None)


def down(name: str, *, keep: bool = False) -> SandboxConfig | None:
    """Stop a sandbox and (unless keep) delete its files; None when there was no such sandbox."""
    found = locate(name)
    if found is None:
        remember(name, None)
        debris = Creation(default_root() / name)
        if debris.dir.exists() and debris.is_debris(name):
            stop_processes(debris.dir)
            shutil.rmtree(debris.dir, ignore_errors=True)
        return None
    cfg = SandboxConfig.load(found)
    stop_processes(cfg.dir)
    if not keep:
        _remove(cfg)
    return cfg
