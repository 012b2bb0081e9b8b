"""The cluster writes a drain needs: cordon/uncordon (a merge patch of the Node), evict and delete a pod.

Like the reads (health.py) they send and take raw API JSON through the kubeconfig's client. An
eviction's answer is returned, not raised: 429 (a PodDisruptionBudget said no) and 404 (the pod is
already gone) are ordinary moments of a drain, and only the drain knows when to give up. Refused
credentials (401/403) and an unreachable API raise, as for every read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from upgrader.cluster.health import HealthReads, raw_request
from upgrader.cluster.refusals import api_refused
from upgrader.errors import NodeNotFoundError

MERGE_PATCH = "application/merge-patch+json"


class NodeWrites(HealthReads):
    """The reads plus the writes of a drain; KubeClusterApi is built on this."""

    def _send(self, method: str, path: str, body: dict[str, Any], *, content_type: str = "application/json",
              query: list[tuple[str, str]] | None = None) -> tuple[int, str]:
        """The answer to ``METHOD path``; 401/403 raise (the kubeconfig may not do this), any other is returned."""
        status, text = self._call(lambda api_client: raw_request(
            api_client, method, path, self._timeout, query=query, body=body, content_type=content_type))
        if status in (401, 403):
            raise api_refused(f"cluster {self._cluster}", status, None, what=f"{method} {path}")
        return status, text

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON merge patch (RFC 7386: None deletes a field), so a cordon touches only the fields it names."""
        path = f"/api/v1/nodes/{quote(name, safe='')}"
        status, text = self._send("PATCH", path, dict(patch), content_type=MERGE_PATCH)
        if status == 404:
            raise NodeNotFoundError(f"cluster {self._cluster}: no node {name!r}")
        if status != 200:
            raise api_refused(f"cluster {self._cluster}", status, _message(text), what=f"PATCH {path}")
        node = json.loads(text)
        if not isinstance(node, dict):
            raise api_refused(f"cluster {self._cluster}", status, "not a Node", what=f"PATCH {path}")
        return node

    def evict_pod(self, namespace: str, name: str) -> tuple[int, str]:
        """POST a policy/v1 Eviction: the API's status and its message, with the causes it gave (the
        refusing budget: "The disruption budget web needs 2 healthy pods and has 2 currently")."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}/eviction"
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": name, "namespace": namespace}}
        status, text = self._send("POST", path, eviction)
        return status, _message(text)

    def delete_pod(self, namespace: str, name: str, *, grace_seconds: int = 0) -> bool:
        """DELETE the pod, no budget asked; False when it was already gone."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(name, safe='')}"
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace_seconds}
        status, text = self._send("DELETE", path, options, query=[("gracePeriodSeconds", str(grace_seconds))])
        if status == 404:
            return False
        if status not in (200, 202):
            raise api_refused(f"cluster {self._cluster}", status, _message(text), what=f"DELETE {path}")
        return True


    def patch_configmap(self, namespace: str, name: str, data: Mapping[str, str]) -> None:
        """A JSON merge patch of the ConfigMap's data: only the keys given change."""
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/configmaps/{quote(name, safe='')}"
        status, text = self._send("PATCH", path, {"data": dict(data)}, content_type=MERGE_PATCH)
        if status != 200:
            raise api_refused(f"cluster {self._cluster}", status, _message(text), what=f"PATCH {path}")

    def server_version(self) -> dict[str, Any]:
        """GET /version."""
        found = self.get_object("/version")
        if found is None:
            raise api_refused(f"cluster {self._cluster}", 404, None, what="GET /version")
        return found


def _message(text: str) -> str:
    """A Status answer's message and its causes' messages, in one line (the raw text when it is not a Status)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    if not isinstance(doc, dict) or doc.get("kind") != "Status":
        return ""
    message = str(doc.get("message") or "")
    details = doc.get("details")
    causes = details.get("causes") if isinstance(details, dict) else None
    said = [str(c.get("message")) for c in causes or [] if isinstance(c, dict) and c.get("message")]
    return f"{message} ({'; '.join(said)})" if said else message
