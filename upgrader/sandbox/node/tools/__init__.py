"""Simulated node commands: ``python -m upgrader.sandbox.nodecmd TOOL ARGS...``.

Each sandbox node has wrappers on its ``bin/`` that run this with the node baked into the
environment. A tool reads and writes only inside the node root, prints what the real tool prints
for the cases the sandbox models, and exits with the real tool's exit codes.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from upgrader.ports import NodeLayout


@dataclass
class Node:
    """The node a command runs on, and where it prints."""

    name: str
    layout: NodeLayout
    sandbox_dir: Path | None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        print(text, file=self.err, flush=True)

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


def tools() -> dict[str, Tool]:
    from upgrader.sandbox.nodecmd import apt, etcdctl, kubeadm, systemctl

    return {
        "kubeadm": kubeadm.main,
        "apt-get": apt.apt_get,
        "apt-mark": apt.apt_mark,
        "systemctl": systemctl.main,
        "etcdctl": etcdctl.main,
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in tools():
        print(f"usage: python -m upgrader.sandbox.nodecmd {{{','.join(tools())}}} ARGS...", file=sys.stderr)
        return 2
    return tools()[args[0]](Node.from_env(), args[1:])
