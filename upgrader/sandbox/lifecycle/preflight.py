"""What `up` refuses before it changes anything: ports already taken, and faults it could never outlive.

Also asked by `sandbox fault` on a stopped sandbox, whose faults wait for its next `up`.
"""

from __future__ import annotations

import errno
import socket

from upgrader.domain.versions import Version
from upgrader.sandbox import faults as faultlib
from upgrader.sandbox.lifecycle.errors import PortInUseError
from upgrader.sandbox.sandbox_config import SandboxConfig


def check_ports(cfg: SandboxConfig) -> None:
    named = {cfg.lb_port: "load balancer"}
    for n in cfg.control_planes:
        named |= {cfg.apiserver_ports[n]: f"kube-apiserver on {n}", cfg.etcd_client_ports[n]: f"etcd client on {n}",
                  cfg.etcd_peer_ports[n]: f"etcd peer on {n}"}
    for port, what in named.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise PortInUseError(f"port {port} ({what}) is already in use") from e
                raise PortInUseError(f"cannot listen on 127.0.0.1:{port} ({what}): {e.strerror}") from e


def check_faults(cfg: SandboxConfig, faults: list[faultlib.Fault], versions: dict[str, Version], *,
                 saved: list[faultlib.Fault]) -> None:
    """Refuse faults with which the sandbox could never become healthy: `up` would only wait out --wait;
    and the state faults, which are made in a running sandbox's files, once."""
    states = [f for f in faults if f.kind in faultlib.STATE_KINDS and f not in saved]
    if states:
        raise faultlib.InvalidFaultError(
            f"{', '.join(str(f) for f in states)}: a state fault is made once in a running sandbox's files; inject "
            f"it once sandbox {cfg.name} is running, with `upgrader sandbox fault {cfg.name} SPEC`")
    blockers = faultlib.start_blockers(faults, control_planes=cfg.control_planes, versions=versions)
    if not blockers:
        return
    parts = []
    for b in blockers:
        specs = ", ".join(str(f) for f in b.faults)
        if any(f in saved for f in b.faults):
            fix = f"clear it with `upgrader sandbox fault {cfg.name} SPEC --clear`"
        else:
            fix = f"inject it once the sandbox is running, with `upgrader sandbox fault {cfg.name} SPEC`"
        if any(f.kind == "apiserver-unready" for f in b.faults):
            fix += ", or give it a version the sandbox does not start at (apiserver-unready@v1.31)"
        parts.append(f"{specs}: {b.reason} ({fix})")
    raise faultlib.FaultBlocksStartError(
        f"sandbox {cfg.name} could never become healthy with these faults, so `up` would only time out: "
        + "; ".join(parts))
