"""A node transport whose commands and files are given, or that is unreachable."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import PurePosixPath

from upgrader import errors
from upgrader.ports import CommandResult


class FakeTransport:
    """A node whose files live in a dict and whose commands are answered by handlers you register.

    ``handlers[argv[0]]`` gets the argv and returns a CommandResult; an unknown program exits 127
    like a shell's "command not found". Every argv run is kept in ``ran``.
    """

    def __init__(self, *, handlers: Mapping[str, Callable[[list[str]], CommandResult]] | None = None,
                 files: Mapping[str, bytes] | None = None, unreachable: bool = False) -> None:
        self.handlers = dict(handlers or {})
        self.files: dict[str, tuple[bytes, int]] = {_node_path(p): (d, 0o644) for p, d in (files or {}).items()}
        self.unreachable = unreachable
        self.ran: list[list[str]] = []

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        self._reach()
        self.ran.append(list(argv))
        handler = self.handlers.get(argv[0]) if argv else None
        if handler is None:
            return CommandResult(127, "", f"{argv[0] if argv else ''}: command not found\n")
        return handler(list(argv))

    def read_file(self, path: str) -> bytes:
        self._reach()
        try:
            return self.files[_node_path(path)][0]
        except KeyError:
            raise errors.FileMissingError(f"cannot read {path}: No such file or directory") from None

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._reach()
        self.files[_node_path(path)] = (bytes(data), mode)

    def _reach(self) -> None:
        if self.unreachable:
            raise errors.NodeUnreachableError("node unreachable (fake)")


def _node_path(path: str) -> str:
    if not path.startswith("/"):
        raise ValueError(f"node paths are absolute, got {path!r}")
    parts: list[str] = []
    for part in PurePosixPath(path).parts[1:]:
        if part == "..":
            if not parts:
                raise errors.NodePathError(f"node path {path} climbs above the node's / (refused)")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)
