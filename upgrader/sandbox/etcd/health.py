"""etcd's own ``/health`` endpoint: the one probe every part of the sandbox asks.

True only with a leader and no alarms, which is what ``etcdctl endpoint health`` and the kubelet's
probes of the etcd static pod check. Plain http on loopback: the sandbox's etcd has no TLS.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MemberHealth:
    name: str
    healthy: bool
    error: str = ""


def probe(client_url: str, *, name: str = "", timeout: float = 1.0) -> MemberHealth:
    """GET ``client_url``/health; an unreachable member, an error status or a bad body is unhealthy."""
    try:
        with urllib.request.urlopen(client_url.rstrip("/") + "/health", timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError) as e:
        return MemberHealth(name, False, str(e))
    healthy = body.get("health") == "true"
    return MemberHealth(name, healthy, "" if healthy else body.get("reason", "unhealthy"))
