"""SshTransport against a real OpenSSH server (tests/integration/sshd.py) on a loopback port."""

from __future__ import annotations

import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from upgrader.domain.node_access import SshTarget
from upgrader.errors import FileMissingError, HostKeyError, NodeAuthError, NodeUnreachableError, TransportError
from upgrader.nodes.ssh import SshTransport


def target(server, known_hosts: Path | None, **extra) -> SshTarget:
    return SshTarget(address="127.0.0.1", address_from="set", user="root", port=server.port,
                     identity=str(server.user_key), known_hosts=str(known_hosts) if known_hosts else None, **extra)


@pytest.fixture
def node(sshd_server):
    transport = SshTransport(target(sshd_server, sshd_server.known_hosts()), node="cp-1")
    yield transport
    transport.close()


def test_output_and_exit_codes_pass_through(node):
    result = node.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=30)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert node.run(["true"], 30).exit_code == 0
    assert node.run(["sh", "-c", "exit 255"], 30).exit_code == 255  # a remote 255 is a result, not "unreachable"
    assert node.run(["no-such-program-xyz"], 30).exit_code == 127


def test_awkward_arguments_arrive_verbatim(node):
    args = ["a b", "it's", '"double"', "$(touch /tmp/upgrader-pwned)", "; rm -rf /", "`id`", "*", "", "\\n", "ünï"]
    result = node.run(["printf", "%s\\0", *args], 30)
    assert result.exit_code == 0
    assert result.stdout.split("\0")[:-1] == args
    assert not Path("/tmp/upgrader-pwned").exists()


def _running(marker: str) -> list[int]:
    """Pids of processes whose command line holds ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if marker.encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def test_a_command_timeout_is_124_and_the_remote_command_is_stopped_too(node):
    node.connect()
    start = time.monotonic()
    result = node.run(["sh", "-c", "echo started; exec sleep 6.0417"], timeout=1.0)
    assert result.exit_code == 124 and result.stdout == "started\n"
    assert "timed out after 1s" in result.stderr
    assert time.monotonic() - start < 4  # the node's own timeout answered, not the local backstop
    time.sleep(0.5)
    assert _running("6.0417") == []  # the remote sleep is gone, not left to finish on its own
    assert node.run(["echo", "still usable"], 30).stdout == "still usable\n"


def test_a_timed_out_command_does_not_finish_later_on_the_node(node, tmp_path):
    marker = tmp_path / "M"
    result = node.run(["sh", "-c", f"sleep 3; touch {marker}"], timeout=1)
    assert result.exit_code == 124
    time.sleep(3.5)  # past the command's natural end
    assert not marker.exists()


def test_a_command_that_ignores_term_is_killed(node, tmp_path):
    marker = tmp_path / "M"
    start = time.monotonic()
    result = node.run(["sh", "-c", f"trap '' TERM; sleep 8.0417; touch {marker}"], timeout=1)
    assert result.exit_code == 124 and "timed out after 1s" in result.stderr
    assert time.monotonic() - start < 1 + 5 + 3
    time.sleep(0.5)
    assert _running("8.0417") == [] and not marker.exists()


def test_a_command_exiting_124_by_itself_is_not_a_timeout(node):
    result = node.run(["sh", "-c", "exit 124"], 30)
    assert result.exit_code == 124 and "timed out" not in result.stderr


def test_many_commands_share_one_connection(sshd_server, node):
    before = sshd_server.logins()
    for i in range(20):
        assert node.run(["echo", str(i)], 30).stdout == f"{i}\n"
    node.write_file("/tmp/upgrader-ssh-reuse", b"x")
    node.read_file("/tmp/upgrader-ssh-reuse")
    assert sshd_server.logins() - before == 1  # one login: every command went over the master
    assert node.alive() and node.master_pid() is not None


def test_close_stops_the_master_and_removes_its_private_dir(node):
    node.run(["true"], 30)
    directory = node.control_path.parent
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert len(str(node.control_path)) < 60  # a Unix socket path must stay short
    pid = node.master_pid()
    node.close()
    assert not directory.exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()
    node.close()  # twice is fine


def test_read_and_write_files_atomically_with_their_mode(node, tmp_path):
    path = str(tmp_path / "conf" / "kubelet.yaml")
    (tmp_path / "conf").mkdir()
    data = bytes(range(256)) * 100
    node.write_file(path, data, 0o600)
    assert Path(path).read_bytes() == data
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    assert node.read_file(path) == data
    node.write_file(path, b"second", 0o640)
    assert Path(path).read_bytes() == b"second" and stat.S_IMODE(Path(path).stat().st_mode) == 0o640
    assert sorted(p.name for p in (tmp_path / "conf").iterdir()) == ["kubelet.yaml"]  # no temp file left
    with pytest.raises(FileMissingError, match=r"cannot read .*missing"):
        node.read_file(str(tmp_path / "missing"))
    with pytest.raises(TransportError, match=r"cannot read .*conf") as not_a_file:  # a directory: not "missing"
        node.read_file(str(tmp_path / "conf"))
    assert not isinstance(not_a_file.value, FileMissingError)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(TransportError) as dangling:
        node.read_file(str(tmp_path / "dangling"))
    assert not isinstance(dangling.value, FileMissingError)  # a link to nothing is a problem, not an absence
    with pytest.raises(TransportError, match="cannot write"):
        node.write_file(str(tmp_path / "no-dir" / "x"), b"x")
    assert not (tmp_path / "no-dir").exists()


def test_a_write_that_times_out_is_not_renamed_into_place_later(node, tmp_path, monkeypatch):
    from upgrader.nodes import ssh as ssh_module

    target_dir = tmp_path / "w"
    target_dir.mkdir()
    (target_dir / "f").write_bytes(b"old")
    node.connect()
    monkeypatch.setattr(ssh_module, "FILE_TIMEOUT", 0.2)
    with pytest.raises(TransportError, match="timed out"):
        node.write_file(str(target_dir / "f"), b"x" * (256 * 1024 * 1024))
    time.sleep(2)
    assert (target_dir / "f").read_bytes() == b"old"  # not a truncated new file
    assert sorted(p.name for p in target_dir.iterdir()) == ["f"]  # and no temp file


def test_a_write_is_synced_before_it_is_renamed(sshd_server, node, tmp_path):
    import subprocess

    path = tmp_path / "synced.conf"  # the node connects once sshd is traced: strace -f follows new children
    trace = tmp_path / "strace.out"
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-y", "-o", str(trace), "-e",
                               "trace=fsync,fdatasync,rename,renameat,renameat2", "-p", str(sshd_server.pid)],
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # strace attaches to sshd and its children
        node.write_file(str(path), b"durable", 0o600)
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    lines = trace.read_text().splitlines()
    fsyncs = [i for i, line in enumerate(lines) if "fsync(" in line and ".upgrader-tmp-" in line]
    renames = [i for i, line in enumerate(lines) if "rename" in line and str(path) in line]
    dir_syncs = [i for i, line in enumerate(lines) if "fsync(" in line and f"<{tmp_path}>" in line]
    assert fsyncs and renames and fsyncs[0] < renames[0], lines
    assert dir_syncs and dir_syncs[-1] > renames[0], lines
    assert path.read_bytes() == b"durable"


def test_copy_to_local_streams_a_node_file_into_a_private_local_file(node, tmp_path):
    source = tmp_path / "big.db"
    data = bytes(range(256)) * 4096 * 8  # 8 MiB
    source.write_bytes(data)
    local = tmp_path / "out" / "copy.db"
    local.parent.mkdir()
    assert node.copy_to_local(str(source), local) == len(data)
    assert local.read_bytes() == data and stat.S_IMODE(local.stat().st_mode) == 0o600
    with pytest.raises(TransportError, match=r"cannot read .*missing"):
        node.copy_to_local(str(tmp_path / "missing"), tmp_path / "out" / "other.db")
    assert sorted(p.name for p in local.parent.iterdir()) == ["copy.db"]  # nothing half-copied left


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(node, tmp_path):
    target_dir = tmp_path / "ro"
    target_dir.mkdir()
    (target_dir / "f").write_bytes(b"old")
    # a directory where the file should be: mv -T refuses (plain mv would move the file into it)
    (target_dir / "d").mkdir()
    (target_dir / "d" / "inner").write_text("keep")
    with pytest.raises(TransportError):
        node.write_file(str(target_dir / "d"), b"new")
    assert (target_dir / "d" / "inner").read_text() == "keep"
    assert sorted(p.name for p in target_dir.iterdir()) == ["d", "f"]


def test_an_unknown_host_key_is_refused(sshd_server, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with SshTransport(target(sshd_server, empty), node="cp-1") as node, \
            pytest.raises(HostKeyError, match=r"host key of node cp-1 .* is not known") as e:
        node.run(["true"], 30)
    # advice that works: ssh-keyscan into the file in use, or the one command that takes the flag
    assert f"`ssh-keyscan -p {sshd_server.port} 127.0.0.1 >> {empty}`" in str(e.value)
    assert "`upgrader node exec CLUSTER cp-1 --accept-new-host-keys -- true`" in str(e.value)
    assert e.value.exit_code == 2
    assert empty.read_text() == ""  # nothing was trusted


def test_a_changed_host_key_is_refused_even_with_accept_new(sshd_server, tmp_path):
    from tests.integration.sshd import keygen

    other = keygen(tmp_path / "other", "another-host")
    kind, blob = other.with_suffix(".pub").read_text().split()[:2]
    wrong = sshd_server.known_hosts("wrong_known_hosts", key=f"[127.0.0.1]:{sshd_server.port} {kind} {blob}\n")
    for accept in (False, True):
        with SshTransport(target(sshd_server, wrong), node="cp-1", accept_new_host_keys=accept) as node, \
                pytest.raises(HostKeyError, match=r"has CHANGED.*man-in-the-middle"):
            node.run(["true"], 30)


def test_accept_new_trusts_a_first_key_and_says_so(sshd_server, tmp_path):
    known = tmp_path / "known_hosts"
    with SshTransport(target(sshd_server, known), node="cp-1", accept_new_host_keys=True) as node:
        assert node.run(["true"], 30).ok
        assert node.added_host_keys and "Permanently added" in node.added_host_keys[0]
    assert known.read_text().strip()
    with SshTransport(target(sshd_server, known), node="cp-1") as strict:  # now known: strict mode accepts it
        assert strict.run(["true"], 30).ok
        assert strict.added_host_keys == []


def test_a_closed_port_is_unreachable_not_a_failed_command(sshd_server):
    from tests.integration.sshd import free_port

    closed = SshTarget(address="127.0.0.1", address_from="set", user="root", port=free_port(),
                       identity=str(sshd_server.user_key), known_hosts=str(sshd_server.known_hosts()))
    with SshTransport(closed, node="cp-1") as node, pytest.raises(NodeUnreachableError, match="refused") as e:
        node.run(["true"], 30)
    assert e.value.exit_code == 2


def test_a_silent_address_is_unreachable_after_the_connect_timeout(sshd_server):
    """A blackhole: the TCP connection is accepted but nothing ever answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        silent = SshTarget(address="127.0.0.1", address_from="set", user="root", port=listener.getsockname()[1],
                           identity=str(sshd_server.user_key), known_hosts=str(sshd_server.known_hosts()))
        start = time.monotonic()
        with SshTransport(silent, node="cp-1", connect_timeout=2) as node, \
                pytest.raises(NodeUnreachableError, match="unreachable"):
            node.run(["true"], 60)
        assert time.monotonic() - start < 15


def test_an_unroutable_or_unknown_address_is_unreachable(sshd_server):
    for address in ("192.0.2.1", "no-such-host.invalid"):  # TEST-NET-1 (RFC 5737), a reserved TLD
        t = SshTarget(address=address, address_from="set", user="root", identity=str(sshd_server.user_key),
                      known_hosts=str(sshd_server.known_hosts()))
        with SshTransport(t, node="cp-1", connect_timeout=2) as node, pytest.raises(NodeUnreachableError):
            node.run(["true"], 60)


def test_a_refused_login_is_its_own_error(sshd_server, tmp_path):
    from tests.integration.sshd import keygen

    stranger = keygen(tmp_path / "stranger", "not-authorized")
    t = SshTarget(address="127.0.0.1", address_from="set", user="root", port=sshd_server.port,
                  identity=str(stranger), known_hosts=str(sshd_server.known_hosts()),
                  options={"IdentitiesOnly": "yes", "IdentityAgent": "none"})
    with SshTransport(t, node="cp-1") as node, pytest.raises(NodeAuthError, match="refused"):
        node.run(["true"], 30)


def test_a_lost_master_is_reconnected(sshd_server, node):
    import os
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL leaves its socket behind, stale
        node.run(["true"], 30)
        pid = node.master_pid()
        os.kill(pid, sig)  # the master this test's transport started
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert node.run(["echo", "back"], 30).stdout == "back\n"
        assert node.master_pid() not in (None, pid)


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for a parent that is not us counts as exited)."""
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_forward_reaches_a_port_as_the_node_sees_it(node):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"hello " + conn.recv(100))

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        host, local = node.forward("127.0.0.1", port)
        with socket.create_connection((host, local), timeout=10) as client:
            client.sendall(b"etcd")
            assert client.recv(100) == b"hello etcd"
        thread.join(5)
    node.close()
    with pytest.raises(OSError):
        socket.create_connection((host, local), timeout=2).close()


def test_a_transport_left_open_is_closed_when_the_interpreter_exits(sshd_server):
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from upgrader.domain.node_access import SshTarget\n"
        "from upgrader.nodes.ssh import SshTransport\n"
        "t = SshTransport(SshTarget(address='127.0.0.1', address_from='set', user='root', port=int(sys.argv[1]),"
        " identity=sys.argv[2], known_hosts=sys.argv[3]), node='cp-1')\n"
        "assert t.run(['true'], 30).ok\n"
        "print(t.master_pid(), t.control_path.parent, flush=True)\n"  # and exit without close()
    )
    done = subprocess.run([sys.executable, "-c", script, str(sshd_server.port), str(sshd_server.user_key),
                           str(sshd_server.known_hosts())], capture_output=True, text=True, timeout=60, check=True)
    pid, directory = done.stdout.split()
    assert not Path(directory).exists()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()


def test_threads_sharing_a_node_share_one_connection(sshd_server, node):
    from concurrent.futures import ThreadPoolExecutor

    before = sshd_server.logins()
    with ThreadPoolExecutor(8) as pool:
        outputs = list(pool.map(lambda i: node.run(["echo", str(i)], 30).stdout, range(40)))
    assert outputs == [f"{i}\n" for i in range(40)]
    assert sshd_server.logins() - before == 1
