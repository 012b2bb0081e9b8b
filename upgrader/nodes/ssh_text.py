"""The text half of SshTransport: write_file's constant remote script, and ssh's failures as
upgrader's errors (one line, with advice that works). No process is started here."""

from __future__ import annotations

from upgrader.domain.node_access import SshTarget
from upgrader.errors import HostKeyError, NodeAuthError, NodeUnreachableError, UpgraderError

# write_file's remote half: a constant script; the path, a random suffix and the mode are its
# arguments ($1 $2 $3), never part of it. The temp file sits beside the target so mv is a rename.
# The temp file is synced before the rename (and the directory after it), so a crash leaves the
# old file or the new one, never an empty one; a timeout (TERM from `timeout`) removes the temp file.
# `sync FILE` needs coreutils 8.24; an older sync ignores its arguments and syncs everything.
WRITE_SCRIPT = ('umask 077; tmp="$1.upgrader-tmp-$2"; trap \'rm -f -- "$tmp"; exit 124\' TERM; '
                'if cat > "$tmp" && chmod -- "$3" "$tmp" && sync -- "$tmp" && mv -f -T -- "$tmp" "$1"; then '
                'sync -- "$(dirname -- "$1")" 2>/dev/null; exit 0; fi; '
                'rm -f -- "$tmp"; exit 1')


def where(t: SshTarget) -> str:
    """How a node's address is shown: with its port when it is not 22."""
    return t.address if not t.port or t.port == 22 else f"{t.address} port {t.port}"


def failure(target: SshTarget, node: str, cluster: str | None, err: bytes) -> UpgraderError:
    """ssh's own failure (exit 255, its stderr) as upgrader's error, with advice that works."""
    text = err.decode(errors="replace")
    host = target.address if not target.port or target.port == 22 else \
        f"[{target.address}]:{target.port}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return HostKeyError(
            f"the SSH host key of node {node} ({where(target)}) has CHANGED since it was recorded in "
            f"known_hosts: refused, this may be a man-in-the-middle (if the node was reinstalled, check its "
            f"new key and remove the old one with `ssh-keygen -R '{host}'`)")
    if "Host key verification failed" in text or "host key is known" in text:
        port = f"-p {target.port} " if target.port and target.port != 22 else ""
        known = target.known_hosts or "~/.ssh/known_hosts"
        return HostKeyError(
            f"the SSH host key of node {node} ({where(target)}) is not known: refused (check its "
            f"fingerprint, then add it with `ssh-keyscan {port}{target.address} >> {known}`, or trust "
            f"the first key seen with `upgrader node exec {cluster or 'CLUSTER'} {node} "
            f"--accept-new-host-keys -- true`)")
    if "Permission denied" in text or "Too many authentication failures" in text:
        return NodeAuthError(f"ssh login to node {node} ({where(target)}) refused: {why(err, 255)} "
                             "(check --ssh-user and --ssh-identity)")
    return NodeUnreachableError(f"node {node} ({where(target)}) is unreachable: {why(err, 255)}")


def why(err: bytes, code: int | None) -> str:
    """ssh's or the command's last stderr line, printable and short; "timed out" for a timeout."""
    lines = [ln.strip() for ln in err.decode(errors="replace").replace("\r", "").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("@")]
    if code is None or code in (124, 137):
        return "timed out"
    if not lines:
        return f"exit code {code}"
    return "".join(c if c.isprintable() else "?" for c in lines[-1][:200])


def check_path(path: str) -> None:
    """A node path is absolute and one line (it is an argument, never part of a script)."""
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "\x00\n\r"):
        raise ValueError(f"node paths are absolute, one line: {path!r}")
