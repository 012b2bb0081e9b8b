"""A minimal Kubernetes API client over urllib, for the simulated kubeadm and kubelet.

The sandbox's node-side tools must not depend on the official client (they are the "other side"
that the official client is tested against), and they only need a handful of calls.
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


class KubeApi:
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

    def text(self, path: str) -> tuple[int, str]:
        """Status and body of a plain-text endpoint such as /readyz (status 0 if unreachable)."""
        try:
            with urllib.request.urlopen(self.server + path, timeout=self.timeout) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")
        except (OSError, ValueError) as e:
            return 0, _reason(e)

    def git_version(self) -> str:
        return str(self.get("/version")["gitVersion"])

    def ready(self) -> bool:
        return self.text("/readyz")[0] == 200

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
