"""A minimal ``journalctl`` for the kubelet unit on a sandbox node: ``journalctl -u kubelet`` with
``-n N``/``--lines N``, ``-o cat``, ``--no-pager``, ``-x``, ``-e`` (what kubeadm's help text and the
runbooks ask for). Other units have no entries (``-- No entries --``), as on a quiet node.
"""

from __future__ import annotations

from upgrader.sandbox.node import machine
from upgrader.sandbox.node.tools import Node, option
from upgrader.sandbox.node.tools.systemctl import journal_line

IGNORED = ("--no-pager", "-x", "-e", "-xe", "-ex", "--catalog", "--pager-end", "-q", "--quiet")


def main(node: Node, args: list[str]) -> int:
    unit = option(args, "-u", "--unit")
    lines = option(args, "-n", "--lines")
    output = option(args, "-o", "--output") or "short"
    combined = [a for a in args if a.startswith("-") and not a.startswith("--") and "u" in a and len(a) > 2]
    if unit is None and combined:  # -xeu kubelet
        i = args.index(combined[0])
        unit = args[i + 1] if i + 1 < len(args) else None
    if unit is None:
        node.warn("journalctl: only `journalctl -u kubelet` is simulated on sandbox node " + node.name)
        return 1
    entries = machine.journal_entries(node.layout) if unit.removesuffix(".service") == "kubelet" else []
    if lines is not None:
        if not lines.isdigit():
            node.warn(f'Failed to parse lines \'{lines}\'')
            return 1
        entries = entries[-int(lines):] if int(lines) else []
    if not entries:
        node.say("-- No entries --")
        return 0
    for e in entries:
        node.say(str(e.get("msg", "")) if output == "cat" else journal_line(node.name, e))
    return 0
