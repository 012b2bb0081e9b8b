"""Where sandboxes are: ``registry.json`` names each sandbox's directory.

A sandbox lives in ``$XDG_DATA_HOME/upgrader/sandboxes/NAME`` unless `up --dir` put it elsewhere;
the registry remembers those. A directory counts as a sandbox only once it holds its
``config.json`` (written last by `up`), so a half-created one is never found here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from upgrader.files import atomic_write
from upgrader.sandbox.lifecycle.errors import SandboxNotFoundError
from upgrader.sandbox.sandbox_config import CONFIG, SandboxConfig


def default_root() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "upgrader" / "sandboxes"


def _registry() -> Path:
    return default_root() / "registry.json"


def known() -> dict[str, str]:
    try:
        return dict(json.loads(_registry().read_text()))
    except (OSError, ValueError):
        return {}


def remember(name: str, sandbox_dir: Path | None) -> None:
    """Record where sandbox ``name`` lives (None: forget it)."""
    entries = known()
    if sandbox_dir is None:
        if name not in entries:
            return
        entries.pop(name)
    else:
        entries[name] = str(sandbox_dir)
    atomic_write(_registry(), json.dumps(entries, indent=1, sort_keys=True).encode())


def locate(name: str) -> Path | None:
    """The directory of an existing sandbox (one that has a config.json), or None."""
    candidates = [known().get(name), str(default_root() / name)]
    for c in candidates:
        if c and (Path(c) / CONFIG).exists():
            return Path(c)
    return None


def require(name: str) -> SandboxConfig:
    """The sandbox named so; SandboxNotFoundError when there is none."""
    found = locate(name)
    if found is None:
        raise SandboxNotFoundError(f"no sandbox named {name!r} (see `upgrader sandbox list`)")
    return SandboxConfig.load(found)
