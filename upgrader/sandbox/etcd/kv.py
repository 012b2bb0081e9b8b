"""A tiny etcd KV client over etcd's JSON gateway (``/v3/kv/*``), with urllib.

The sandbox needs no gRPC dependency this way. It fails over between endpoints, which is what lets
the sandbox API server and controllers keep working while one member is dead.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upgrader.sandbox.etcd.errors import EtcdUnavailableError


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def prefix_range_end(prefix: str) -> str:
    """etcd's range_end for "every key starting with prefix" (last byte + 1)."""
    raw = prefix.encode()
    return _b64(raw[:-1] + bytes([raw[-1] + 1]))


def kv_from_json(raw: dict[str, Any]) -> KeyValue:
    return KeyValue(base64.b64decode(raw["key"]).decode(), base64.b64decode(raw.get("value", "")),
                    int(raw.get("create_revision", 0)), int(raw.get("mod_revision", 0)))


class EtcdKV:
    """get / list / create / compare-and-swap update / delete over etcd 3.4's JSON gateway.

    Writes that lose a compare return None instead of raising: a conflict is an answer, not a
    failure. Only a dead cluster raises (:class:`EtcdUnavailableError`).
    """

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("EtcdKV needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self._preferred = 0

    def _call(self, path: str, body: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        errors = []
        n = len(self.endpoints)
        for i in range(n):  # start with the last endpoint that answered
            idx = (self._preferred + i) % n
            req = urllib.request.Request(self.endpoints[idx] + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                    out = json.loads(resp.read())
            except urllib.error.HTTPError as e:  # a member without quorum answers 503: try another one
                errors.append(f"{self.endpoints[idx]}: HTTP {e.code} {e.read()[:200]!r}")
                continue
            except (OSError, ValueError) as e:
                errors.append(f"{self.endpoints[idx]}: {e}")
                continue
            self._preferred = idx
            return out
        raise EtcdUnavailableError("no etcd endpoint answered: " + "; ".join(errors))

    def get(self, key: str) -> KeyValue | None:
        kvs = self._call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return kv_from_json(kvs[0]) if kvs else None

    def list_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under prefix, in key order, and the store revision the list was read at."""
        out = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": prefix_range_end(prefix)})
        return [kv_from_json(k) for k in out.get("kvs", [])], int(out["header"]["revision"])

    def revision(self, *, timeout: float | None = None) -> int:
        out = self._call("/v3/kv/range", {"key": _b64("/"), "limit": 1, "keys_only": True}, timeout=timeout)
        return int(out["header"]["revision"])

    def put(self, key: str, value: bytes) -> int:
        return int(self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})["header"]["revision"])

    def _txn(self, key: str, compare: dict[str, Any], success: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        body = {"compare": [{"key": _b64(key), "result": "EQUAL", **compare}], "success": [success],
                "failure": [{"request_range": {"key": _b64(key)}}]}
        out = self._call("/v3/kv/txn", body)
        return bool(out.get("succeeded", False)), out

    def create(self, key: str, value: bytes) -> int | None:
        """Put only if the key does not exist; the new revision, or None if it exists."""
        ok, out = self._txn(key, {"target": "CREATE", "create_revision": "0"},
                            {"request_put": {"key": _b64(key), "value": _b64(value)}})
        return int(out["header"]["revision"]) if ok else None

    def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> int | None:
        """Put only if nobody wrote the key since ``expected_mod_revision``; None on conflict."""
        ok, out = self._txn(key, {"target": "MOD", "mod_revision": str(expected_mod_revision)},
                            {"request_put": {"key": _b64(key), "value": _b64(value)}})
        return int(out["header"]["revision"]) if ok else None

    def delete(self, key: str, *, expected_mod_revision: int | None = None) -> bool:
        """Delete (only if unchanged since ``expected_mod_revision`` when given); False if not deleted."""
        if expected_mod_revision is None:
            out = self._call("/v3/kv/deleterange", {"key": _b64(key)})
            return int(out.get("deleted", 0)) > 0
        ok, _ = self._txn(key, {"target": "MOD", "mod_revision": str(expected_mod_revision)},
                          {"request_delete_range": {"key": _b64(key)}})
        return ok

    def delete_prefix(self, prefix: str) -> int:
        out = self._call("/v3/kv/deleterange", {"key": _b64(prefix), "range_end": prefix_range_end(prefix)})
        return int(out.get("deleted", 0))
