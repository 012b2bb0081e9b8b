"""The runbook files: the shipped ``playbooks/runbooks/`` and an operator's ``--runbooks DIR`` (which
adds its own and replaces one of the same name), each read strictly (domain/runbooks.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader.domain.runbooks import NAME, Runbook, describe_static, parse_runbook
from upgrader.errors import UpgraderError, UsageError
from upgrader.services.yaml_docs import read_yaml
from upgrader.shipped import shipped_dir


@dataclass(frozen=True, slots=True)
class LoadedRunbook:
    runbook: Runbook
    path: Path
    text: str
    sha256: str
    source: str  # "shipped" or the --runbooks directory


def shipped_runbooks() -> Path:
    return shipped_dir("playbooks") / "runbooks"


def _files(extra: Path | None) -> dict[str, tuple[Path, str]]:
    found: dict[str, tuple[Path, str]] = {}
    dirs = [(shipped_runbooks(), "shipped")]
    if extra is not None:
        if not extra.is_dir():
            raise UsageError(f"--runbooks {extra}: not a directory")
        dirs.append((extra, str(extra)))
    for directory, source in dirs:
        if directory.is_dir():
            for path in sorted(directory.glob("*.yaml")):
                found[path.stem] = (path, source)
    return found


def _read(path: Path, source: str) -> LoadedRunbook:
    shown = f"{'playbooks/runbooks' if source == 'shipped' else source}/{path.name}"
    doc, data = read_yaml(path, shown_as=shown)  # one read: the sha256 is of the text parsed
    runbook = parse_runbook(doc, file=shown, stem=path.stem)
    return LoadedRunbook(runbook, path, data.decode(), hashlib.sha256(data).hexdigest(), source)


def catalog(extra: Path | None = None) -> list[LoadedRunbook]:
    """Every runbook, by name; a file that is not valid stops the listing with its error (exit 2)."""
    return [_read(path, source) for _name, (path, source) in sorted(_files(extra).items())]


@dataclass(frozen=True, slots=True)
class Listed:
    """One row of ``runbook list``: the runbook read, or the one-line error of its file."""

    name: str
    path: Path
    source: str
    loaded: LoadedRunbook | None
    error: str | None


def listing(extra: Path | None = None) -> list[Listed]:
    """Every runbook file, by name: a file that is not valid is listed with its error, the others as read."""
    rows = []
    for name, (path, source) in sorted(_files(extra).items()):
        try:
            rows.append(Listed(name, path, source, _read(path, source), None))
        except UpgraderError as e:
            rows.append(Listed(name, path, source, None, " ".join(e.message.split())))
    return rows


def load(name: str, extra: Path | None = None) -> LoadedRunbook:
    if not NAME.fullmatch(name):
        raise UsageError(f"invalid runbook name {name[:60]!r}: lowercase words joined by '-'")
    files = _files(extra)
    if name not in files:
        raise UsageError(f"no runbook {name!r} (known: {', '.join(sorted(files)) or 'none'}); "
                         "see `upgrader runbook list`")
    return _read(*files[name])


def show(name: str, extra: Path | None = None) -> dict[str, Any]:
    """The runbook for a person: purpose, when to use it, params, each step and what it does, after."""
    loaded = load(name, extra)
    doc = loaded.runbook.to_dict()
    for step, shown in zip(loaded.runbook.steps, doc["steps"], strict=True):
        shown["does"] = describe_static(step)
        shown["changes"] = step.spec.changes
    return doc | {"source": loaded.source, "sha256": loaded.sha256}
