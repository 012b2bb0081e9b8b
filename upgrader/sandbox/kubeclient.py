"""A minimal Kubernetes API client over urllib: the simulated kubeadm's, and every /readyz probe's.

Not the sandbox's API *server* (that is :mod:`upgrader.sandbox.apiserver`). The sandbox's node-side
tools must not depend on the official client (they are the "other side" that the official client is
tested against), and they only need a handful of calls; the load balancer, the kubelet's readiness
probe and `sandbox up` ask an API server's /readyz through it too.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml


class ApiError(Exception):
    """The API answered with an error status, or did not answer (status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def server_from_kubeconfig(path: Path) -> str:
    """The server of the kubeconfig's current context (what kubeadm uses from admin.conf)."""
    doc = yaml.safe_load(path.read_text())
    context_name = doc.get("current-context")
    contexts = {c["name"]: c["context"] for c in doc.get("contexts", [])}
    clusters = {c["name"]: c["cluster"] for c in doc.get("clusters", [])}
    cluster = contexts.get(context_name, {}).get("cluster") if context_name else None
    if cluster is None and clusters:
        cluster = next(iter(clusters))
    return str(clusters[cluster]["server"]).rstrip("/")


class KubeClient:
    def __init__(self, server: str, *, timeout: float = 5.0) -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: object | None = None, *,
                content_type: str = "application/json") -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, _status_message(e)) from e
        except (OSError, ValueError) as e:
            raise ApiError(0, f'Get "{self.server}{path}": {_reason(e)}') from e
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"text": raw.decode(errors="replace")}

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def git_version(self) -> str:
        return str(self.get("/version")["gitVersion"])

    def readyz(self) -> int:
        """The status /readyz answers, 0 when nothing answers (its body, the list of checks, is not read)."""
        try:
            with urllib.request.urlopen(self.server + "/readyz", timeout=self.timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as e:
            return e.code
        except (OSError, ValueError):
            return 0

    def ready(self) -> bool:
        return self.readyz() == 200

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")


def _status_message(e: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(e.read())
        return str(body.get("message") or body)
    except (ValueError, OSError):
        return f"HTTP {e.code}"


def _reason(e: Exception) -> str:
    reason = getattr(e, "reason", None)
    if isinstance(reason, ConnectionRefusedError):
        return "dial tcp: connect: connection refused"
    return str(reason or e)
