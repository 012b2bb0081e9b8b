"""What the apply end-to-end tests share: a workload under a PodDisruptionBudget, samplers that watch
the cluster from outside while a run works, and readers of the run's record."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.conftest import Cli

WORKLOAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.k8s.io/pause:3.10}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"""


def api_get(server: str, path: str) -> Any:
    with urllib.request.urlopen(f"{server}{path}", timeout=5) as resp:
        return json.loads(resp.read())


def server_of(kubeconfig: str) -> str:
    import yaml

    with open(kubeconfig) as f:
        return str(yaml.safe_load(f)["clusters"][0]["cluster"]["server"]).rstrip("/")


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


@dataclass
class Sampler:
    """Every `every` seconds: ready web pods, and workers out of service (cordoned or NotReady)."""

    server: str
    workers: list[str]
    every: float = 0.25
    web_ready: list[int] = field(default_factory=list)
    unavailable: list[set[str]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                pods = api_get(self.server, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"]
                nodes = api_get(self.server, "/api/v1/nodes")["items"]
            except OSError:  # the apiserver restarting under kubeadm: no sample, not a failure of the workload
                self.errors += 1
                continue
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            self.web_ready.append(sum(1 for p in live if _ready(p)))
            self.unavailable.append({n["metadata"]["name"] for n in nodes if n["metadata"]["name"] in self.workers
                                     and ((n.get("spec") or {}).get("unschedulable") or not _ready(n))})


def run_doc(cli: Cli, run_id: int) -> dict[str, Any]:
    return json.loads(cli.run("runs", "show", str(run_id), "-o", "json").stdout)


def steps_of(run: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if s["action"] == action]


def max_overlap(run: dict[str, Any], nodes: list[str]) -> int:
    """The most of these nodes that were between their drain's start and their uncordon's end at once."""
    windows = []
    for node in nodes:
        drains = [s for s in steps_of(run, "drain") if s["node"] == node]
        uncordons = [s for s in steps_of(run, "uncordon") if s["node"] == node]
        for d, u in zip(drains, uncordons, strict=True):
            windows.append((d["started_at"], u["finished_at"]))
    edges = sorted([(a, 1) for a, _ in windows] + [(b, -1) for _, b in windows], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, delta in edges:
        now += delta
        most = max(most, now)
    return most


def wait_for_step(cli: Cli, run_id: int | None, *, action: str, status: str = "running",
                  timeout: float = 300) -> dict[str, Any]:
    """Poll the ledger until a step of `action` is in `status` (read-only, straight from `runs show`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = json.loads(cli.run("runs", "list", "-o", "json").stdout)
        if listed:
            doc = run_doc(cli, run_id or listed[0]["id"])
            found = [s for s in steps_of(doc, action) if s["status"] == status]
            if found:
                return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {action} step became {status} within {timeout}s")
