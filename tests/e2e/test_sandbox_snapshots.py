"""Snapshots of a sandbox cluster through the real CLI: real etcd, real etcdctl, the sandbox's nodes.

NOTE: needs etcd access (services/etcd_access.etcd_session and the real EtcdctlTool), built in
parallel with this; on a tree where etcd_session is still the stub, create fails with exit 1
("NotImplementedError") and these tests fail, as they should.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tests.e2e.conftest import Cli

SECRET = "e2e-snapshot-secret-Zq7u1v"  # a Secret's value, put straight into the sandbox's etcd


def _put_secret(cli: Cli, name: str) -> None:
    status = cli.status(name)
    port = next(iter(status["ports"]["etcd_client"].values()))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
              "data": {"password": base64.b64encode(SECRET.encode()).decode()}, "stringData": {"plain": SECRET}}
    body = json.dumps({"key": base64.b64encode(b"/registry/secrets/default/db").decode(),
                       "value": base64.b64encode(json.dumps(secret).encode()).decode()}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v3/kv/put", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _create_on_private_tmpfs(cli: Cli, name: str, mount: Path, options: str) -> subprocess.CompletedProcess[str]:
    """`snapshot create --store` onto a tmpfs mounted in a private mount namespace (nothing leaks to the host)."""
    mount.mkdir()
    shell = 'mount -t tmpfs -o "$1" upgrader-e2e "$2" && shift 2 && exec "$@"'
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh", options,
                           str(mount), sys.executable, "-m", "upgrader", "snapshot", "create", name, "--store",
                           str(mount / "store")], capture_output=True, text=True, env=cli.env, timeout=240,
                          check=False)


def _modes(root: Path) -> set[tuple[str, int]]:
    return {("dir" if p.is_dir() else "file", stat.S_IMODE(p.stat().st_mode)) for p in [root, *root.rglob("*")]}


def test_create_verify_refuse_a_flipped_byte_and_prune(cli: Cli, tmp_path: Path) -> None:
    name = "snaps"
    info = cli.up(name, "--control-planes", "3", "--workers", "1")
    _put_secret(cli, name)
    store = tmp_path / "store"
    created = cli.run("snapshot", "create", name, "--label", "e2e", "--store", str(store), "-o", "json")
    doc = json.loads(created.stdout)
    assert doc["known_good"] is True, doc["known_good_reason"]
    assert doc["source_member"] != next(m for m in doc["health_before"]["checks"] if m["reason"] == "EtcdLeader"
                                        )["message"].split()[-1]  # a follower
    assert doc["size"] % 512 == 32 and doc["etcd_status"]["revision"] > 0
    assert {a["node"] for a in doc["artefacts"]} == {"cp-1", "cp-2", "cp-3", "api"}
    assert doc["versions"]["packages"]["cp-1"]["kubeadm"]
    etcd_file = Path(doc["path"])
    assert SECRET.encode() in etcd_file.read_bytes()  # the snapshot is real
    # never readable by group or others
    assert _modes(store) == {("dir", 0o700), ("file", 0o600)}
    # contents and certificates never in output or logs
    pem = (Path(info["dir"]) / "nodes" / "cp-1" / "etc/kubernetes/pki/etcd/ca.crt").read_text()
    for text in (created.stdout, created.stderr):
        assert SECRET not in text and pem not in text and "PRIVATE KEY" not in text
    ledger = (cli.home / "ledger.db").read_bytes()
    assert SECRET.encode() not in ledger and pem.encode() not in ledger

    # a store too small for the database, and a read-only one: one line, exit 2, nothing recorded
    for i, (options, message) in enumerate((("size=256k", "bytes free; the etcd database of"),
                                            ("size=2m,ro", "it is on a read-only file system"))):
        refused_store = _create_on_private_tmpfs(cli, name, tmp_path / f"mnt-{i}", options)
        assert refused_store.returncode == 2 and message in refused_store.stderr, refused_store.stderr
        assert refused_store.stderr.count("\n") == 1 and "Traceback" not in refused_store.stderr
        assert list((tmp_path / f"mnt-{i}").iterdir()) == []
    assert [s["id"] for s in json.loads(cli.run("snapshot", "list", "-o", "json").stdout)] == [doc["id"]]

    sid = str(doc["id"])
    verified = json.loads(cli.run("snapshot", "verify", sid, "--cluster", name, "-o", "json").stdout)
    assert verified["ok"] is True and verified["membership"] == "same members"
    assert len(verified["checked"]) == 2 + len(doc["artefacts"])
    data = bytearray(etcd_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    etcd_file.write_bytes(bytes(data))
    refused = cli.run("snapshot", "verify", sid, check=False)
    assert refused.returncode == 8 and f"snapshot {sid} failed verification" in refused.stderr
    assert refused.stderr.count("\n") == 1
    etcd_file.unlink()
    missing = cli.run("snapshot", "verify", sid, check=False)
    assert missing.returncode == 8 and "is missing" in missing.stderr

    more = [json.loads(cli.run("snapshot", "create", name, "--store", str(store), "-o", "json").stdout)["id"]
            for _ in range(3)]
    cli.run("snapshot", "pin", str(more[0]))
    pruned = json.loads(cli.run("snapshot", "prune", name, "--keep-last", "1", "-o", "json").stdout)
    assert [d["id"] for d in pruned["deleted"]] == [int(sid), more[1]]
    kept = {k["id"]: k["reasons"] for k in pruned["kept"]}
    assert kept == {more[2]: ["last", "newest-known-good"], more[0]: ["pinned"]}
    assert not Path(pruned["deleted"][1]["path"]).exists()
    listed = json.loads(cli.run("snapshot", "list", name, "-o", "json").stdout)
    assert [s["id"] for s in listed] == [more[0], more[2]]

    # kubeadm's own backups on a node: the newest of each kind stays
    backups = ["kubeadm-backup-etcd-2026-11-01-10-00-00", "kubeadm-backup-etcd-2026-11-20-10-00-00",
               "kubeadm-backup-manifests-2026-11-01-10-00-00", "kubeadm-backup-manifests-2026-11-20-10-00-00"]
    cli.exec(name, "cp-2", "mkdir", "-p", *(f"/etc/kubernetes/tmp/{b}/member" for b in backups))
    cleaned = json.loads(cli.run("snapshot", "prune", name, "--keep-last", "5", "--kubeadm-backups", "-o",
                                 "json").stdout)
    assert cleaned["kubeadm_backups"]["cp-2"] == [backups[0], backups[2]] and cleaned["deleted"] == []
    left = cli.exec(name, "cp-2", "ls", "/etc/kubernetes/tmp").stdout.split()
    assert left == [backups[1], backups[3]]


def test_prune_keeps_what_the_policy_says_on_dated_snapshots(cli: Cli, tmp_path: Path) -> None:
    """Snapshots spread over three weeks, inserted through the repository with chosen times; then
    expired credentials refused by inventory, preflight and snapshot create (exit 2, nothing recorded)."""
    from upgrader.domain.records import NewSnapshot
    from upgrader.ledger import db

    name = "dated"
    info = cli.up(name, "--control-planes", "1", "--workers", "0")
    monday = datetime(2026, 11, 2, 6, tzinfo=UTC)
    times = [monday + timedelta(days=d, hours=h) for d in (0, 1, 8, 15, 16) for h in (0, 5)]
    with db.open_ledger(str(cli.home / "ledger.db")) as ledger, ledger.unit_of_work() as uow:
        ids = [uow.repo.add_snapshot(NewSnapshot(
            cluster=name, created_at=at, created_by="e2e", label=None, path=str(tmp_path / f"s{i}" / "etcd.db"),
            size=0, sha256="0" * 64, etcd_status={}, source_member="cp-1", external=False, versions={},
            artefacts=(), known_good=False, known_good_reason=None)).id for i, at in enumerate(times)]
        uow.commit()
    dry = json.loads(cli.run("snapshot", "prune", name, "--keep-daily", "2", "--keep-weekly", "3", "--dry-run",
                             "-o", "json").stdout)
    # daily: the newest of Nov 18 and Nov 17; weekly: the newest of weeks 47 (Nov 18), 46 (Nov 10), 45 (Nov 3)
    assert {k["id"] for k in dry["kept"]} == {ids[9], ids[7], ids[5], ids[3]}
    assert [d["id"] for d in dry["would_delete"]] == [ids[0], ids[1], ids[2], ids[4], ids[6], ids[8]]
    assert dry["deleted"] == []
    done = json.loads(cli.run("snapshot", "prune", name, "--keep-daily", "2", "--keep-weekly", "3", "-o",
                              "json").stdout)
    assert [d["id"] for d in done["deleted"]] == [d["id"] for d in dry["would_delete"]]
    again = json.loads(cli.run("snapshot", "prune", name, "--keep-daily", "2", "--keep-weekly", "3", "-o",
                               "json").stdout)
    assert again["deleted"] == []

    # expired credentials: the same cluster through a kubeconfig whose token the API no longer accepts
    stale_config = tmp_path / "stale.conf"
    stale_config.write_text(Path(info["kubeconfig"]).read_text().replace("token: sandbox-kubernetes-admin",
                                                                         "token: expired-3f9a0c"))
    assert "expired-3f9a0c" in stale_config.read_text()
    # the API really refuses it (kubectl would not show it: client-go sends no bearer token over plain http)
    server = yaml.safe_load(stale_config.read_text())["clusters"][0]["cluster"]["server"]
    request = urllib.request.Request(f"{server}/api/v1/nodes", headers={"Authorization": "Bearer expired-3f9a0c"})
    try:
        urllib.request.urlopen(request, timeout=10).close()
        raise AssertionError("the sandbox API accepted an unknown token")
    except urllib.error.HTTPError as e:
        assert e.code == 401 and json.loads(e.read())["reason"] == "Unauthorized"
    cli.run("cluster", "add", "stale", "--kubeconfig", str(stale_config))
    stale_store = tmp_path / "stale-store"
    for argv in (("inventory", "stale"), ("preflight", "stale", "--to", "v1.31"),
                 ("snapshot", "create", "stale", "--store", str(stale_store))):
        refused_credentials = cli.run(*argv, check=False)
        assert refused_credentials.returncode == 2, (argv, refused_credentials.stderr)
        assert "401 Unauthorized" in refused_credentials.stderr and "expired" in refused_credentials.stderr
        assert refused_credentials.stderr.count("\n") == 1 and "expired-3f9a0c" not in refused_credentials.stderr
    assert json.loads(cli.run("snapshot", "list", "stale", "-o", "json").stdout) == []
    assert not stale_store.exists() or list(stale_store.rglob("*.db*")) == []

    # an exec credential plugin (EKS, GKE, OIDC) runs once per command, not once per API read
    calls = tmp_path / "plugin-calls"
    plugin = tmp_path / "credential-plugin"
    plugin.write_text("#!/bin/sh\necho call >> \"$1\"\n"
                      'echo \'{"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential", '
                      '"status": {"token": "sandbox-kubernetes-admin"}}\'\n')
    plugin.chmod(0o700)
    exec_config = yaml.safe_load(Path(info["kubeconfig"]).read_text())
    exec_config["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                "command": str(plugin), "args": [str(calls)]}}
    (tmp_path / "exec.conf").write_text(yaml.safe_dump(exec_config))
    cli.run("cluster", "add", "viaexec", "--kubeconfig", str(tmp_path / "exec.conf"))
    with db.open_ledger(str(cli.home / "ledger.db")) as ledger, ledger.unit_of_work() as uow:
        uow.repo.set_cluster_transport("viaexec", {"kind": "sandbox", "dir": info["dir"]})  # its nodes, as `up` does
        uow.commit()
    # (preflight reads the API a dozen times; on this 1+0 sandbox the demo PDB blocks a drain: exit 4)
    for argv, code in ((("preflight", "viaexec", "--to", "v1.31", "--quick", "-o", "json"), 4),
                       (("snapshot", "create", "viaexec", "--store", str(tmp_path / "exec-store"), "-o", "json"), 0)):
        calls.unlink(missing_ok=True)
        assert cli.run(*argv, check=False).returncode == code, argv
        assert calls.read_text().splitlines() == ["call"], argv
