"""Simulated node commands: ``python -m upgrader.sandbox.node.tools TOOL ARGS...``.

Each sandbox node has wrappers on its ``/usr/bin`` and ``/usr/sbin`` that run this with the node
baked into the environment (see :mod:`upgrader.sandbox.node.wrappers`). A tool reads and writes
only inside the node root, prints what the real tool prints for the cases the sandbox models, and
exits with the real tool's exit codes. This package holds what every tool shares: the node a
command runs on, and reading an option.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from upgrader.node_layout import NodeLayout


@dataclass
class Node:
    """The node a command runs on, and where it prints."""

    name: str
    layout: NodeLayout
    sandbox_dir: Path | None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    inp: TextIO = field(default_factory=lambda: sys.stdin)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def ask(self, prompt: str) -> str:
        """A prompt answered on stdin, as the real tools read it: "" when nothing answers (no stdin, EOF)."""
        self.out.write(prompt)
        self.out.flush()
        try:
            return self.inp.readline().strip()
        except (OSError, ValueError):  # closed or not readable
            return ""

    @classmethod
    def from_env(cls) -> Node:
        root = os.environ.get("UPGRADER_SANDBOX_NODE_ROOT")
        if not root:
            raise SystemExit("upgrader sandbox node command run outside a sandbox node (no UPGRADER_SANDBOX_NODE_ROOT)")
        sandbox_dir = os.environ.get("UPGRADER_SANDBOX_DIR")
        return cls(
            name=os.environ.get("UPGRADER_SANDBOX_NODE", Path(root).name),
            layout=NodeLayout(Path(root)),
            sandbox_dir=Path(sandbox_dir) if sandbox_dir else None,
        )


Tool = Callable[[Node, list[str]], int]


def option(args: list[str], *names: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE``."""
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None
