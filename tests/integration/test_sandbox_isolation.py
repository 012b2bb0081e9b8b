"""Escapes from a sandbox node, tried through `upgrader sandbox exec` against a real started sandbox.

upgrader runs as root and a sandbox node is a directory of this machine: each attempt here is a way
a command typed on a node could reach the machine itself. Canaries outside the sandbox stand for what
must stay out of reach: a directory with a secret file (its name and content carry a random token)
that no command may read, list, change or add to, the machine's /etc/shadow, and an etcd that is not
the sandbox's, on its own loopback port, holding one key that no command may read or write. Every
attempt is checked against all of them, whatever it was meant to reach.

The module shares one sandbox (a control plane and a worker, namespace isolation, the default).
The last tests start sandboxes of their own with an ``unshare`` that fails the way the real one
does without privileges: `up` refuses (exit 2) unless ``--isolation=best-effort`` says the guard
is only best effort.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.sandbox_helpers import REPO, etcd_cluster, kubectl_binary, needs_etcd
from upgrader.sandbox.node import wrappers
from upgrader.sandbox.node.nsinit import DROPPED_CAPS
from upgrader.sandbox.node.runtime import Runtime
from upgrader.sandbox.node.transport import SandboxTransport

pytestmark = [pytest.mark.etcd, pytest.mark.slow, needs_etcd]

TOKEN = f"canary-{uuid.uuid4().hex[:12]}"  # the secret's content
LISTED = f"listed-{uuid.uuid4().hex[:12]}"  # a file name only a listing of the canary directory shows
UP = "../" * 40  # from a node's working directory, further up than any machine's / is deep
FAILING_UNSHARE = "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"


@dataclass
class Canaries:
    """What no node command may reach: a host directory with a secret, /etc/shadow and a foreign etcd."""

    dir: Path
    etcd_url: str
    etcd_revision: int
    shadow: str  # the first line of the machine's /etc/shadow

    @property
    def secret(self) -> Path:
        return self.dir / "secret"

    @property
    def created(self) -> Path:
        return self.dir / "created"

    def etcd(self, *args: str) -> str:
        done = subprocess.run(["etcdctl", f"--endpoints={self.etcd_url}", *args], capture_output=True, text=True,
                              timeout=30, check=True, env={**os.environ, "ETCDCTL_API": "3"})
        return done.stdout

    def revision(self) -> int:
        return int(json.loads(self.etcd("endpoint", "status", "-w", "json"))[0]["Status"]["header"]["revision"])

    def assert_untouched(self, output: str) -> None:
        assert TOKEN not in output, "a node command read the canary (its file or the etcd key)"
        assert LISTED not in output, "a node command listed the canary directory"
        assert self.shadow not in output, "a node command read the machine's /etc/shadow"
        assert self.secret.read_text() == f"{TOKEN}\n", "a node command changed the canary file"
        assert sorted(p.name for p in self.dir.iterdir()) == [LISTED, "secret"], "a node command wrote beside it"
        assert self.etcd("get", "canary", "--print-value-only") == f"{TOKEN}\n"
        assert self.revision() == self.etcd_revision, "a node command wrote into the foreign etcd"


@dataclass
class Upgrader:
    """`python -m upgrader` with its own ledger and sandbox root."""

    home: Path

    def env(self, path_prefix: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("UPGRADER_", "KUBECONFIG", "ETCDCTL_"))}
        if path_prefix is not None:
            env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        return env | {"XDG_DATA_HOME": str(self.home), "UPGRADER_DB": str(self.home / "ledger.db"),
                      "PYTHONPATH": str(REPO)}

    def run(self, *args: str, path_prefix: Path | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "upgrader", *args], capture_output=True, text=True,
                              env=self.env(path_prefix), cwd=REPO, timeout=timeout, check=False)

    def sandbox_dir(self, name: str) -> Path:
        return self.home / "upgrader" / "sandboxes" / name


@pytest.fixture(scope="module")
def canaries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Canaries]:
    # /var/tmp: outside the sandbox and outside /tmp, where the sandboxes of these tests live
    directory = Path(tempfile.mkdtemp(prefix="upgrader-canary-", dir="/var/tmp"))
    (directory / "secret").write_text(f"{TOKEN}\n")
    (directory / LISTED).touch()
    shadow = Path("/etc/shadow").read_text().splitlines()[0]
    try:
        with etcd_cluster(tmp_path_factory.mktemp("canary-etcd"), members=1) as [member]:
            c = Canaries(directory, member.client_url, 0, shadow)
            c.etcd("put", "canary", TOKEN)
            c.etcd_revision = c.revision()
            yield c
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgrader]:
    """One sandbox for the module: cp-1 and worker-1, isolated in namespaces (the default)."""
    u = Upgrader(tmp_path_factory.mktemp("isolation-home"))
    done = u.run("sandbox", "up", "iso", "--control-planes", "1", "--workers", "1", "--node-etcd-tools", "-o", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["isolation"] == "namespace"
    assert json.loads(done.stdout)["node_etcd_tools"] is True
    try:
        yield u
    finally:
        u.run("sandbox", "down", "iso")


def node_exec(cli: Upgrader, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return cli.run("sandbox", "exec", "iso", node, "--timeout", "60s", "--", *argv)


def attempt(cli: Upgrader, canaries: Canaries, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    done = node_exec(cli, node, *argv)
    canaries.assert_untouched(done.stdout + done.stderr)
    return done


# --- files: every spelling of a machine path names the node's file, or nothing ------------------------

# Placeholders filled in per test: the canary directory (absolute, and without its leading /), its
# name in /var/tmp, and the secret file's name.
READS = [
    ["cat", f"{UP}@REL@/@SECRET@"],  # argv straight to cat, from the node's working directory
    ["sh", "-c", f"cat {UP}@REL@/@SECRET@"],
    ["sh", "-c", f"cat <{UP}@REL@/@SECRET@"],
    ["sh", "-c", "cat \\@DIR@/@SECRET@"],  # sh -c 'cat \/var/tmp/...': the shell drops the backslash
    ["sh", "-c", "cat \\/etc/shadow"],
    ["sh", "-c", "cat /@DIR@/@SECRET@"],  # //var/tmp/...
    ["cat", "/.@DIR@/@SECRET@"],
    ["sh", "-c", "cat /./@DIR@/../@REL@/@SECRET@"],
    ["sh", "-c", f"ls -la {UP}@REL@ @DIR@"],  # a listing of the canary directory holds the token
    ["sh", "-c", "cd / && cat @REL@/@SECRET@"],
    ["sh", "-c", f"cd / && cd {UP} && cat @REL@/@SECRET@ etc/shadow"],
    ["sh", "-c", "cd /root && cd ../../../../../../.. && ls @REL@"],
    ["sh", "-c", "cd / && cat etc/shadow"],
    ["sh", "-c", "ln -s @DIR@/@SECRET@ /tmp/l1 && cat /tmp/l1"],
    ["sh", "-c", f"ln -s {UP}@REL@/@SECRET@ /tmp/l2 && cat /tmp/l2"],
    ["sh", "-c", f"ln -sfn {UP}@REL@ /root/hostdir && ls /root/hostdir && cat /root/hostdir/@SECRET@"],
    ["sh", "-c", "ln -sf /etc/shadow /tmp/l3 && cat /tmp/l3"],
    ["sh", "-c", "p=/va; cat ${p}r/tmp/@NAME@/@SECRET@"],  # a path built at run time
    ["sh", "-c", f"cat $(printf '%s' {UP})@REL@/@SECRET@"],
    ["sh", "-c", f"for p in /proc/[0-9]*; do cat $p/root@DIR@/@SECRET@ $p/cwd/{UP}@REL@/@SECRET@; done 2>/dev/null"],
    ["sh", "-c", "cat /proc/1/root@DIR@/@SECRET@ /proc/self/root/etc/shadow"],
    ["python3", "-c", "print(open('/va' + 'r/tmp/@NAME@/@SECRET@').read())"],
    ["python3", "-c", f"import os; os.chdir('/'); print(open('{UP}@REL@/@SECRET@').read())"],
    ["bash", "-c", f"exec 3<{UP}@REL@/@SECRET@; cat <&3"],
    ["sh", "-c", "find / -name '@SECRET@' 2>/dev/null; echo done"],
]

WRITES = [
    ["sh", "-c", f"echo pwned >{UP}@REL@/created"],
    ["sh", "-c", f"echo pwned > {UP}@REL@/created"],
    ["sh", "-c", f"echo pwned >> {UP}@REL@/@SECRET@"],
    ["sh", "-c", "echo pwned > \\@DIR@/created"],
    ["sh", "-c", "echo pwned > /@DIR@/created; echo pwned > /.@DIR@/created"],
    ["sh", "-c", "cd / && cd ../../.. && echo pwned > @REL@/created"],
    ["sh", "-c", f"ln -sfn {UP}@REL@ /tmp/d && echo pwned > /tmp/d/created"],
    ["sh", "-c", "ln -sf @DIR@/@SECRET@ /tmp/f && echo pwned >> /tmp/f"],
    ["cp", "/etc/hostname", f"{UP}@REL@/created"],
    ["touch", f"{UP}@REL@/created"],
    ["sh", "-c", "p=/va; touch ${p}r/tmp/@NAME@/created"],
    ["python3", "-c", "open('/va' + 'r/tmp/@NAME@/created', 'w').write('pwned')"],
    ["sh", "-c", f"cp /etc/hostname {UP}@REL@/created; mv /etc/hostname {UP}@REL@/@SECRET@; "
                 "echo worker-1 > /etc/hostname"],
]


def _fill(argv: list[str], canaries: Canaries) -> list[str]:
    names = {"@DIR@": str(canaries.dir), "@REL@": str(canaries.dir)[1:], "@NAME@": canaries.dir.name,
             "@SECRET@": canaries.secret.name}
    filled = []
    for arg in argv:
        for placeholder, value in names.items():
            arg = arg.replace(placeholder, value)
        filled.append(arg)
    return filled


@pytest.mark.parametrize("argv", READS, ids=[" ".join(a)[-60:] for a in READS])
def test_no_spelling_of_a_machine_path_reads_it(cli: Upgrader, canaries: Canaries, argv: list[str]) -> None:
    attempt(cli, canaries, "cp-1", *_fill(argv, canaries))


@pytest.mark.parametrize("argv", WRITES, ids=[" ".join(a)[-60:] for a in WRITES])
def test_no_spelling_of_a_machine_path_writes_it(cli: Upgrader, canaries: Canaries, argv: list[str]) -> None:
    attempt(cli, canaries, "worker-1", *_fill(argv, canaries))


def test_what_a_node_sees_of_the_machine_is_read_only_and_its_own_files_are_its_own(
        cli: Upgrader, canaries: Canaries) -> None:
    sandbox = cli.sandbox_dir("iso")
    probe = f"probe-{uuid.uuid4().hex[:8]}"
    read_only = ["/usr/bin", "/usr/lib/upgrader-sandbox/path/0", "/etc/alternatives",
                 "/usr/lib/upgrader-sandbox/sandbox/config.json"]
    others = [f"{UP}{str(sandbox)[1:]}/nodes/worker-1/etc/{probe}", f"{UP}{str(sandbox)[1:]}/{probe}"]
    targets = [p if p.endswith(".json") else f"{p}/{probe}" for p in read_only] + others
    script = (f"echo mine > /tmp/{probe}; echo mine > /usr/local/{probe}; "  # the node's own: writable
              f"touch {' '.join(targets)}; "
              f"ls {UP}{str(sandbox)[1:]}/nodes; "
              "test -w /proc/sys/kernel/hostname && echo kernel-settings-writable; "
              "echo hostname $(hostname) $(uname -n); grep -E 'Cap(Bnd|Inh|Amb)' /proc/self/status; "
              "ps -e -o comm=")
    done = attempt(cli, canaries, "cp-1", "sh", "-c", script)
    out = done.stdout.splitlines()
    assert out[0] == "hostname cp-1 cp-1", done.stdout + done.stderr
    caps = dict(line.split(":") for line in out[1:4])
    bounding = int(caps["CapBnd"], 16)
    left = [name for name, bit in DROPPED_CAPS.items() if bounding & (1 << bit)]
    assert left == [], f"capabilities left in the bounding set: {left}"
    assert int(caps["CapInh"], 16) == 0 and int(caps["CapAmb"], 16) == 0
    assert out[4:] == ["sh", "ps"], "the node sees other processes than its command's own"
    for place in read_only:
        assert f"touch: cannot touch '{place}" in done.stderr and "Read-only file system" in done.stderr, done.stderr
    written = sorted(p.relative_to(sandbox) for p in sandbox.rglob(f"{probe}*"))
    assert written == [Path("nodes/cp-1/tmp", probe), Path("nodes/cp-1/usr/local", probe)]
    assert json.loads((sandbox / "config.json").read_text())["name"] == "iso"


OPEN_BY_HANDLE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
handle = ctypes.create_string_buffer(8 + 128)
ctypes.c_uint32.from_buffer(handle).value = 128
mount_id = ctypes.c_int()
if libc.name_to_handle_at(-100, b"/etc", handle, ctypes.byref(mount_id), 0) != 0:
    print("name_to_handle_at", os.strerror(ctypes.get_errno()))
fd = os.open("/", os.O_RDONLY)
got = libc.open_by_handle_at(fd, handle, os.O_RDONLY)
print("open_by_handle_at", "opened" if got >= 0 else os.strerror(ctypes.get_errno()))
"""


def test_no_file_is_opened_by_its_handle_past_the_mounts(cli: Upgrader, canaries: Canaries) -> None:
    """open_by_handle_at reaches any inode of a filesystem (the machine's /, by inode 2): it is refused."""
    done = attempt(cli, canaries, "cp-1", "python3", "-c", OPEN_BY_HANDLE)
    assert "open_by_handle_at Operation not permitted" in done.stdout, done.stdout + done.stderr


def _mirror_images(cli: Upgrader) -> dict[str, str]:
    kubeconfig = cli.sandbox_dir("iso") / "kubeconfig"
    done = subprocess.run([kubectl_binary(), "--kubeconfig", str(kubeconfig), "get", "pods", "-n", "kube-system",
                           "-l", "tier=control-plane", "-o", "json"], capture_output=True, text=True, timeout=60,
                          check=True)
    return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in json.loads(done.stdout)["items"]}


def _eventually(check, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {last!r}")


def test_the_machine_side_never_follows_a_node_link_or_blocks_on_a_node_fifo(
        cli: Upgrader, canaries: Canaries, tmp_path: Path) -> None:
    """The supervisor's kubelet reads node manifests from the machine's side: a manifest turned into a
    link to a machine file is not read (it counts as missing), and one turned into a FIFO does not
    block the kubelet, which picks the real files up again once they are back."""
    host_manifest = tmp_path / "host-scheduler.yaml"
    host_manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: kube-scheduler, namespace: kube-system}\n"
                             "spec: {containers: [{name: kube-scheduler, image: 'example.invalid/from-host:v0'}]}\n")
    before = _mirror_images(cli)
    m = "/etc/kubernetes/manifests"
    broken = attempt(cli, canaries, "cp-1", "sh", "-c",
                     f"mv {m}/kube-scheduler.yaml /root/s.bak && ln -s {host_manifest} {m}/kube-scheduler.yaml && "
                     f"mv {m}/kube-controller-manager.yaml /root/c.bak && mkfifo {m}/kube-controller-manager.yaml")
    assert broken.returncode == 0, broken.stderr
    try:
        gone = _eventually(lambda: (lambda now: now if "kube-scheduler-cp-1" not in now
                                    and "kube-controller-manager-cp-1" not in now else None)(_mirror_images(cli)))
        assert "from-host" not in json.dumps(gone)
    finally:
        restored = attempt(cli, canaries, "cp-1", "sh", "-c",
                           f"rm -f {m}/kube-scheduler.yaml {m}/kube-controller-manager.yaml && "
                           f"mv /root/s.bak {m}/kube-scheduler.yaml && mv /root/c.bak {m}/kube-controller-manager.yaml")
        assert restored.returncode == 0, restored.stderr
    _eventually(lambda: _mirror_images(cli) == before)


def test_a_link_on_the_node_never_moves_a_mount_point_onto_the_machine(cli: Upgrader, canaries: Canaries) -> None:
    """A node owns its /etc: turned into a link to /, the next command would mount /etc/alternatives there."""
    root = cli.sandbox_dir("iso") / "nodes" / "worker-1"
    assert not Path("/alternatives").exists()
    try:
        done = attempt(cli, canaries, "worker-1", "sh", "-c", "mv /etc /etc.real && ln -s / /etc")
        assert done.returncode == 0, done.stderr
        done = attempt(cli, canaries, "worker-1", "cat", "/etc/hostname")
        assert done.returncode == 255 and "is broken, nothing was run" in done.stderr, done.stderr
        assert "outside the node root" in done.stderr
        assert not Path("/alternatives").exists(), "a mount point was made on the machine"
        (root / "etc").unlink()
        (root / "etc.real").rename(root / "etc")
        (root / "proc").rmdir()  # a link inside the node is refused too: /proc must be the node's own
        (root / "proc").symlink_to("etc")
        done = attempt(cli, canaries, "worker-1", "cat", "/etc/hostname")
        assert done.returncode == 255 and "/proc on the node is or passes through a link" in done.stderr, done.stderr
    finally:
        if (root / "etc").is_symlink():
            (root / "etc").unlink()
            (root / "etc.real").rename(root / "etc")
        if (root / "proc").is_symlink():
            (root / "proc").unlink()
    assert attempt(cli, canaries, "worker-1", "cat", "/etc/hostname").stdout == "worker-1\n"


def test_a_background_process_ends_with_its_command(cli: Upgrader, canaries: Canaries) -> None:
    marker = f"{uuid.uuid4().int % 1000}.{uuid.uuid4().int % 1000 + 1000}"  # sleep's argument, unique
    started = time.monotonic()
    done = attempt(cli, canaries, "worker-1", "sh", "-c", f"sleep {marker} & echo started")
    assert (done.returncode, done.stdout) == (0, "started\n")
    assert time.monotonic() - started < 20
    left = [p for p in Path("/proc").glob("[0-9]*") if marker.encode() in _cmdline(p)]
    assert left == [], "a node's background process outlived its command"


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


# --- tools: whatever PATH, spelling or shell, the node's tool answers, never the machine's ---------------

# (command, what the node's simulated tool answers: the machine has no kubeadm, holds no packages,
# runs no systemd, and its apt knows no kubeadm 1.31 in a v1.30 repository)
TOOL_ANSWERS = [
    ("apt-mark showhold", "kubeadm\nkubectl\nkubelet\n"),
    ("dpkg-query -W kubeadm", "kubeadm\t1.30.6-1.1\n"),
    ("systemctl is-active containerd", "active\n"),
    ("kubeadm version -o short", "v1.30.6\n"),
    ("apt-get install -y --simulate kubeadm=1.31.4-1.1 2>&1 | tail -1",
     "E: Version '1.31.4-1.1' for 'kubeadm' was not found\n"),
]
SHELLS = [
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin; {cmd}",
    "PATH=/bin; export PATH; {cmd}",
    "PATH=$(getconf PATH); {cmd}",
    "env -i sh -c '{cmd}'",
    "env -i PATH=/usr/bin:/bin bash -c '{cmd}'",
    "bash -l -c '{cmd}'",
    "env -i bash -l -c '{cmd}'",
    "command -p {cmd}",
    "/usr/bin/{cmd}",
    "/bin/{cmd}",
    "(exec -a x /usr/bin/{cmd})",
]


@pytest.mark.parametrize("shell", SHELLS)
def test_every_path_and_shell_finds_the_nodes_tools(cli: Upgrader, canaries: Canaries, shell: str) -> None:
    script = "; echo @@; ".join(shell.format(cmd=command) for command, _ in TOOL_ANSWERS)
    done = attempt(cli, canaries, "worker-1", "bash", "-c", script)
    assert done.stdout.split("@@\n") == [answer for _, answer in TOOL_ANSWERS], done.stderr


ETCD_ATTEMPTS = [
    "etcdctl --endpoints={url} get canary",
    "etcdctl --endpoints={hostport} get canary",
    "/usr/bin/etcdctl --endpoints={hostport} get canary",
    "/bin/etcdctl --endpoints={url} put canary pwned",
    "PATH=/usr/bin:/bin; etcdctl --endpoints={hostport} get canary",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin; export PATH; etcdctl --endpoints={hostport} del canary",
    "env -i /usr/bin/etcdctl --endpoints={hostport} get canary",
    "env -i etcdctl --endpoints={hostport} put canary pwned",
    "env -i sh -c 'etcdctl --endpoints={hostport} get canary'",
    "bash -l -c 'etcdctl --endpoints={hostport} get canary'",
    "env -i bash -l -c 'etcdctl --endpoints={hostport} put canary pwned'",
    "ETCDCTL_ENDPOINTS={url} etcdctl get canary",
    "env ETCDCTL_ENDPOINTS={hostport} ETCDCTL_API=3 etcdctl put canary pwned",
    "command -p etcdctl --endpoints={hostport} get canary",
    "exec -a etcdctl /usr/bin/etcdctl --endpoints={hostport} get canary",
    "sudo etcdctl --endpoints={hostport} get canary",
    "etcdctl --endpoints=127.0.0.1:2379,{hostport} get canary",
    "etcdctl --discovery-srv=example.com get canary",
    "etcdctl --endpoints={hostport} make-mirror 127.0.0.1:2379",
]


@pytest.mark.parametrize("node", ["cp-1", "worker-1"])
def test_no_etcdctl_on_a_node_reaches_an_etcd_outside_the_sandbox(cli: Upgrader, canaries: Canaries,
                                                                   node: str) -> None:
    hostport = canaries.etcd_url.removeprefix("http://")
    for script in ETCD_ATTEMPTS:
        done = attempt(cli, canaries, node, "bash", "-c",
                       script.format(url=canaries.etcd_url, hostport=hostport) + " 2>&1")
        assert done.returncode != 0, (script, done.stdout)


def test_the_nodes_etcdctl_still_reaches_its_own_member(cli: Upgrader, canaries: Canaries) -> None:
    done = attempt(cli, canaries, "cp-1", "bash", "-c", "env -i bash -l -c 'etcdctl member list' && "
                   "etcdctl --endpoints=https://127.0.0.1:2379 put isolation-probe ok && etcdctl get isolation-probe")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("OK\nisolation-probe\nok\n")


# --- where namespaces are unavailable ---------------------------------------------------------------------


def test_exec_runs_nothing_when_the_node_cannot_be_isolated(cli: Upgrader, canaries: Canaries,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text(FAILING_UNSHARE)
    (fake / "unshare").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    result = SandboxTransport(cli.sandbox_dir("iso"), "cp-1").run(["sh", "-c", f"cat {UP}{canaries.secret}"], 30)
    assert result.exit_code == 255
    assert result.stderr == ("upgrader: sandbox node cp-1 is broken, nothing was run: unshare: unshare failed: "
                             "Operation not permitted\n")
    canaries.assert_untouched(result.stdout + result.stderr)


def test_up_refuses_without_namespaces_unless_told_the_guard_is_best_effort(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text(FAILING_UNSHARE)
    (fake / "unshare").chmod(0o755)
    u = Upgrader(tmp_path / "home")
    try:  # whatever fails below, no sandbox outlives the test
        _refused_then_best_effort(u, fake)
    finally:
        u.run("sandbox", "down", "weak")


def _refused_then_best_effort(u: Upgrader, fake: Path) -> None:
    bad = u.run("sandbox", "up", "weak", "--isolation", "chroot")
    assert (bad.returncode, bad.stderr) == (2, "error: --isolation 'chroot': use namespace (the default) or "
                                                "best-effort\n")
    refused = u.run("sandbox", "up", "weak", "--control-planes", "1", "--workers", "0", path_prefix=fake)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert "cannot be isolated in their own namespaces on this machine (unshare: unshare failed: Operation not " \
           "permitted)" in line and "--isolation=best-effort" in line, line
    assert not u.sandbox_dir("weak").exists()
    assert "weak" not in u.run("cluster", "list").stdout
    started = u.run("sandbox", "up", "weak", "--control-planes", "1", "--workers", "0",
                    "--isolation=best-effort", "-o", "json", path_prefix=fake)
    assert started.returncode == 0, started.stdout + started.stderr
    assert json.loads(started.stdout)["isolation"] == "best-effort"
    assert json.loads((u.sandbox_dir("weak") / "config.json").read_text())["isolation"] == "best-effort"
    done = u.run("sandbox", "exec", "weak", "cp-1", "--", "sh", "-c", "cat /etc/hostname; kubeadm version -o short",
                 path_prefix=fake)
    assert (done.returncode, done.stdout) == (0, "cp-1\nv1.30.6\n"), done.stderr
    assert u.run("sandbox", "down", "weak", "--keep").returncode == 0
    again = u.run("sandbox", "up", "weak", "--isolation", "namespace")  # a stopped sandbox resumes as it is
    assert again.returncode == 2 and "--isolation namespace (it has best-effort)" in again.stderr


# --- the wrappers an isolated node gets -------------------------------------------------------------------


def test_a_tool_the_machine_keeps_in_the_other_directory_is_shadowed_there_too(tmp_path: Path) -> None:
    usr = tmp_path / "usr"
    (usr / "bin").mkdir(parents=True)
    (usr / "sbin").mkdir()
    (usr / "sbin" / "apt-get").touch()  # a machine with apt-get in /usr/sbin
    (usr / "bin" / "service").touch()  # and service in /usr/bin
    runtime = Runtime(mounts=(), python="/usr/lib/upgrader-sandbox/python/bin/python3", pythonpath=("/p",),
                      library_path=None, real=(("etcdctl", "/usr/lib/upgrader-sandbox/libexec/etcdctl"),))
    scripts = wrappers.node_scripts(node="cp-1", runtime=runtime, host_usr=usr, etcd_tools=True)
    assert set(scripts) == set(wrappers.tool_paths().values()) | {"/usr/sbin/apt-get", "/usr/bin/service"}
    assert scripts["/usr/sbin/apt-get"] == scripts["/usr/bin/apt-get"]
    assert "UPGRADER_SANDBOX_REAL_ETCDCTL=/usr/lib/upgrader-sandbox/libexec/etcdctl" in scripts["/usr/bin/etcdctl"]
    assert "REAL" not in scripts["/usr/bin/kubeadm"]
    (usr / "bin" / "etcdctl").touch()  # by default a node hides the machine's etcdctl, as a kubeadm node has none
    plain = wrappers.node_scripts(node="cp-1", runtime=runtime, host_usr=usr)
    assert isinstance(plain["/usr/bin/etcdctl"], wrappers.Whiteout) and "/usr/bin/etcdutl" not in plain
    assert "UPGRADER_SANDBOX_REAL_ETCDCTL=" in str(plain["/usr/bin/ctr"])  # ctr's etcd tools run the real one
