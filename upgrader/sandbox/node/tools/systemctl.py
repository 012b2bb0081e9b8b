"""Simulated ``systemctl`` for the kubelet unit.

``systemctl restart kubelet`` is synchronous like the real one: it asks the node's simulated kubelet
(run by the sandbox supervisor) to restart, through the unit file in the node root, and returns once
the kubelet has restarted at the installed package version. A kubelet package upgraded without a
``daemon-reload`` still restarts, with systemd's warning.
"""

from __future__ import annotations

import time

from upgrader.sandbox.node import distros, machine
from upgrader.sandbox.node.tools import Node

STALE_AFTER = 15.0  # seconds without a heartbeat: the kubelet (its supervisor) is gone
RESTART_TIMEOUT = 20.0
OTHER_ACTIVE_UNITS = ("containerd", "ssh", "systemd-journald")


def main(node: Node, args: list[str]) -> int:
    words = [a for a in args if not a.startswith("-")]
    if not words:
        node.warn("Too few arguments.")
        return 1
    verb, units = words[0], [u.removesuffix(".service") for u in words[1:]]
    if verb == "daemon-reload":
        unit = machine.kubelet_unit(node.layout)
        machine.save_kubelet_unit(node.layout, {**unit, "unit_changed": False})
        return 0
    if not units:
        node.warn(f"Too few arguments.\nusage: systemctl {verb} UNIT")
        return 1
    code = 0
    for name in units:
        code = max(code, _unit(node, verb, name))
    return code


def _unit(node: Node, verb: str, name: str) -> int:
    if name != "kubelet":
        return _other(node, verb, name)
    if verb in ("restart", "start", "stop", "try-restart", "reload-or-restart"):
        return _change(node, verb)
    if verb == "is-active":
        state = current_state(node)
        node.say("activating" if state == "auto-restart" else state)  # systemd's word for a unit between restarts
        return 0 if state == "active" else 3
    if verb == "status":
        return _status(node)
    if verb in ("enable", "disable", "is-enabled"):
        if verb == "is-enabled":
            node.say("enabled")
        return 0
    node.warn(f'Unknown command verb {verb}.')
    return 1


def _other(node: Node, verb: str, name: str) -> int:
    if name in OTHER_ACTIVE_UNITS:
        if verb == "is-active":
            node.say("active")
        return 0
    if verb == "is-active":
        node.say("inactive")
        return 3
    node.warn(f"Failed to {verb} {name}.service: Unit {name}.service not found.")
    return 5


def current_state(node: Node) -> str:
    status = machine.kubelet_status(node.layout)
    if not status or time.time() - float(status.get("heartbeat", 0)) > STALE_AFTER:
        return "inactive"
    return str(status.get("state", "inactive"))


def _change(node: Node, verb: str) -> int:
    unit = machine.kubelet_unit(node.layout)
    if unit.get("unit_changed") and verb != "stop":
        node.warn("Warning: The unit file, source configuration file or drop-ins of kubelet.service changed on "
                  "disk. Run 'systemctl daemon-reload' to reload units.")
    if verb == "start" and current_state(node) == "active":
        return 0
    generation = int(unit.get("generation", 0)) + 1
    wanted = "inactive" if verb == "stop" else "active"
    machine.save_kubelet_unit(node.layout, {**unit, "generation": generation, "wanted": wanted})
    deadline = time.monotonic() + RESTART_TIMEOUT
    while time.monotonic() < deadline:
        status = machine.kubelet_status(node.layout)
        if (int(status.get("generation", -1)) >= generation and current_state(node) != "inactive") or (
                wanted == "inactive" and status.get("state") == "inactive"):
            return 0
        time.sleep(0.1)
    node.warn("Job for kubelet.service failed because a timeout was exceeded.\n"
              'See "systemctl status kubelet.service" and "journalctl -xeu kubelet.service" for details.')
    return 1


def _status(node: Node) -> int:
    state = current_state(node)
    status = machine.kubelet_status(node.layout)
    since = time.strftime("%a %Y-%m-%d %H:%M:%S UTC", time.gmtime(float(status.get("since", time.time()))))
    sub = "running" if state == "active" else "dead"
    if state == "auto-restart":  # Restart=always between two starts of a kubelet that exits at once
        state, sub = "activating", "auto-restart) (Result: exit-code"
    node.say("● kubelet.service - kubelet: The Kubernetes Node Agent")
    # where each OS's kubelet package puts the unit, and each distribution's preset for it
    loaded = ("/usr/lib/systemd/system/kubelet.service; enabled; preset: disabled"
              if distros.node_os(node.layout) == distros.RHEL else
              "/lib/systemd/system/kubelet.service; enabled; preset: enabled")
    node.say(f"     Loaded: loaded ({loaded})")
    node.say("    Drop-In: /usr/lib/systemd/system/kubelet.service.d\n             └─10-kubeadm.conf")
    node.say(f"     Active: {state} ({sub}) since {since}")
    node.say("       Docs: https://kubernetes.io/docs/")
    if state == "active":
        node.say(f"   Main PID: {status.get('pid', 0)} (kubelet)")
    if status.get("refused_flag"):
        node.say("    Process: 4242 ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
                 "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS (code=exited, status=1/FAILURE)")
        node.say("   Main PID: 4242 (code=exited, status=1/FAILURE)")
    entries = machine.journal_entries(node.layout)[-10:]
    if entries:
        node.say("")
        for e in entries:
            node.say(journal_line(node.name, e))
    return 0 if state == "active" else 3


def journal_line(host: str, entry: dict[str, object]) -> str:
    """An entry as journalctl's default (short) output shows it."""
    stamp = time.strftime("%b %d %H:%M:%S", time.gmtime(float(entry.get("ts", 0))))  # type: ignore[arg-type]
    return f"{stamp} {host} {entry.get('ident', 'kubelet')}: {entry.get('msg', '')}"
