"""Run the real `upgrader` entry point in a subprocess, against a throwaway SQLite ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: prod-admin
  context: {cluster: prod, user: admin}
- name: broken
  context: {cluster: missing, user: admin}
current-context: prod-admin
users:
- name: admin
  user: {token: not-a-real-token}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


class Cli:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db = tmp / "ledger.db"
        self.env = {**os.environ, "UPGRADER_DB": str(self.db), "XDG_DATA_HOME": str(tmp / "xdg")}

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "upgrader", *args],
            capture_output=True, text=True, env={**self.env, **(env or {})}, timeout=120, check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def write(self, name: str, content: str | dict) -> Path:
        path = self.tmp / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


@pytest.fixture
def kubeconfig(cli: Cli) -> Path:
    return cli.write("kubeconfig", KUBECONFIG)


@pytest.fixture
def added(cli: Cli, kubeconfig: Path) -> None:
    """Cluster prod registered."""
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0


def one_line(r: Result) -> str:
    """The error of a refused command: one line, no traceback."""
    assert "Traceback" not in r.err and r.err.count("\n") == 1, r.err
    return r.err


def node(name: str, version: str, *, cp: bool = False, kubelet: str | None = None, **extra) -> dict:
    doc = {"name": name, "control_plane": cp, "kubelet": kubelet or version, "ready": True, "unschedulable": False}
    if cp:
        doc["components"] = {"kube-apiserver": version, "kube-controller-manager": version,
                             "kube-scheduler": version, "etcd": "3.5.15-0"}
    doc.update(extra)
    return doc


def inventory_doc(*nodes: dict, cluster: str = "prod") -> dict:
    return {"cluster": cluster, "observed_at": "2026-11-30T00:00:00Z", "nodes": list(nodes)}
