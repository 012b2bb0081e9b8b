"""Where sandboxes are: ``registry.json`` names each sandbox's directory.

A sandbox lives in ``$XDG_DATA_HOME/upgrader/sandboxes/NAME`` unless `up --dir` put it elsewhere;
the registry remembers those. A directory counts as a sandbox only once it holds its
``config.json`` (written last by `up`), so a half-created one is never found here, and only while
that config.json names this very directory and name: a copied or crafted one is no sandbox. Every
name is validated before a path is built from it, so no name reaches outside the sandboxes root.
"""

from __future__ import annotations

import json
from pathlib import Path

from upgrader.domain.names import is_name, validate_name
from upgrader.domain.text import excerpt
from upgrader.errors import UsageError
from upgrader.files import atomic_write
from upgrader.inputs import read_regular
from upgrader.sandbox.lifecycle.errors import SandboxNotFoundError
from upgrader.sandbox.lifecycle.root import LOCKS, default_root, ensure_root, flocked
from upgrader.sandbox.sandbox_config import CONFIG, SandboxConfig

__all__ = ["default_root", "known", "load", "locate", "remember", "require"]


MAX_REGISTRY = 4 * 1024 * 1024  # a line per sandbox


def _registry() -> Path:
    return default_root() / "registry.json"


def known() -> dict[str, str]:
    """NAME -> directory; entries that are not a valid name and an absolute path are left out (a
    registry edited by hand, or damaged, never makes a command fail or reach elsewhere)."""
    try:
        data = json.loads(read_regular(_registry(), limit=MAX_REGISTRY))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: where for name, where in data.items()
            if isinstance(where, str) and where.startswith("/") and "\0" not in where and is_name(name)}


def remember(name: str, sandbox_dir: Path | None) -> None:
    """Record where sandbox ``name`` lives (None: forget it)."""
    if sandbox_dir is None and name not in known():
        return
    locks = ensure_root() / LOCKS
    locks.mkdir(mode=0o700, exist_ok=True)
    with flocked(locks / ".registry.lock"):  # `up`s of other names update it at the same time
        entries = known()
        if sandbox_dir is None:
            entries.pop(name, None)
        else:
            entries[name] = str(sandbox_dir)
        atomic_write(_registry(), json.dumps(entries, indent=1, sort_keys=True).encode(), mode=0o600)


def locate(name: str) -> Path | None:
    """The directory of an existing sandbox (one that has a config.json), or None; exit 2 for a bad name."""
    validate_name(name, what="sandbox")
    candidates = [known().get(name), str(default_root() / name)]
    for c in candidates:
        if c and (Path(c) / CONFIG).exists():
            return Path(c)
    return None


def load(found: Path, name: str) -> SandboxConfig:
    """The config of sandbox ``name`` found in ``found``; exit 2 unless it is that sandbox's, in that directory."""
    try:
        cfg = SandboxConfig.load(found)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{str(found / CONFIG)!r} is not a sandbox's config "
                         f"({e.__class__.__name__}: {excerpt(str(e), 200)})") from e
    if cfg.name != name or cfg.dir.resolve() != found.resolve():
        raise UsageError(f"{str(found)!r} holds no sandbox {name!r}: its {CONFIG} names sandbox "
                         f"{excerpt(cfg.name)} in {excerpt(str(cfg.dir), 200)}")
    return cfg


def require(name: str) -> SandboxConfig:
    """The sandbox named so; SandboxNotFoundError when there is none."""
    found = locate(name)
    if found is None:
        raise SandboxNotFoundError(f"no sandbox named {name!r} (see `upgrader sandbox list`)")
    return load(found, name)
