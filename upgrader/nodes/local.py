"""LocalTransport: runs node commands on this machine, against a :class:`NodeLayout`.

Used when upgrader runs on the node itself (root ``/``), and underneath the sandbox transport,
whose nodes are directories on this machine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from upgrader.errors import FileMissingError, TransportError
from upgrader.files import atomic_write
from upgrader.ports import CommandResult, NodeLayout


class LocalTransport:
    """Runs argv with subprocess (never a shell) and reads/writes files through the layout."""

    def __init__(
        self,
        layout: NodeLayout | None = None,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.layout = layout or NodeLayout()
        self._env = dict(env) if env is not None else None
        self._cwd = cwd

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",  # a node command may print any bytes
                timeout=timeout,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: command not found\n")
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return CommandResult(124, out, f"timed out after {timeout:g}s: {argv[0]}\n")
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def read_file(self, path: str) -> bytes:
        try:
            return self.layout.host_path(path).read_bytes()
        except FileNotFoundError as e:
            raise FileMissingError(f"cannot read {path}: {e.strerror}") from e
        except OSError as e:
            raise TransportError(f"cannot read {path}: {e.strerror}") from e

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = self.layout.host_path(path)
        try:
            atomic_write(target, data, mode)
        except OSError as e:
            raise TransportError(f"cannot write {path}: {e.strerror}") from e
