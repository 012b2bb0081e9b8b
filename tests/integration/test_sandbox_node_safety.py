"""Nothing done on a sandbox node reaches the host: its files, its tools, its etcd or the operator's cluster.

upgrader runs as root, and a sandbox node is only a directory, so each test here is a way out that
a reviewer found: shell redirections, ``..``, absolute paths to host tools, host tools the sandbox
does not simulate, the operator's HOME/KUBECONFIG/ETCDCTL_* environment, etcdctl's endpoint forms,
and `sandbox exec` options after the node name. A real etcd member and a real API server (seeded with
cp-1 and three workers) stand in for the sandbox's; a decoy "operator's cluster" and a decoy listener
on the host's 127.0.0.1:2379 must never be contacted.

Every node test runs on both isolation modes: ``namespace`` (the node's own mount namespace) and
``best-effort`` (path rewriting, whose rules the first tests pin down as a pure function).
test_sandbox_isolation.py tries the escapes that only the namespace stops.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.integration.sandbox_helpers import REPO, etcd_cluster, needs_etcd, sandbox_api, write_kubeconfig
from upgrader.errors import NodePathError
from upgrader.sandbox.etcd.members import EtcdMember
from upgrader.sandbox.node import isolation
from upgrader.sandbox.node import provision as noderoot
from upgrader.sandbox.node import wrappers as shims
from upgrader.sandbox.node.paths import NodePaths
from upgrader.sandbox.node.transport import SandboxTransport
from upgrader.sandbox.sandbox_config import new_config

pytestmark = [pytest.mark.etcd, needs_etcd]

ROOT = Path("/sbx/nodes/cp-1")
PATHS = NodePaths(ROOT, shims.tool_paths())
HELD = ["kubeadm", "kubectl", "kubelet"]


# --- path rewriting, as a pure function -------------------------------------------------------------


@pytest.mark.parametrize(("arg", "expected"), [
    ("echo x >/tmp/f", "echo x >/sbx/nodes/cp-1/tmp/f"),
    ("echo x>/etc/kubernetes/admin.conf", "echo x>/sbx/nodes/cp-1/etc/kubernetes/admin.conf"),
    ("cat</etc/hostname", "cat</sbx/nodes/cp-1/etc/hostname"),
    ("echo x|/usr/bin/tee /var/log/x", "echo x|/usr/bin/tee /sbx/nodes/cp-1/var/log/x"),
    ("true&/root/x", "true&/sbx/nodes/cp-1/root/x"),
    ("true;/opt/x", "true;/sbx/nodes/cp-1/opt/x"),
    ("X=/run/x", "X=/sbx/nodes/cp-1/run/x"),
    ("(cat /home/u/.bashrc)", "(cat /sbx/nodes/cp-1/home/u/.bashrc)"),
    ("$(cat /usr/local/bin/x)", "$(cat /sbx/nodes/cp-1/usr/local/bin/x)"),
    ("curl -o/tmp/x", "curl -o/sbx/nodes/cp-1/tmp/x"),
    ("cat /etc/../../../../../../etc/hostname", "cat /sbx/nodes/cp-1/etc/hostname"),
    ("/usr/../etc/passwd", "/sbx/nodes/cp-1/etc/passwd"),
    ("cat /proc/self/root/etc/kubernetes/admin.conf", "cat /sbx/nodes/cp-1/etc/kubernetes/admin.conf"),
    ("cat /proc/1/cwd/etc/hostname", "cat /sbx/nodes/cp-1/etc/hostname"),
    ("cd / && ls", "cd /sbx/nodes/cp-1 && ls"),
    ("rm -rf /*", "rm -rf /sbx/nodes/cp-1/*"),
    ("cat ~root/.kube/config", "cat /sbx/nodes/cp-1/root/.kube/config"),
    ("/e?c/kubernetes/admin.conf", "/sbx/nodes/cp-1/e?c/kubernetes/admin.conf"),
    ('cat /e"tc"/hostname', 'cat /sbx/nodes/cp-1/e"tc"/hostname'),
    ("/bin/systemctl", "/sbx/nodes/cp-1/usr/bin/systemctl"),
    ("/usr/bin/apt-get", "/sbx/nodes/cp-1/usr/bin/apt-get"),
    ("/sbin/apt-get", "/sbx/nodes/cp-1/usr/bin/apt-get"),
    ("/usr/sbin/dpkg", "/sbx/nodes/cp-1/usr/bin/dpkg"),
    ("/bin/service", "/sbx/nodes/cp-1/usr/sbin/service"),
    ("/usr/b?n/apt-get", "/sbx/nodes/cp-1/usr/b?n/apt-get"),
    ('/usr/bin/"apt-get"', '/sbx/nodes/cp-1/usr/bin/"apt-get"'),
    ("/usr/bin/apt\\-get", "/sbx/nodes/cp-1/usr/bin/apt\\-get"),
    ("unix:///run/containerd/containerd.sock", "unix:///sbx/nodes/cp-1/run/containerd/containerd.sock"),
    # a sed substitution edits a node file's text, which holds node paths: only the file is rewritten
    ("sed -i 's|/var/lib/etcd|/var/lib/etcd-new|' /etc/kubernetes/manifests/etcd.yaml",
     "sed -i 's|/var/lib/etcd|/var/lib/etcd-new|' /sbx/nodes/cp-1/etc/kubernetes/manifests/etcd.yaml"),
])
def test_node_paths_are_rewritten_after_any_separator(arg: str, expected: str) -> None:
    assert PATHS.rewrite(arg) == expected
    assert PATHS.rewrite(expected) == expected, "rewriting is idempotent"


@pytest.mark.parametrize("arg", [
    "/usr/bin/python3", "/dev/null", "/proc/self/status", "/usr/share/doc/x", "/bin/sh -c x",
    "s|/v1.30/deb|/v1.31/deb|", "s|core:/stable:/v1\\.30/deb|core:/stable:/v1.31/deb|",
    "--endpoints=https://127.0.0.1:2379", "http://h/etc/x", "cut -d/ -f2", "awk -F/ '{print $2}'", "a/etc/x",
])
def test_shared_paths_and_non_paths_are_left_alone(arg: str) -> None:
    assert PATHS.rewrite(arg) == arg


def test_output_shows_node_paths_only_where_they_name_the_same_file() -> None:
    assert PATHS.view(f"{ROOT}/usr/bin/systemctl {ROOT}/root/snap.db {ROOT}") == "/usr/bin/systemctl /root/snap.db /"
    # a file of the root that the same node path would not reach stays a host path: never a fake /bin/X
    assert PATHS.view(f"{ROOT}/bin/systemctl {ROOT}/usr/share/x /sbx/nodes/cp-10/x") == (
        f"{ROOT}/bin/systemctl {ROOT}/usr/share/x /sbx/nodes/cp-10/x")


# --- a sandbox with a real etcd member and a real API server ---------------------------------------


@dataclass
class Sandbox:
    dir: Path
    xdg: Path
    member: EtcdMember
    isolation: str

    def run(self, node: str, *argv: str, timeout: float = 60) -> tuple[int, str, str]:
        r = SandboxTransport(self.dir, node).run(list(argv), timeout)
        return r.exit_code, r.stdout, r.stderr

    def root(self, node: str) -> Path:
        return self.dir / "nodes" / node


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdMember]]:
    with etcd_cluster(tmp_path_factory.mktemp("etcd"), members=1) as started:
        yield started


@pytest.fixture(params=[isolation.NAMESPACE, isolation.BEST_EFFORT])
def sandbox(members: list[EtcdMember], tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with sandbox_api(members, tmp_path) as api:
        xdg = tmp_path / "xdg"
        port = urlsplit(api.url).port
        member_port = urlsplit(members[0].client_url).port
        assert port and member_port
        cfg = new_config(name="safe", sandbox_dir=xdg / "upgrader" / "sandboxes" / "safe", version="v1.30.6",
                         control_planes=1, workers=1, lb_port=port, isolation=request.param,
                         node_etcd_tools=True)  # these tests try the node's etcdctl (`sandbox up --node-etcd-tools`)
        cfg = dataclasses.replace(cfg, apiserver_ports={"cp-1": port}, etcd_client_ports={"cp-1": member_port})
        cfg.dir.mkdir(parents=True)
        cfg.save()
        for node in cfg.nodes:
            noderoot.create(cfg, node)
        yield Sandbox(cfg.dir, xdg, members[0], request.param)


class Decoy:
    """A server standing for something of the host's (the operator's cluster, a host etcd); counts visits."""

    def __init__(self, port: int = 0) -> None:
        self.visits = 0
        decoy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                decoy.visits += 1
                self.send_response(500)
                self.end_headers()

            do_POST = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def operator_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Decoy]:
    """The operator's own environment: HOME and KUBECONFIG point at their cluster, ETCDCTL_* at their etcd."""
    decoy = Decoy()
    home = tmp_path / "operator-home"
    (home / ".kube").mkdir(parents=True)
    write_kubeconfig(home / ".kube" / "config", decoy.url)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(home / ".kube" / "config"))
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", decoy.url)
    monkeypatch.setenv("ETCDCTL_CACERT", "/etc/ssl/operator-ca.crt")
    try:
        yield decoy
    finally:
        decoy.close()


@pytest.fixture
def host_etcd_port() -> Iterator[list[int]]:
    """A listener on the host's 127.0.0.1:2379 counting connections (when the port is free to take)."""
    seen: list[int] = []
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", 2379))
    except OSError:
        sock.close()
        yield seen  # something already listens there: the assertions on output still tell them apart
        return
    sock.listen(16)
    sock.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            seen.append(1)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)
        sock.close()


# --- 1. shell redirections and .. ------------------------------------------------------------------


def test_redirections_and_separators_write_inside_the_node(sandbox: Sandbox) -> None:
    probe = f"upgrader-probe-{uuid.uuid4().hex[:8]}"
    script = (f"echo a >/tmp/{probe}; echo b>>/tmp/{probe}; cat </tmp/{probe} |tee /tmp/{probe}-2 >/dev/null&&"
              f"X=/tmp/{probe}-3; echo $X; (echo c >/etc/kubernetes/{probe}); cat /etc/../../../../../etc/hostname")
    host = [Path("/tmp", probe), Path("/tmp", f"{probe}-2"), Path("/etc/kubernetes", probe)]
    try:
        code, out, err = sandbox.run("worker-1", "sh", "-c", script)
        assert code == 0, err
        assert out == f"/tmp/{probe}-3\nworker-1\n"
        root = sandbox.root("worker-1")
        assert (root / "tmp" / probe).read_text() == "a\nb\n"
        assert (root / "tmp" / f"{probe}-2").read_text() == "a\nb\n"
        assert (root / "etc/kubernetes" / probe).read_text() == "c\n"
        assert [p for p in host if p.exists()] == [], "the host's files were written"
    finally:
        for p in host:
            p.unlink(missing_ok=True)


def test_sed_edits_node_files_in_node_terms(sandbox: Sandbox) -> None:
    """The etcd restore step that points the etcd static pod at the restored data directory."""
    manifest = sandbox.root("cp-1") / "etc/kubernetes/manifests/etcd.yaml"
    assert "path: /var/lib/etcd\n" in manifest.read_text()
    code, _, err = sandbox.run("cp-1", "sh", "-c", "sed -i 's|/var/lib/etcd|/var/lib/etcd-restored|g' "
                               "/etc/kubernetes/manifests/etcd.yaml >/tmp/sed.out")
    assert code == 0, err
    assert "path: /var/lib/etcd-restored\n" in manifest.read_text()
    assert str(sandbox.root("cp-1")) not in manifest.read_text()


def test_read_and_write_file_refuse_paths_that_leave_the_root(sandbox: Sandbox) -> None:
    node = SandboxTransport(sandbox.dir, "worker-1")
    assert node.read_file("/etc/hostname") == b"worker-1\n"
    assert node.read_file("/etc/kubernetes/../hostname") == b"worker-1\n"
    with pytest.raises(NodePathError, match=r"climbs above the node's /"):
        node.read_file("/etc/../../../../../../etc/hostname")
    probe = Path("/tmp", f"upgrader-probe-{uuid.uuid4().hex[:8]}")
    try:
        with pytest.raises(NodePathError):
            node.write_file(f"/tmp/../../../../../../..{probe}", b"x")
        assert not probe.exists()
        os.symlink("/etc", sandbox.root("worker-1") / "tmp" / "host-etc")  # a symlink out of the root
        with pytest.raises(NodePathError, match="outside the node root"):
            node.read_file("/tmp/host-etc/hostname")
        with pytest.raises(NodePathError, match="outside the node root"):
            node.write_file("/tmp/host-etc/upgrader-probe", b"x")
        assert not Path("/etc/upgrader-probe").exists()
    finally:
        probe.unlink(missing_ok=True)


# --- 2. tools: the node's own, under every absolute spelling; host tools refused -------------------


def test_node_tools_are_where_a_node_has_them_and_every_spelling_is_the_nodes(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("cp-1", "sh", "-c", "which kubeadm apt-get systemctl etcdctl kubectl dpkg service")
    assert out.split() == ["/usr/bin/kubeadm", "/usr/bin/apt-get", "/usr/bin/systemctl", "/usr/bin/etcdctl",
                           "/usr/bin/kubectl", "/usr/bin/dpkg", "/usr/sbin/service"]
    # best effort maps all four spellings onto the node's tools; an isolated node is a Debian root: its
    # /bin is /usr/bin, and /usr/sbin has no apt-mark or systemctl (nor has this machine's)
    found = ("/bin", "/usr/bin", "/sbin", "/usr/sbin") if sandbox.isolation == isolation.BEST_EFFORT else (
        "/bin", "/usr/bin")
    for spelling in ("/bin", "/usr/bin", "/sbin", "/usr/sbin"):
        code, out, err = sandbox.run("worker-1", f"{spelling}/apt-mark", "showhold")
        code2, out2, err2 = sandbox.run("worker-1", "sh", "-c", f"{spelling}/systemctl is-active containerd")
        if spelling in found:
            assert (code, out.split()) == (0, HELD), (spelling, err)
            assert (code2, out2) == (0, "active\n"), (spelling, err2)  # the simulated systemd, not the host's
        else:
            assert not Path(spelling, "apt-mark").exists() and not Path(spelling, "systemctl").exists()
            assert (code, out, err) == (127, "", f"{spelling}/apt-mark: command not found\n")
            assert (code2, out2) == (127, "") and "not found" in err2
    code, out, _ = sandbox.run("worker-1", "sh", "-c", "$(which systemctl) is-active containerd && "
                               "/usr/bin/dpkg-query -W kubeadm")  # what `which` shows, typed back
    assert (code, out) == (0, "active\nkubeadm\t1.30.6-1.1\n")


@pytest.mark.parametrize("argv", [
    ["reboot", "--help"], ["/sbin/shutdown", "--help"], ["service", "--status-all"], ["/usr/sbin/service", "--help"],
    ["systemd-run", "--version"], ["loginctl", "--version"], ["containerd", "--version"], ["apt", "--version"],
    ["kubelet", "--help"], ["/usr/sbin/runc", "--help"], ["sysctl", "-a"], ["/sbin/modprobe", "--version"],
])
def test_host_tools_the_sandbox_does_not_simulate_are_refused(sandbox: Sandbox, argv: list[str]) -> None:
    code, out, err = sandbox.run("worker-1", *argv)
    tool = Path(argv[0]).name
    assert (code, out) == (127, "")
    assert err.startswith(f"{tool}: not available on sandbox node worker-1: upgrader does not simulate it")


def test_cheap_package_and_node_queries_are_simulated(sandbox: Sandbox) -> None:
    code, out, _ = sandbox.run("worker-1", "dpkg", "-l", "kubeadm")
    assert code == 0 and out.splitlines()[-1].split()[:4] == ["hi", "kubeadm", "1.30.6-1.1", "amd64"]
    fmt = "--showformat=${Package} ${Version} ${db:Status-Abbrev}\\n"
    code, out, _ = sandbox.run("worker-1", "dpkg-query", "-W", fmt)
    assert out.splitlines() == ["kubeadm 1.30.6-1.1 hi ", "kubectl 1.30.6-1.1 hi ", "kubelet 1.30.6-1.1 hi "]
    code, _, err = sandbox.run("worker-1", "dpkg-query", "-s", "containerd")
    assert code == 1 and "package 'containerd' is not installed" in err
    code, _, err = sandbox.run("worker-1", "dpkg", "-i", "/tmp/kubeadm.deb")
    assert code == 2 and "dpkg: error: -i is not supported on sandbox node worker-1" in err
    assert sandbox.run("worker-1", "kubelet", "--version")[1] == "Kubernetes v1.30.6\n"
    assert sandbox.run("worker-1", "hostname")[1] == "worker-1\n"
    assert sandbox.run("cp-1", "cat", "/etc/hostname")[1] == "cp-1\n"
    code, out, err = sandbox.run("worker-1", "sudo", "apt-mark", "showhold")
    assert (code, out.split()) == (0, HELD), err
    code, out, err = sandbox.run("worker-1", "sudo", "-E", "FOO=bar", "sh", "-c", "echo $FOO")
    assert (code, out) == (0, "bar\n"), err
    code, out, err = sandbox.run("worker-1", "sudo", "PATH=/usr/bin:/bin", "apt-mark", "showhold")
    assert (code, out) == (1, "") and "does not let a command change its PATH" in err


def test_a_lost_node_tool_comes_back_instead_of_the_hosts(sandbox: Sandbox) -> None:
    tools = sandbox.root("worker-1") / "usr"
    code, _, err = sandbox.run("worker-1", "rm", "/usr/bin/apt-mark", "/usr/sbin/service")
    if sandbox.isolation == isolation.NAMESPACE:  # the node's /usr is read-only: only the host can lose one
        assert code == 1 and "Read-only file system" in err
        assert (tools / "bin/apt-mark").exists()
        (tools / "bin/apt-mark").unlink()
        (tools / "sbin/service").write_text("#!/bin/sh\nexec /usr/sbin/service.real \"$@\"\n")
    else:
        assert code == 0, err
    assert not (tools / "bin/apt-mark").exists()
    code, out, err = sandbox.run("worker-1", "apt-mark", "showhold")
    assert (code, out.split()) == (0, HELD), err
    assert sandbox.run("worker-1", "service", "--status-all")[0] == 127


# --- 3. the operator's environment stays off the node -----------------------------------------------


def test_kubectl_and_etcdctl_never_use_the_operators_environment(sandbox: Sandbox, operator_env: Decoy) -> None:
    script = 'echo "$HOME|${KUBECONFIG-unset}|${ETCDCTL_ENDPOINTS-unset}|${ETCDCTL_CACERT-unset}"; pwd'
    code, out, _ = sandbox.run("worker-1", "sh", "-c", script)
    assert out == "/root|unset|unset|unset\n/root\n"
    code, out, err = sandbox.run("worker-1", "kubectl", "get", "nodes")
    assert code == 1 and "The connection to the server localhost:8080 was refused" in err, out + err
    code, out, err = sandbox.run("cp-1", "kubectl", "get", "nodes", "-o", "name")
    assert code == 0, err
    assert out.split() == ["node/cp-1", "node/worker-1", "node/worker-2", "node/worker-3"]
    root = sandbox.root("cp-1")
    config = root / "root/.kube/config"
    assert config.read_bytes() == (root / "etc/kubernetes/admin.conf").read_bytes()
    assert config.stat().st_mode & 0o777 == 0o600
    assert not (sandbox.root("worker-1") / "root/.kube/config").exists()
    code, out, err = sandbox.run("cp-1", "etcdctl", "member", "list")
    assert code == 0 and sandbox.member.client_url in out, err
    assert operator_env.visits == 0, "the operator's cluster was contacted from a sandbox node"


# --- 5. etcdctl reaches only this sandbox's etcd ---------------------------------------------------


@pytest.mark.parametrize("flags", [
    [], ["--endpoints", "127.0.0.1:2379"], ["--endpoints=127.0.0.1:2379"], ["--endpoints=localhost:2379"],
    ["--endpoints=http://127.0.0.1:2379"], ["--endpoints=https://localhost:2379"],
    ["--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
     "--cert=/etc/kubernetes/pki/etcd/server.crt", "--key", "/etc/kubernetes/pki/etcd/server.key"],
])
def test_etcdctl_maps_every_local_endpoint_form_to_the_nodes_member(sandbox: Sandbox, host_etcd_port: list[int],
                                                                    flags: list[str]) -> None:
    code, out, err = sandbox.run("cp-1", "etcdctl", *flags, "--dial-timeout=2s", "member", "list")
    assert code == 0, err
    assert sandbox.member.client_url in out
    assert host_etcd_port == [], "the host's 127.0.0.1:2379 was contacted"


def test_etcdctl_endpoints_outside_the_sandbox_are_refused(sandbox: Sandbox, host_etcd_port: list[int]) -> None:
    for endpoint in ("10.0.0.1:2379", "127.0.0.1:1", "https://etcd.example.com:2379"):
        code, out, err = sandbox.run("cp-1", "etcdctl", f"--endpoints={endpoint}", "member", "list")
        assert (code, out) == (1, ""), endpoint
        assert f"endpoint {endpoint} is not an etcd member of this sandbox" in err
    code, out, err = sandbox.run("cp-1", "sh", "-c", "ETCDCTL_ENDPOINTS=localhost:2379 etcdctl member list")
    assert code == 0 and sandbox.member.client_url in out, err
    assert host_etcd_port == []


def test_a_workers_etcdctl_has_no_local_member(sandbox: Sandbox, host_etcd_port: list[int]) -> None:
    code, out, _ = sandbox.run("worker-1", "sh", "-c", "which etcdctl && head -2 $(which etcdctl)")
    assert out.splitlines()[:3] == ["/usr/bin/etcdctl", "#!/bin/sh", "# upgrader sandbox: simulated etcdctl on "
                                    "node worker-1"]
    code, out, err = sandbox.run("worker-1", "etcdctl", "--dial-timeout=1s", "--command-timeout=2s",
                                 "endpoint", "health")
    assert (code, out) == (1, ""), err  # what etcdctl says when nothing listens on 127.0.0.1:2379
    assert "127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded" in err
    assert err.endswith("Error: unhealthy cluster\n")
    # another member of the sandbox, named by its URL, is as reachable as over a real network
    code, out, err = sandbox.run("worker-1", "etcdctl", f"--endpoints={sandbox.member.client_url}", "member", "list")
    assert code == 0 and sandbox.member.client_url in out, err
    assert host_etcd_port == []


# --- 6. sandbox exec takes its options after NODE -----------------------------------------------


def _cli(sandbox: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UPGRADER_", "KUBECONFIG"))}
    env |= {"XDG_DATA_HOME": str(sandbox.xdg), "UPGRADER_DB": str(sandbox.xdg / "ledger.db"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "upgrader", "sandbox", "exec", "safe", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60, check=False)


def test_exec_takes_timeout_after_the_node(sandbox: Sandbox) -> None:
    done = _cli(sandbox, "worker-1", "--timeout", "20s", "--", "cat", "/etc/hostname")
    assert (done.returncode, done.stdout) == (0, "worker-1\n"), done.stderr
    started = time.monotonic()
    done = _cli(sandbox, "worker-1", "--timeout=1s", "--", "sleep", "10")
    assert done.returncode == 124 and "timed out after 1s" in done.stderr
    assert time.monotonic() - started < 8
    done = _cli(sandbox, "worker-1", "--bogus", "--", "true")
    assert done.returncode == 2 and "unknown option --bogus for sandbox exec" in done.stderr
    done = _cli(sandbox, "worker-1", "ls", "-d", "/etc")  # no options, no --: the command as given
    assert (done.returncode, done.stdout) == (0, "/etc\n"), done.stderr
