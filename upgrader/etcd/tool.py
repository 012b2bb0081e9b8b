"""EtcdctlTool: the EtcdTool port on etcdctl/etcdutl, capability-probed by their output.

By default the tools run on this host (found on PATH, or at given paths) in a clean environment:
no inherited ``ETCDCTL_*`` variable can redirect them to another cluster or certificate. Every run
has a timeout, TLS flags go only to https endpoints, and nothing a tool prints about a snapshot's
contents or the certificates is logged; errors carry the tool's last line only. The same class
runs the tools on a node through a :class:`~upgrader.ports.NodeTransport` (see node_tool.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from upgrader.errors import ClusterUnreachableError, EtcdCommandError, EtcdToolError, IntegrityError, SnapshotStoreError
from upgrader.etcd import parsing
from upgrader.etcd.diagnose import diagnose
from upgrader.etcd.integrity import check_trailer
from upgrader.ports import CommandResult, EtcdMember, EtcdTls, EtcdToolInfo, KeyListing, SnapshotStatus

Runner = Callable[[list[str], float], CommandResult]
BUMP_REVISION = "1000000000"  # kubernetes #118501: resource versions keep moving forward after a restore
_UNREACHABLE = ("context deadline exceeded", "connection refused", "transientfailure", "no route to host",
                "i/o timeout", "deadlineexceeded", "no such host", "connection reset", "timed out after")
_TLS = ("bad certificate", "unknown authority", "x509:", "handshake failed", "certificate required",
        "tls: ", "first record does not look like a tls handshake")
_STORE = ("no space left on device", "permission denied", "read-only file system", "could not open",
          "disk quota exceeded")


def host_runner(*, extra_path: str | None = None) -> Runner:
    """Run argv here with a clean environment (PATH and ETCDCTL_API=3 only); never raises for a failure."""
    env = {"PATH": extra_path or os.environ.get("PATH", "/usr/bin:/bin"), "ETCDCTL_API": "3", "LC_ALL": "C"}

    def run(argv: list[str], timeout: float) -> CommandResult:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                                  env=env, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            return CommandResult(127, "", f"{argv[0]}: command not found\n")
        except subprocess.TimeoutExpired:
            return CommandResult(124, "", f"timed out after {timeout:g}s: {Path(argv[0]).name}\n")
        return CommandResult(done.returncode, done.stdout, done.stderr)

    return run


class EtcdctlTool:
    """etcdctl (and etcdutl when present) for the EtcdTool port; the probe is made once."""

    def __init__(self, *, etcdctl: str | None = None, etcdutl: str | None = None, runner: Runner | None = None,
                 probe_timeout: float = 10.0) -> None:
        local = runner is None
        self._local = local  # the endpoints can be diagnosed from here
        self._run = runner or host_runner()
        self.etcdctl = etcdctl or ((shutil.which("etcdctl") or "etcdctl") if local else "etcdctl")
        self.etcdutl = etcdutl or ((shutil.which("etcdutl") or "etcdutl") if local else "etcdutl")
        self._probe_timeout = probe_timeout
        self._info: EtcdToolInfo | None = None

    # capabilities
    def probe(self) -> EtcdToolInfo:
        if self._info is None:
            self._info = self._probe()
        return self._info

    def _probe(self) -> EtcdToolInfo:
        t = self._probe_timeout
        ctl = parsing.parse_version(self._run([self.etcdctl, "version"], t).stdout, "etcdctl")
        utl = parsing.parse_version(self._run([self.etcdutl, "version"], t).stdout, "etcdutl")

        def has(tool: str, binary: str, version: str | None, command: str) -> str | None:
            if version is None:
                return None
            done = self._run([binary, *command.split(), "--help"], t)
            return done.stdout + done.stderr if parsing.usage_names(done.stdout + done.stderr, tool, command) else None

        status_tool = ("etcdutl" if has("etcdutl", self.etcdutl, utl, "snapshot status") is not None
                       else "etcdctl" if has("etcdctl", self.etcdctl, ctl, "snapshot status") is not None else None)
        restore_tool, bump = None, False
        for tool, binary, version in (("etcdutl", self.etcdutl, utl), ("etcdctl", self.etcdctl, ctl)):
            help_text = has(tool, binary, version, "snapshot restore")
            if help_text is not None:
                restore_tool, bump = tool, parsing.lists_flags(help_text, "--bump-revision", "--mark-compacted")
                break
        return EtcdToolInfo(etcdctl_version=ctl, etcdutl_version=utl, status_tool=status_tool,
                            restore_tool=restore_tool, bump_revision=bump)

    def require(self, etcd_version: str | None) -> EtcdToolInfo:
        info = self.probe()
        wanted = parsing.major_minor(etcd_version) if etcd_version else None
        need = f"{wanted[0]}.{wanted[1]}" if wanted else None
        if info.etcdctl_version is None:
            raise EtcdToolError(f"etcdctl not found ({self.etcdctl}): install etcdctl {need or ''} or newer "
                                "(Debian's etcd-client, or etcd's release archive)".replace("  ", " "))
        have = parsing.major_minor(info.etcdctl_version)
        if wanted and have and have < wanted:
            raise EtcdToolError(f"etcdctl {info.etcdctl_version} is older than the cluster's etcd {etcd_version}: "
                                f"install etcdctl {need} or newer")
        if info.status_tool is None:
            minor = need or ".".join(map(str, have or ()))
            raise EtcdToolError(f"no etcd tool here can read a snapshot's status (etcdctl {info.etcdctl_version} "
                                f"has no `snapshot status`; etcd 3.6 moved it to etcdutl): install etcdutl {minor}")
        if info.status_tool == "etcdutl" and wanted and info.etcdutl_version:
            utl = parsing.major_minor(info.etcdutl_version)
            if utl and utl < wanted:
                raise EtcdToolError(f"etcdutl {info.etcdutl_version} is older than the cluster's etcd "
                                    f"{etcd_version}: install etcdutl {need} or newer")
        return info

    # the cluster
    def _client(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float) -> list[str]:
        dial = max(1.0, min(3.0, timeout / 3))
        argv = [self.etcdctl, f"--endpoints={','.join(endpoints)}", f"--dial-timeout={dial:g}s",
                f"--command-timeout={max(1.0, timeout):g}s"]
        if tls is not None and any(e.startswith("https://") for e in endpoints):
            argv += [f"--cacert={tls.cacert}", f"--cert={tls.cert}", f"--key={tls.key}"]
        return argv

    def members(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float = 10.0) -> list[EtcdMember]:
        if not endpoints:
            raise ClusterUnreachableError("no etcd endpoint to ask")
        request = max(1.0, timeout / 3)
        listed: list[parsing.ListedMember] | None = None
        failures = []
        for endpoint in endpoints:
            done = self._run([*self._client([endpoint], tls, request), "member", "list", "-w", "json"], timeout)
            if done.ok:
                try:
                    listed = parsing.parse_member_list(done.stdout)
                    break
                except ValueError as e:
                    failures.append(f"{endpoint}: {e}")
                    continue
            failures.append(self._explain(endpoint, tls, done))
        if listed is None:
            raise ClusterUnreachableError("no etcd endpoint answered: " + "; ".join(failures))
        statuses, errors = self._statuses(list(endpoints), tls, request, timeout)
        by_id = {s.member_id: s for s in statuses}
        unseen = [m.client_urls[0] for m in listed if m.id not in by_id and m.client_urls
                  and m.client_urls[0] not in endpoints]
        if unseen:  # members the given endpoints did not cover: try their own client URLs
            more, more_errors = self._statuses(unseen, tls, request, timeout)
            by_id.update({s.member_id: s for s in more})
            errors.update(more_errors)
        health = self._health([s.endpoint for s in by_id.values()], tls, request, timeout)
        leaders = {s.leader_id for s in by_id.values() if s.leader_id}
        leader = next(iter(leaders)) if len(leaders) == 1 else None
        result = []
        for m in listed:
            s = by_id.get(m.id)
            if s is None:
                why = next((errors[u] for u in (*m.client_urls, *endpoints) if u in errors), "no status answer")
                result.append(EtcdMember(id=m.id, name=m.name, peer_urls=m.peer_urls, client_urls=m.client_urls,
                                         healthy=False, leader=(m.id == leader) if leader else None, error=why))
                continue
            healthy, error = health.get(s.endpoint, (False, "no health answer"))
            result.append(EtcdMember(id=m.id, name=m.name, peer_urls=m.peer_urls, client_urls=m.client_urls,
                                     healthy=healthy, leader=m.id == s.leader_id, db_size=s.db_size,
                                     revision=s.revision, version=s.version, error=None if healthy else error,
                                     endpoint=s.endpoint))
        return result

    def _explain(self, endpoint: str, tls: EtcdTls | None, done: CommandResult) -> str:
        reason = diagnose(endpoint, tls) if self._local else None
        return f"{endpoint}: {reason}" if reason else str(_failure(endpoint, done, endpoint))

    def _statuses(self, endpoints: list[str], tls: EtcdTls | None, request: float,
                  timeout: float) -> tuple[list[parsing.EndpointStatus], dict[str, str]]:
        done = self._run([*self._client(endpoints, tls, request), "endpoint", "status", "-w", "json"],
                         timeout + request * len(endpoints))
        try:
            statuses = parsing.parse_endpoint_status(done.stdout) if done.stdout.strip() else []
        except ValueError:
            statuses = []
        answered = {s.endpoint for s in statuses}
        errors = {e: (diagnose(e, tls, 1.0) if self._local else None) or _endpoint_error(done.stderr, e)
                  or _why(done) for e in endpoints if e not in answered}
        return statuses, errors

    def _health(self, endpoints: list[str], tls: EtcdTls | None, request: float,
                timeout: float) -> dict[str, tuple[bool, str | None]]:
        if not endpoints:
            return {}
        done = self._run([*self._client(endpoints, tls, request), "endpoint", "health", "-w", "json"],
                         timeout + request * len(endpoints))
        try:
            found = parsing.parse_endpoint_health(done.stdout) if done.stdout.strip() else {}
        except ValueError:
            found = {}
        if not found:  # no JSON to read: etcdctl exits 0 only when every endpoint is healthy
            found = {e: (done.ok, None if done.ok else _why(done)) for e in endpoints}
        return found

    def save(self, *, endpoint: str, tls: EtcdTls | None, path: Path, timeout: float = 300.0) -> None:
        done = self._run([*self._client([endpoint], tls, timeout), "snapshot", "save", str(path)], timeout + 10)
        if not done.ok:
            if self._local:  # etcdctl's own temp name, which a killed etcdctl leaves behind
                path.with_name(path.name + ".part").unlink(missing_ok=True)
            text = (done.stdout + "\n" + done.stderr).lower()
            last = parsing.last_line(done.stderr or done.stdout)
            if any(marker in text for marker in _STORE):
                raise SnapshotStoreError(f"cannot write the snapshot to {path}: {last}")
            reason = diagnose(endpoint, tls) if self._local else None
            if reason is not None:
                raise ClusterUnreachableError(f"snapshot save from {endpoint} failed: {reason}")
            raise _failure(endpoint, done, f"snapshot save from {endpoint} failed")
        if not self._local:
            return
        try:
            os.chmod(path, 0o600)
        except OSError as e:
            raise SnapshotStoreError(f"snapshot save left no file at {path}: {e.strerror}") from e

    def keys(self, endpoints: Sequence[str], tls: EtcdTls | None, timeout: float = 120.0) -> KeyListing:
        """Keys and mod revisions only (``--keys-only``): no value, so no Secret, ever leaves etcd."""
        failures = []
        for endpoint in endpoints:
            done = self._run([*self._client([endpoint], tls, timeout), "get", "", "--prefix", "--keys-only",
                              "-w", "json"], timeout + 10)
            if done.ok:
                try:
                    return parsing.parse_key_listing(done.stdout)
                except ValueError as e:
                    raise EtcdCommandError(f"{endpoint}: {e}") from e
            failures.append(self._explain(endpoint, tls, done))
        raise ClusterUnreachableError("no etcd endpoint listed its keys: " + "; ".join(failures or ["none given"]))

    # the file
    def status(self, path: Path) -> SnapshotStatus:
        check_trailer(path)
        return self._read_status(str(path), f"snapshot {path}")

    def _read_status(self, path: str, what: str) -> SnapshotStatus:
        """``snapshot status -w json`` of ``path`` by the tool the probe found (where this tool runs);
        IntegrityError, starting with ``what``, when the tool fails or its answer is not a status."""
        info = self.probe()
        if info.status_tool is None:
            self.require(None)  # raises, naming the tool to install
        binary = self.etcdutl if info.status_tool == "etcdutl" else self.etcdctl
        done = self._run([binary, "snapshot", "status", path, "-w", "json"], 300.0)
        if not done.ok:
            raise IntegrityError(f"{what}: {info.status_tool} snapshot status failed: "
                                 f"{parsing.last_line(done.stderr or done.stdout)}")
        try:
            return parsing.parse_snapshot_status(done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "")
        except ValueError as e:
            raise IntegrityError(f"{what}: {e}") from e

    def restore(self, *, path: str, name: str, data_dir: str, initial_cluster: str, token: str,
                peer_url: str) -> None:
        info = self.probe()
        if info.restore_tool is None:
            raise EtcdToolError("no etcd tool here can restore a snapshot: install etcdutl")
        binary = self.etcdutl if info.restore_tool == "etcdutl" else self.etcdctl
        argv = [binary, "snapshot", "restore", path, f"--name={name}", f"--data-dir={data_dir}",
                f"--initial-cluster={initial_cluster}", f"--initial-cluster-token={token}",
                f"--initial-advertise-peer-urls={peer_url}"]
        if info.bump_revision:
            argv += [f"--bump-revision={BUMP_REVISION}", "--mark-compacted"]
        done = self._run(argv, 600.0)
        if not done.ok:
            last = parsing.last_line(done.stderr or done.stdout)
            if "sha256" in last or "integrity" in last:
                raise IntegrityError(f"snapshot {path}: {last}")
            raise EtcdCommandError(f"{info.restore_tool} snapshot restore failed: {last}")


def _why(done: CommandResult) -> str:
    return parsing.last_line(done.stderr or done.stdout) or f"exit {done.exit_code}"


def _endpoint_error(stderr: str, endpoint: str) -> str | None:
    """etcdctl's ``Failed to get the status of endpoint X (reason)`` for that endpoint."""
    for line in stderr.splitlines():
        if endpoint in line and line.startswith("Failed to get the status of endpoint"):
            return parsing.last_line(line)
    return None


def _failure(endpoint: str, done: CommandResult, what: str) -> Exception:
    text = (done.stdout + "\n" + done.stderr).lower()
    last = _why(done)
    if any(marker in text for marker in _TLS):
        tls_line = next((ln for ln in (done.stderr.splitlines()) if any(m in ln.lower() for m in _TLS)), last)
        return ClusterUnreachableError(f"{what}: TLS refused ({_tls_reason(tls_line)}); check the etcd client "
                                       "certificate and CA")
    if any(marker in text for marker in _UNREACHABLE) or done.exit_code == 124:
        return ClusterUnreachableError(f"{what}: unreachable ({last})")
    return EtcdCommandError(f"{what}: {last}")


def _tls_reason(line: str) -> str:
    lowered = line.lower()
    for marker in ("remote error: tls: ", "x509: ", "tls: "):
        at = lowered.find(marker)
        if at >= 0:
            return parsing.last_line(line[at:].split('"')[0].split("\\")[0], 120)
    return parsing.last_line(line, 120)
