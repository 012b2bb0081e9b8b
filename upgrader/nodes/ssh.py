"""SshTransport: node commands and files over the system OpenSSH client, one connection per node.

- One multiplexed connection per transport (per node): a master (``ControlMaster``) whose socket
  lives in a private 0700 temp dir with a short path; every command, read and write goes over it.
  :meth:`SshTransport.close` stops it (``ssh -O exit``) and removes the dir; transports still open
  when the interpreter exits are closed then. A master left by a killed process exits on its own
  after :data:`PERSIST_SECONDS` without clients; one that died is reconnected on the next command.
- Host keys are checked strictly (``StrictHostKeyChecking=yes``, the user's known_hosts or the
  cluster's file): an unknown or a changed key is a :class:`HostKeyError` (exit 2). With
  ``accept_new_host_keys`` a first key is trusted (``accept-new``); a changed key is still refused.
- ``BatchMode=yes``: ssh never prompts. A node that cannot be reached is a
  :class:`NodeUnreachableError`, never a failed command: a remote exit code, even 255, is a result.
- The remote command is ``shlex.join(argv)`` (POSIX sh quoting, for the login shell on the node),
  behind ``sudo -n --`` when the login user is not root. Nothing else is built from input.
- The user's own ssh config (~/.ssh/config, agents) applies, after the command line. The
  operator's ``-o`` options are allowlisted (upgrader.domain.node_access.ALLOWED_OPTIONS) and
  come first, so they replace our defaults of the same name; nothing they may name is one of ours
  that keeps access safe. A jump host (``-J``) is checked by the user's ssh config for that host
  (OpenSSH passes no ``-o`` option on to the jump hop).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from upgrader import programs
from upgrader.domain.node_access import SshTarget, validate_address, validate_port, validate_transport
from upgrader.errors import FileMissingError, NodeUnreachableError, TransportError, UpgraderError
from upgrader.nodes.ssh_text import WRITE_SCRIPT, check_path, failure, where, why
from upgrader.ports import CommandResult

PERSIST_SECONDS = 300  # an idle master exits after this long (one orphaned by a killed process too)
FILE_TIMEOUT = 120.0  # seconds for a read_file or write_file
_OPEN: set[SshTransport] = set()  # held until closed: one dropped unclosed is still closed at exit
# read_file's constant script (the path is its $1, never pasted in): a missing file is exit 66
READ_SCRIPT = '[ -e "$1" ] || [ -L "$1" ] || exit 66; exec cat -- "$1"'
MISSING_EXIT = 66
KILL_AFTER = 5  # seconds between the remote timeout's TERM and its KILL
BACKSTOP = KILL_AFTER + 3  # the local ssh is killed this much later than the remote command


def _short_tmp() -> str:
    """A temp base short enough for a Unix socket path (~104 bytes, with ssh's random suffix)."""
    base = tempfile.gettempdir()
    return base if len(base) <= 40 else "/tmp"


class SshTransport:
    """The NodeTransport port over /usr/bin/ssh, for one node (``target`` says how to reach it)."""

    def __init__(self, target: SshTarget, *, node: str, accept_new_host_keys: bool = False,
                 connect_timeout: float = 10.0, program: str | None = None, cluster: str | None = None) -> None:
        validate_transport({"kind": "ssh", **{k: v for k, v in target.as_dict().items()
                                              if k not in ("address", "address_from")}})
        validate_address(target.address)
        self.target = target
        self.node = node
        self.cluster = cluster  # named in advice (the command that trusts a first key)
        self.accept_new_host_keys = accept_new_host_keys
        own = next((v for k, v in target.options.items() if k.lower() == "connecttimeout"), "")
        self.connect_timeout = max(1, int(own) if own.isdigit() else int(connect_timeout))
        self.added_host_keys: list[str] = []  # ssh's "Permanently added ..." lines (accept-new)
        self._ssh = program or programs.require("ssh")["ssh"]
        self._dir: Path | None = None
        self._lock = threading.Lock()  # one master, however many threads use the node
        self._login: str | None = None
        self.forwards: list[tuple[int, str, int]] = []  # (local port, remote host, remote port)

    # the connection ---------------------------------------------------------------------------

    @property
    def control_path(self) -> Path | None:
        return None if self._dir is None else self._dir / "m"

    def _base(self, master: str = "auto") -> list[str]:
        t = self.target
        assert self._dir is not None
        # The operator's options (allowlisted: none touches what follows) come first: for ssh the
        # first value wins, so theirs replace our defaults (ServerAliveInterval, ConnectTimeout).
        argv = [self._ssh]
        for key, value in t.options.items():
            argv += ["-o", f"{key}={value}"]
        argv += ["-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if self.accept_new_host_keys else 'yes'}",
                "-o", f"ConnectTimeout={self.connect_timeout}", "-o", "ServerAliveInterval=15",
                "-o", "ServerAliveCountMax=3", "-o", "LogLevel=INFO", "-o", "RemoteCommand=none",
                "-o", f"ControlMaster={master}",
                "-o", f"ControlPath={self._dir / 'm'}", "-o", f"ControlPersist={PERSIST_SECONDS}"]
        if t.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={t.known_hosts}"]
        if t.user:
            argv += ["-l", t.user]
        if t.port:
            argv += ["-p", str(t.port)]
        if t.identity:
            argv += ["-i", t.identity]
        if t.jump:
            argv += ["-J", t.jump]
        return argv

    def connect(self, *, check: bool = False) -> None:
        """Start the master if it is not running; HostKeyError, NodeAuthError or NodeUnreachableError.

        Without ``check`` an existing socket is trusted (a command over a master that died starts a
        new one by itself: ControlMaster=auto); with it, the master is asked (``ssh -O check``)."""
        with self._lock:
            self._connect(check)

    def _connect(self, check: bool) -> None:
        path = self._private_dir() / "m"
        if path.exists():
            if not check or self.alive():
                return
            path.unlink(missing_ok=True)  # a stale socket of a master that died
        # With ControlPersist and -N, ssh goes to the background once logged in (its stdio to
        # /dev/null), so this returns as soon as the connection is up, or with ssh's error.
        code, _, err = self._call([*self._base("yes"), "-N", "--", self.target.address], None,
                                  self.connect_timeout * 3 + 5)
        self.added_host_keys += [line for line in err.decode(errors="replace").splitlines()
                                 if line.startswith("Warning: Permanently added")]
        if code is None:
            raise NodeUnreachableError(f"node {self.node} ({self._where()}) is unreachable: no answer to ssh "
                                       f"within {self.connect_timeout * 3 + 5}s")
        if code != 0 or not path.exists():
            raise self._failure(err)

    def _private_dir(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="upg-ssh-", dir=_short_tmp()))  # 0700
            _OPEN.add(self)
        return self._dir

    def alive(self) -> bool:
        if self._dir is None or not (self._dir / "m").exists():
            return False
        code, _, _ = self._call([*self._base(), "-O", "check", "--", self.target.address], None, 10)
        return code == 0

    def master_pid(self) -> int | None:
        """The master's pid, as ``ssh -O check`` reports it (None when no master runs)."""
        if self._dir is None:
            return None
        code, _, err = self._call([*self._base(), "-O", "check", "--", self.target.address], None, 10)
        text = err.decode(errors="replace")
        if code != 0 or "pid=" not in text:
            return None
        return int(text.split("pid=", 1)[1].split(")", 1)[0])

    def close(self) -> None:
        """Stop the master (its forwards go with it) and remove the private dir. Idempotent."""
        if self._dir is None:
            return
        if (self._dir / "m").exists():
            self._call([*self._base(), "-O", "exit", "--", self.target.address], None, 10)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self.forwards.clear()
        _OPEN.discard(self)

    def __enter__(self) -> SshTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # the port ---------------------------------------------------------------------------------

    def run(self, argv: list[str], timeout: float) -> CommandResult:
        """argv on the node, under the node's own ``timeout``: at ``timeout`` the remote command (its
        whole process group) gets TERM, then KILL; the local ssh is killed later, as a backstop."""
        if not argv:
            raise ValueError("run needs a command")
        start = time.monotonic()
        code, out, err = self._remote(argv, None, timeout)
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        # `timeout` exits 124 after TERM; after KILL it kills itself too, which ssh reports as 255
        if code is None or (code in (124, 137, 255) and time.monotonic() - start >= timeout):
            return CommandResult(124, stdout, stderr + f"timed out after {timeout:g}s: {argv[0]}\n")
        return CommandResult(code, stdout, stderr)

    def read_file(self, path: str) -> bytes:
        """The file's bytes; FileMissingError when it does not exist, told by an exit code (a node's
        messages may be in any language: the operator's LANG travels with ssh)."""
        check_path(path)
        code, out, err = self._remote(["sh", "-c", READ_SCRIPT, "sh", path], None, FILE_TIMEOUT)
        if code == MISSING_EXIT:
            raise FileMissingError(f"cannot read {path} on node {self.node}: no such file")
        if code != 0:
            raise TransportError(f"cannot read {path} on node {self.node}: {why(err, code)}")
        return out

    def copy_to_local(self, path: str, local: Path, timeout: float = FILE_TIMEOUT) -> int:
        """Stream a node file into the local file ``local`` (created 0600, replaced only when the
        whole file arrived); its size. Nothing is held in memory."""
        check_path(path)
        self.connect()
        tmp = local.with_name(f".{local.name}.{secrets.token_hex(4)}.part")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as sink:
                argv = [*self._base(), "-T", "--", self.target.address, self._wrapped(["cat", "--", path], timeout)]
                code, _, err = self._call(argv, None, timeout + BACKSTOP, stdout=sink)
                if code == 255 and not self.alive():
                    raise self._failure(err)
                if code != 0:
                    raise TransportError(f"cannot read {path} on node {self.node}: {why(err, code)}")
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(tmp, local)
            return local.stat().st_size
        finally:
            tmp.unlink(missing_ok=True)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Atomic: written to ``PATH.upgrader-tmp-RANDOM`` beside it, chmod'ed, synced, then renamed
        onto PATH (and the directory synced). A timeout stops it on the node before the rename."""
        check_path(path)
        argv = ["sh", "-c", WRITE_SCRIPT, "sh", path, secrets.token_hex(8), f"{mode & 0o7777:04o}"]
        code, _, err = self._remote(argv, bytes(data), FILE_TIMEOUT)
        if code != 0:
            raise TransportError(f"cannot write {path} on node {self.node}: {why(err, code)}")

    def forward(self, remote_host: str, remote_port: int) -> tuple[str, int]:
        """A local port forward over the master to ``remote_host:remote_port`` as the node sees it;
        returns the local (host, port) to connect to. It lasts until :meth:`close`."""
        validate_address(remote_host)
        validate_port(remote_port)
        self.connect(check=True)  # -O forward needs a live master
        shown = f"[{remote_host}]" if ":" in remote_host else remote_host
        last = b""
        for _ in range(3):  # a free port found here may be taken before ssh binds it
            local = _free_port()
            spec = f"127.0.0.1:{local}:{shown}:{remote_port}"
            code, _, last = self._call([*self._base(), "-O", "forward", "-L", spec, "--", self.target.address],
                                       None, 15)
            if code == 0:
                self.forwards.append((local, remote_host, remote_port))
                return "127.0.0.1", local
        raise TransportError(f"cannot forward a port to {remote_host}:{remote_port} through node {self.node}: "
                             f"{why(last, 255)}")

    # helpers ----------------------------------------------------------------------------------

    def login_user(self) -> str:
        """Who we log in as: the configured user, else what ssh's own config says (``ssh -G``)."""
        if self._login is None:
            self._login = self.target.user or ""
            if not self._login:
                self._private_dir()
                _, out, _ = self._call([*self._base(), "-G", "--", self.target.address], None, 10)
                for line in out.decode(errors="replace").splitlines():
                    if line.startswith("user "):
                        self._login = line.split(" ", 1)[1].strip()
        return self._login

    def remote_command(self, argv: list[str]) -> str:
        """The string ssh sends: argv quoted for a POSIX shell, behind ``sudo -n`` unless we are root."""
        return shlex.join(argv if self.login_user() == "root" else ["sudo", "-n", "--", *argv])

    def _wrapped(self, argv: list[str], timeout: float) -> str:
        """The remote command under coreutils ``timeout`` (TERM at ``timeout``, KILL later), outside
        ``sudo``: a sudoers entry that allows only kubeadm, apt-get and systemctl still matches (sudo
        passes the TERM on). Shell builtins are not commands here (`-- sh -c 'command -v x'` is)."""
        secs = f"{max(timeout, 0.1):.3f}".rstrip("0").rstrip(".")
        return shlex.join(["timeout", "-k", str(KILL_AFTER), "--", secs,
                           *(argv if self.login_user() == "root" else ["sudo", "-n", "--", *argv])])

    def _remote(self, argv: list[str], data: bytes | None, timeout: float) -> tuple[int | None, bytes, bytes]:
        self.connect()
        command = self._wrapped(argv, timeout)
        code, out, err = self._call([*self._base(), "-T", "--", self.target.address, command], data,
                                    timeout + BACKSTOP)
        if code == 255 and not self.alive():  # ssh's own failure, not the command's exit code
            raise self._failure(err)
        return code, out, err

    def _call(self, argv: list[str], data: bytes | None, timeout: float,
              stdout: IO[bytes] | None = None) -> tuple[int | None, bytes, bytes]:
        """Run a local ssh; (None, out, err) when it timed out (it is killed, with its process group).
        With ``stdout`` (a file), the output goes there, not to memory."""
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if data is None else subprocess.PIPE,
                                stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(data, timeout=timeout)
        except BaseException as e:  # Ctrl-C or SIGTERM: our ssh goes too, never left orphaned
            if not isinstance(e, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # our own ssh (and a ProxyJump child); never a master
            proc.wait()
            # A multiplexing client hands its stdio to the master, which keeps the pipes until the
            # remote command ends: take what has arrived, and stop reading.
            try:
                out, err = proc.communicate(timeout=0.5)
            except subprocess.TimeoutExpired as e:
                out, err = e.output or b"", e.stderr or b""
                for pipe in (proc.stdin, proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
            return None, out or b"", err or b""
        return proc.returncode, out, err

    def _where(self) -> str:
        return where(self.target)

    def _failure(self, err: bytes) -> UpgraderError:
        return failure(self.target, self.node, self.cluster, err)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@atexit.register
def close_all() -> None:
    """Close every transport still open (at interpreter exit, and for tests)."""
    for transport in list(_OPEN):
        with contextlib.suppress(Exception):
            transport.close()
