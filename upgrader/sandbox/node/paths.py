"""Best-effort isolation: which paths a sandbox node owns, and how its command lines are rewritten into its root.

Only for sandboxes started with ``--isolation=best-effort`` (machines without mount namespaces, see
:mod:`.isolation`); a node isolated in its own namespace needs none of this, its ``/`` is its root.
Here a node is a directory on the machine upgrader runs on (as root), not a chroot, so every
absolute path in a command line is classified and, when it belongs to the node, prefixed with the
node root. The decision (deliberate, see ARCHITECTURE.md "The sandbox cluster"):

- the node owns ``/`` itself and the top-level directories of a machine's state: /etc, /var, /tmp,
  /root, /run, /opt, /home, /srv, /mnt, /media, /boot, /snap, /backup; and, inside the shared OS
  image, what an upgrade changes: /usr/local, /usr/lib/systemd (= /lib/systemd), /usr/share/keyrings;
- its simulated tools (kubeadm, apt-get, systemctl, ...) live where a real node has them
  (/usr/bin, /usr/sbin) and every absolute spelling of them (/bin/X, /sbin/X, /usr/bin/X,
  /usr/sbin/X) names the node's tool, never the host's binary of that name;
- everything else of /usr, /bin, /sbin, /lib*, and the kernel's /dev, /proc, /sys is the shared OS
  image (``/proc/*/root`` and ``/proc/*/cwd`` are the node's ``/`` again).

A path is recognised wherever a shell or a flag could start one: at the start of an argument and
after whitespace, ``= , ; : | & < > ( ) { @`` or a quote, after an attached short option (``-o/tmp/x``),
and as the path of a ``scheme:///`` URL. A lone ``/`` word is the node's root (``cd /``, ``ls /``,
``chown -R x /``; so write ``cut -d/``, not ``cut -d /``). ``..`` never climbs above the node's ``/``.
A path the shell would still expand (a glob, a brace, a backslash, or text glued on by quotes or
``$``) is treated as the node's whenever its expansion could reach a node path.

A sed substitution (``sed -i 's|/var/lib/etcd|/var/lib/etcd-restored|' FILE``) is left alone: it
edits the text of a node file, which holds node paths. Other data that looks like a node path (a
grep pattern, the text of an ``echo``) is rewritten like a path.

Node output is shown with the node's paths (``/root/snap.db``), but only where typing that path
back names the same file: a host binary never looks like a node's.

This is a guard against honest mistakes, not a security boundary: a path the shell builds at run
time (``p=/e; cat ${p}tc/hostname``), a relative path climbing above the node root after a ``cd``,
a script stored on the node and run later, or a shell that resets PATH (``env -i``, a login shell
reading the host's /etc/profile) is not seen.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from pathlib import Path

NODE_TOP = frozenset({"etc", "var", "tmp", "root", "run", "opt", "home", "srv", "mnt", "media", "boot", "snap",
                      "backup"})
NODE_SUBTREES = ("usr/local", "usr/lib/systemd", "lib/systemd", "usr/share/keyrings")
TOOL_DIRS = frozenset({"bin", "sbin", "usr/bin", "usr/sbin"})
# shared top-level directories that contain node-owned paths (tools, subtrees, /proc/*/root)
GATEWAYS = frozenset({"usr", "bin", "sbin", "lib", "proc"})

_HARD_END = frozenset(" \t\n\r\v\f;|&<>(),:=")  # a path ends here and nothing can be glued onto it
_SOFT_END = frozenset("\"'`$")  # a path's text ends here, but the shell may glue more onto it
_STARTS_AFTER = _HARD_END | frozenset("\"'`{@")
_SPECIAL = frozenset("*?[]{}\\")  # the shell may still expand or unescape these
_PROC_ROOT = re.compile(r"^proc/[^/]+/(?:root|cwd)(/.*)?$")  # another process's / or cwd: the host's
_SED_DELIMITERS = frozenset("|,:;#@!%+")
_VIEW_END = r"""\s"'`,;:|&<>(){}="""


def normalize(path: str) -> str:
    """``/a/b/../c`` -> ``/a/c``; ``..`` stops at ``/`` (as in a chroot); a trailing ``/`` is kept."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    text = "/" + "/".join(parts)
    return text + "/" if path.endswith(("/", "/.", "/..")) and text != "/" else text


class NodePaths:
    """Path rewriting for one node: ``NodePaths(root, {"kubeadm": "/usr/bin/kubeadm", ...})``."""

    def __init__(self, root: Path, tools: Mapping[str, str]) -> None:
        self.root = str(root).rstrip("/")
        self.tools = dict(tools)
        self._view = re.compile(re.escape(self.root) + rf"(?=[/{_VIEW_END}]|$)(/[^{_VIEW_END}]*)?")

    def node_target(self, path: str) -> str | None:
        """The node path a normalized absolute path names, or None when it is the shared OS image's."""
        rel = path.strip("/")
        top = rel.split("/", 1)[0]
        if not rel or top in NODE_TOP or any(rel == s or rel.startswith(s + "/") for s in NODE_SUBTREES):
            return path
        head, _, name = rel.rpartition("/")
        if head in TOOL_DIRS and name in self.tools:
            return self.tools[name]
        proc = _PROC_ROOT.match(rel)
        if proc:  # /proc/1/root is the host's / (and /proc/1/cwd most likely): on a node, the node's /
            return self.node_target(normalize(proc.group(1) or "/"))
        return None

    def to_host(self, path: str) -> str:
        """The host path of a plain absolute node path (one without shell syntax)."""
        if _inside(path, 0, self.root):
            rest = path[len(self.root):]
            return self.root + (normalize(rest) if _climbs(rest) else rest)
        norm = normalize(path)
        target = self.node_target(norm)
        if target is None:
            return norm if _climbs(path) else path
        if target != norm:  # a simulated tool, or /proc/*/root/...
            return self.root + target
        return self.root + (norm if _climbs(path) else path)

    def rewrite(self, arg: str) -> str:
        """Every node path in one argument (or shell script) prefixed with the node root; idempotent."""
        out: list[str] = []
        i, n = 0, len(arg)
        while i < n:
            ch = arg[i]
            sed = _sed_substitution(arg, i)
            if sed:  # s|/var/lib/etcd|/var/lib/etcd-new| edits a file's text: node paths there stay as they are
                out.append(arg[i:sed])
                i = sed
                continue
            if ch == "~" and _starts_path(arg, i):
                i = self._tilde(arg, i, out)
                continue
            if ch != "/" or not _starts_path(arg, i):
                out.append(ch)
                i += 1
                continue
            if arg.startswith("//", i) and i > 0 and arg[i - 1] == ":":  # scheme://host/... is not a path
                out.append("//")
                i += 2
                if not arg.startswith("/", i):  # but scheme:///path (unix:///run/x.sock) is
                    continue
            j = i
            while j < n and arg[j] not in _HARD_END and arg[j] not in _SOFT_END:
                j += 1
            out.append(self._path(arg, i, j))
            i = j
        return "".join(out)

    def view(self, text: str) -> str:
        """Host paths inside the node root shown as node paths, where typing them back names the same file."""

        def node_view(m: re.Match[str]) -> str:
            node = m.group(1) or "/"
            return node if self.to_host(node).rstrip("/") == m.group(0).rstrip("/") else m.group(0)

        return self._view.sub(node_view, text)

    def _path(self, arg: str, i: int, j: int) -> str:
        text = arg[i:j]
        glued = _glued(arg, j)
        if text == "/" and not glued and not _inside(arg, i, self.root):
            bare = (i == 0 or arg[i - 1].isspace()) and (j == len(arg) or arg[j].isspace() or arg[j] in ";|&)")
            return self.root if bare else text  # `cd /`, `rm -rf /`; not the / of `cut -d '/'` or `s|/|x|`
        if not _inside(arg, i, self.root) and (glued or _SPECIAL & set(text)):
            if not _may_reach_node(text, glued=glued):
                return text
            return self.root + (normalize(text) if _climbs(text) else text)
        return self.to_host(text)

    def _tilde(self, arg: str, i: int, out: list[str]) -> int:
        """``~root/x`` and ``~user/x`` name home directories from the host's passwd: the node's instead."""
        m = _TILDE_USER.match(arg, i)
        if not m:
            out.append("~")
            return i + 1
        user = m.group(1)
        out.append(self.root + ("/root" if user == "root" else f"/home/{user}"))
        return m.end()


_TILDE_USER = re.compile(r"~([a-z_][a-z0-9_-]*)(?=/|$|[" + re.escape("".join(sorted(_HARD_END | _SOFT_END))) + "])")


def _inside(arg: str, i: int, root: str) -> bool:
    """Whether the path starting at i is already the node root or inside it."""
    end = i + len(root)
    return arg.startswith(root, i) and (end == len(arg) or arg[end] == "/" or arg[end] in _HARD_END
                                        or arg[end] in _SOFT_END)


def _climbs(path: str) -> bool:
    return ".." in path.split("/")


def _starts_path(arg: str, i: int) -> bool:
    """Whether a / (or ~) at i can start a path: after a separator, an attached short option or ${X:-."""
    if i == 0 or arg[i - 1] in _STARTS_AFTER:
        return True
    if i >= 2 and arg[i - 2] == ":" and arg[i - 1] in "-+?":  # ${X:-/etc/x}
        return True
    return i >= 2 and arg[i - 2] == "-" and arg[i - 1].isalpha() and (i == 2 or arg[i - 3] in _STARTS_AFTER)


def _sed_substitution(arg: str, i: int) -> int:
    """The end of a sed ``s|pattern|replacement|`` starting at i (a word's start), or 0."""
    if arg[i] != "s" or i + 1 >= len(arg) or arg[i + 1] not in _SED_DELIMITERS:
        return 0
    if i > 0 and not (arg[i - 1].isspace() or arg[i - 1] in "\"'="):
        return 0
    delimiter, seen, j = arg[i + 1], 0, i + 2
    while j < len(arg):
        if arg[j] == "\\":
            j += 2
            continue
        if arg[j] == delimiter:
            seen += 1
            if seen == 2:
                return j + 1
        j += 1
    return 0


def _glued(arg: str, j: int) -> bool:
    """Whether the shell may glue more text onto a path that ends at j (``/usr/bin/"apt-get"``, ``/e$X``)."""
    if j >= len(arg) or arg[j] in _HARD_END:
        return False
    if arg[j] in "$`":
        return True
    k = j
    while k < len(arg) and arg[k] in "\"'":
        k += 1
    return k < len(arg) and arg[k] not in _HARD_END


def _may_reach_node(text: str, *, glued: bool) -> bool:
    """Whether a path the shell still expands or extends could name a node path (conservative)."""
    literal = text.replace("\\", "")
    parts = literal.split("/")
    if ".." in parts or any(fnmatch.fnmatchcase("..", p) for p in parts if _SPECIAL & set(p)):
        return True
    top, slash, _ = literal.lstrip("/").partition("/")
    names = NODE_TOP | GATEWAYS
    if _SPECIAL & set(top):
        prefix = re.split(r"[*?\[{]", top, maxsplit=1)[0]
        return any(name.startswith(prefix) or fnmatch.fnmatchcase(name, top) for name in names)
    if glued and not slash:  # the first component itself may still grow: /e"tc", /"etc"
        return any(name.startswith(top) for name in names)
    return top in names
