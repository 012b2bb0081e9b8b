"""Operator-written YAML read strictly: one document, duplicate keys refused, the line of every
mapping kept (a step's line goes into its error messages), every error one line naming the file.

PyYAML silently keeps the last of two equal keys and reads ``yes``/``on`` as booleans and ``1.30`` as
the number 1.3; the first is refused here, the others are refused by the domain's field readers
(domain/documents.py), which expect strings and say "quote it".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from upgrader.domain.documents import LINE_KEY
from upgrader.errors import PlaybookError

MAX_BYTES = 1 << 20


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and records each mapping's line under LINE_KEY."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in result
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a plain value, got {type(key).__name__}",
                key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (YAML would keep only the last one)", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
    result[LINE_KEY] = node.start_mark.line + 1
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path, *, shown_as: str | None = None) -> Any:
    """The one YAML document in ``path``, mappings carrying LINE_KEY; PlaybookError (exit 2) when the
    file cannot be read or is not YAML. ``shown_as`` is the name messages use (default: the path)."""
    return read_yaml(path, shown_as=shown_as)[0]


def read_yaml(path: Path, *, shown_as: str | None = None) -> tuple[Any, bytes]:
    """As :func:`load_yaml`, with the bytes the document was parsed from: the file is read once, so a
    hash of those bytes is the hash of what was parsed even when the file changes meanwhile."""
    name = shown_as or str(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as e:
        raise PlaybookError(f"{name}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_BYTES:
        raise PlaybookError(f"{name}: larger than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PlaybookError(f"{name}: not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_StrictLoader), data  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = e.problem or e.context or "not valid YAML"
        raise PlaybookError(f"{name}{where}: {problem}") from None
    except yaml.YAMLError as e:
        raise PlaybookError(f"{name}: not valid YAML ({str(e).splitlines()[0] if str(e) else 'unknown'})") from None


def line_of(value: Any) -> int | None:
    """The line a mapping read by load_yaml starts on."""
    return value.get(LINE_KEY) if isinstance(value, dict) else None


def without_lines(value: Any) -> Any:
    """``value`` with the LINE_KEY entries removed, recursively (for documents stored or printed)."""
    if isinstance(value, dict):
        return {k: without_lines(v) for k, v in value.items() if k != LINE_KEY}
    if isinstance(value, list):
        return [without_lines(v) for v in value]
    return value
