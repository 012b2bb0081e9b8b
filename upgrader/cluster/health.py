"""The cluster reads preflight and health gates need, on the official kubernetes client.

Each returns the JSON the API returned (camelCase, as ``kubectl get -o json`` shows it), not the
client's models, so the pure rules read real API documents. ``/readyz`` and ``/metrics`` are not in
the generated client: they go through ``ApiClient.call_api`` with the kubeconfig's credentials.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

from upgrader.cluster.refusals import api_refused
from upgrader.errors import ClusterUnreachableError, PlaybookError

T = TypeVar("T")
MAX_ANSWER = 1024 * 1024 * 1024  # a node list with images is ~20 KiB a node; more is not an apiserver


class HealthReads:
    """Mixed into KubeClusterApi: needs ``_cluster``, ``_kubeconfig``, ``_context`` and ``_timeout``."""

    _cluster: str
    _kubeconfig: str
    _context: str | None
    _timeout: float

    _client: Any = None
    _client_lock = threading.Lock()

    @contextmanager
    def _api_client(self) -> Iterator[Any]:
        """One client per cluster for the whole command, made on first use: a kubeconfig's exec
        credential plugin (EKS, GKE, OIDC) then runs once, not on every read. :meth:`close` ends it."""
        with self._client_lock:
            if self._client is None:
                from kubernetes import config

                try:
                    self._client = config.new_client_from_config(config_file=self._kubeconfig, context=self._context)
                except Exception as e:  # ConfigException, OSError, yaml errors...
                    raise ClusterUnreachableError(f"kubeconfig {self._kubeconfig}: {e}") from e
        yield self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _call(self, read: Callable[[Any], T]) -> T:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        with self._api_client() as api_client:
            try:
                return read(api_client)
            except ApiException as e:
                raise api_refused(f"cluster {self._cluster}", e.status, e.reason) from e
            except (HTTPError, OSError) as e:
                host = api_client.configuration.host
                raise ClusterUnreachableError(f"cluster {self._cluster}: cannot reach the API at {host}") from e

    def _list(self, path: str, query: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        def read(api_client: Any) -> list[dict[str, Any]]:
            status, text = _raw_get(api_client, path, self._timeout, query=query)
            if status != 200:
                raise api_refused(f"cluster {self._cluster}", status, None, what=f"GET {path}")
            doc = json.loads(text)
            items = doc.get("items") if isinstance(doc, dict) else None
            return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

        return self._call(read)

    def readyz(self) -> tuple[int, str]:
        """/readyz's status and body; credentials refused (401/403) raise, as for every read."""
        status, body = self._call(lambda api_client: _raw_get(api_client, "/readyz", self._timeout,
                                                              query=[("verbose", "")]))
        if status in (401, 403):
            raise api_refused(f"cluster {self._cluster}", status, None, what="GET /readyz")
        return status, body

    def get_path(self, path: str, *, timeout: float) -> tuple[int, str]:
        """Any status is an answer (the check decides); only an API that cannot be reached raises. The
        path is joined to the server's URL as text, so anything but one leading "/" (``@host/x``,
        ``//host/x``) would send the credentials elsewhere: refused before any request."""
        if not path.startswith("/") or path.startswith("//") or "@" in path or "\\" in path:
            raise PlaybookError(f"GET {path!r}: not a path on the cluster's API (one leading '/'); nothing was sent")
        return self._call(lambda api_client: _raw_get(api_client, path, timeout, accept="*/*"))

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/nodes")

    def list_control_plane_pods(self) -> list[dict[str, Any]]:
        """kube-system's static (mirror) pods of the control plane, as kubeadm labels them."""
        return self._list("/api/v1/namespaces/kube-system/pods", [("labelSelector", "tier=control-plane")])

    def list_pods(self) -> list[dict[str, Any]]:
        return self._list("/api/v1/pods")

    def list_node_pods(self, node: str) -> list[dict[str, Any]]:
        """The pods bound to ``node``, every namespace (what a drain has to move)."""
        return self._list("/api/v1/pods", [("fieldSelector", f"spec.nodeName={node}")])

    def get_node(self, name: str) -> dict[str, Any] | None:
        return self.get_object(f"/api/v1/nodes/{quote(name, safe='')}")

    def get_object_answer(self, path: str) -> tuple[int, dict[str, Any] | None]:
        """The status of ``GET path`` and the object's JSON when it is 200 (any status: the caller decides)."""
        def read(api_client: Any) -> tuple[int, dict[str, Any] | None]:
            status, text = _raw_get(api_client, path, self._timeout)
            doc = json.loads(text) if status == 200 else None
            return status, doc if isinstance(doc, dict) else None

        return self._call(read)

    def get_object(self, path: str) -> dict[str, Any] | None:
        """One object's JSON; None when the API says it does not exist (404)."""
        status, doc = self.get_object_answer(path)
        if status == 404:
            return None
        if status != 200:
            raise api_refused(f"cluster {self._cluster}", status, None, what=f"GET {path}")
        return doc

    def list_pdbs(self) -> list[dict[str, Any]]:
        return self._list("/apis/policy/v1/poddisruptionbudgets")

    def metrics(self) -> str:
        def read(api_client: Any) -> str:
            status, text = _raw_get(api_client, "/metrics", self._timeout, accept="text/plain")
            if status != 200:
                raise api_refused(f"cluster {self._cluster}", status, None, what="GET /metrics")
            return text

        return self._call(read)


def _raw_get(api_client: Any, path: str, timeout: float, *, query: list[tuple[str, str]] | None = None,
             accept: str = "application/json") -> tuple[int, str]:
    """The status and body of ``GET path`` with the kubeconfig's credentials (any status: the caller decides)."""
    return raw_request(api_client, "GET", path, timeout, query=query, accept=accept)


def raw_request(api_client: Any, method: str, path: str, timeout: float, *,
                query: list[tuple[str, str]] | None = None, body: dict[str, Any] | None = None,
                content_type: str = "application/json", accept: str = "application/json") -> tuple[int, str]:
    """The status and body of ``METHOD path`` with the kubeconfig's credentials (any status: the caller
    decides). ``body`` is sent as JSON with ``content_type`` (a merge patch says so in its type)."""
    from kubernetes.client.exceptions import ApiException

    headers = {"Accept": accept}
    if body is not None:
        headers["Content-Type"] = content_type
    method, url, headers, body, _ = api_client.param_serialize(
        method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"])
    try:
        response = api_client.call_api(method, url, header_params=headers, body=body, _request_timeout=timeout)
    except ApiException as e:  # some client versions raise for a non-2xx answer
        text = e.body.decode(errors="replace") if isinstance(e.body, bytes) else str(e.body or "")
        return int(e.status or 0), text
    data = response.read() or b""
    if len(data) > MAX_ANSWER:
        raise ClusterUnreachableError(f"{path} answered {len(data)} bytes, more than an apiserver sends")
    return int(response.status), bytes(data).decode(errors="replace")
