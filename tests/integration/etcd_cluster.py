"""A real 3-member etcd cluster with TLS client certificates, as kubeadm makes them, for tests to share.

``tls_etcd`` (session-scoped; import it into a test module or a conftest) starts the host's etcd
(Debian's 3.4) three times on loopback ports. Every member requires client certificates
(``--client-cert-auth``, ``--peer-client-cert-auth``) signed by the cluster's own etcd CA. The
certificates are made with /usr/bin/openssl (argv lists, never a shell) and laid out as kubeadm
lays them out on each node: ``NODE_ROOT/etc/kubernetes/pki/etcd/{ca,server,peer,healthcheck-client}.{crt,key}``,
``NODE_ROOT/etc/kubernetes/pki/apiserver-etcd-client.{crt,key}`` and the static pod manifest
``NODE_ROOT/etc/kubernetes/manifests/etcd.yaml``, whose etcd command the member really runs (with
the node paths mapped onto the node root). A ``LocalTransport`` rooted at a node root is then a
kubeadm control-plane node as upgrader sees it. Processes are stopped by pid when the session ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.processes import stop
from upgrader.ports import EtcdTls
from upgrader.sandbox.sandbox_config import free_ports

OPENSSL = "/usr/bin/openssl"
NAMES = ("cp-1", "cp-2", "cp-3")
PKI = "/etc/kubernetes/pki"


def _openssl(*args: str) -> None:
    done = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise AssertionError(f"openssl {args[0]} failed: {done.stderr[-500:]}")


def make_ca(directory: Path, name: str = "ca", cn: str = "etcd-ca") -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign")
    key.chmod(0o600)
    return crt, key


def make_cert(ca: tuple[Path, Path], directory: Path, name: str, *, cn: str, usages: str,
              sans: str | None = None, org: str | None = None) -> tuple[Path, Path]:
    """A leaf certificate signed by ``ca``; ``usages`` is an extendedKeyUsage value."""
    directory.mkdir(parents=True, exist_ok=True)
    crt, key, csr = directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.csr"
    ext = directory / f"{name}.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                   f"extendedKeyUsage={usages}\n" + (f"subjectAltName={sans}\n" if sans else ""))
    subject = f"/CN={cn}" + (f"/O={org}" if org else "")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", subject)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-days", "2", "-out", str(crt), "-extfile", str(ext))
    csr.unlink()
    ext.unlink()
    key.chmod(0o600)
    return crt, key


@dataclass
class TlsMember:
    name: str
    root: Path  # the node root: ROOT/etc/kubernetes/... as on a kubeadm node
    client_url: str
    peer_url: str
    argv: list[str]
    pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "var" / "lib" / "etcd"


@dataclass
class TlsEtcdCluster:
    """Three TLS members; ``client_tls`` is kubeadm's healthcheck-client, ``rogue_tls`` a stranger's cert."""

    base: Path
    members: list[TlsMember]
    client_tls: EtcdTls
    rogue_tls: EtcdTls
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def member(self, name: str) -> TlsMember:
        return next(m for m in self.members if m.name == name)

    def start(self, name: str) -> None:
        m = self.member(name)
        log = (self.base / f"{name}.log").open("ab")
        try:
            proc = subprocess.Popen(m.argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self._procs[name] = proc
        m.pid = proc.pid

    def stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None:
            stop(proc)
        self.member(name).pid = None

    def stop_all(self) -> None:
        for name in list(self._procs):
            self.stop(name)

    def etcdctl(self, *args: str, endpoints: list[str] | None = None,
                tls: EtcdTls | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        tls = tls or self.client_tls
        argv = ["etcdctl", f"--endpoints={','.join(endpoints or self.endpoints)}", f"--cacert={tls.cacert}",
                f"--cert={tls.cert}", f"--key={tls.key}", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              env={"PATH": os.environ.get("PATH", "/usr/bin"), "ETCDCTL_API": "3"})

    def wait_healthy(self, names: tuple[str, ...] | None = None, timeout: float = 40) -> None:
        chosen = [m for m in self.members if names is None or m.name in names]
        deadline = time.monotonic() + timeout
        while True:
            done = self.etcdctl("endpoint", "health", endpoints=[m.client_url for m in chosen], timeout=20)
            if done.returncode == 0:
                return
            for m in chosen:
                proc = self._procs.get(m.name)
                if proc is not None and proc.poll() is not None:
                    tail = (self.base / f"{m.name}.log").read_text(errors="replace")[-1500:]
                    raise AssertionError(f"etcd {m.name} exited: {tail}")
            if time.monotonic() > deadline:
                raise AssertionError(f"etcd TLS cluster not healthy: {done.stdout}{done.stderr[-800:]}")
            time.sleep(0.3)


def _manifest(name: str, client: str, peer: str, initial: str) -> dict[str, object]:
    """kubeadm's etcd static pod, reduced to what matters here (its command is the member's argv)."""
    command = [
        "etcd", f"--advertise-client-urls={client}", f"--cert-file={PKI}/etcd/server.crt",
        "--client-cert-auth=true", "--data-dir=/var/lib/etcd", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={initial}", "--initial-cluster-state=new", f"--key-file={PKI}/etcd/server.key",
        f"--listen-client-urls={client}", f"--listen-peer-urls={peer}", f"--name={name}",
        f"--peer-cert-file={PKI}/etcd/peer.crt", "--peer-client-cert-auth=true",
        f"--peer-key-file={PKI}/etcd/peer.key", f"--peer-trusted-ca-file={PKI}/etcd/ca.crt",
        "--snapshot-count=10000", f"--trusted-ca-file={PKI}/etcd/ca.crt",
    ]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"annotations": {"kubeadm.kubernetes.io/etcd.advertise-client-urls": client},
                         "labels": {"component": "etcd", "tier": "control-plane"}, "name": "etcd",
                         "namespace": "kube-system"},
            "spec": {"containers": [{"name": "etcd", "image": "registry.k8s.io/etcd:3.4.23-0", "command": command}],
                     "hostNetwork": True}}


def _host_argv(command: list[str], root: Path) -> list[str]:
    """The manifest's command with node paths mapped onto the node root (as a kubelet's mounts would)."""
    argv = ["etcd"]
    for arg in command[1:]:
        flag, _, value = arg.partition("=")
        argv.append(f"{flag}={root}{value}" if value.startswith("/") else arg)
    return [*argv, "--logger=zap", "--log-outputs=stderr"]


def build_cluster(base: Path) -> TlsEtcdCluster:
    ports = free_ports(2 * len(NAMES))
    urls = {n: (f"https://127.0.0.1:{ports[2 * i]}", f"https://127.0.0.1:{ports[2 * i + 1]}")
            for i, n in enumerate(NAMES)}
    initial = ",".join(f"{n}={peer}" for n, (_, peer) in urls.items())
    ca_dir = base / "ca"
    ca = make_ca(ca_dir)
    members = []
    for name, (client, peer) in urls.items():
        root = base / name
        etcd_pki = root / PKI.lstrip("/") / "etcd"
        etcd_pki.mkdir(parents=True, exist_ok=True)
        shutil.copy(ca[0], etcd_pki / "ca.crt")
        shutil.copy(ca[1], etcd_pki / "ca.key")
        sans = f"DNS:localhost,DNS:{name},IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"
        make_cert(ca, etcd_pki, "server", cn=name, usages="serverAuth,clientAuth", sans=sans)
        make_cert(ca, etcd_pki, "peer", cn=name, usages="serverAuth,clientAuth", sans=sans)
        make_cert(ca, etcd_pki, "healthcheck-client", cn="kube-etcd-healthcheck-client", usages="clientAuth")
        make_cert(ca, root / PKI.lstrip("/"), "apiserver-etcd-client", cn="kube-apiserver-etcd-client",
                  usages="clientAuth")
        manifest = _manifest(name, client, peer, initial)
        manifests = root / "etc" / "kubernetes" / "manifests"
        manifests.mkdir(parents=True)
        (manifests / "etcd.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        (root / "var" / "lib" / "etcd").mkdir(parents=True, mode=0o700)
        command = manifest["spec"]["containers"][0]["command"]  # type: ignore[index]
        members.append(TlsMember(name, root, client, peer, _host_argv(command, root)))
    pki = members[0].root / PKI.lstrip("/") / "etcd"
    client_tls = EtcdTls(cacert=pki / "ca.crt", cert=pki / "healthcheck-client.crt", key=pki / "healthcheck-client.key")
    rogue_ca = make_ca(base / "rogue", cn="rogue-ca")
    rogue = make_cert(rogue_ca, base / "rogue", "client", cn="kube-etcd-healthcheck-client", usages="clientAuth")
    return TlsEtcdCluster(base, members, client_tls, EtcdTls(cacert=pki / "ca.crt", cert=rogue[0], key=rogue[1]))


@pytest.fixture(scope="session")
def tls_etcd() -> Iterator[TlsEtcdCluster]:
    """The shared TLS cluster; a test that stops a member starts it again (``cluster.start``) in a finally."""
    if shutil.which("etcd") is None or shutil.which("etcdctl") is None or not Path(OPENSSL).exists():
        pytest.fail("etcd, etcdctl and openssl are needed: run scripts/test.sh, which installs them")
    base = Path(tempfile.mkdtemp(prefix="upgrader-tls-etcd-"))
    cluster = build_cluster(base)
    try:
        for m in cluster.members:
            cluster.start(m.name)
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.stop_all()
        shutil.rmtree(base, ignore_errors=True)
