"""etcd, etcdctl and etcdutl inside a ``registry.k8s.io/etcd`` image run by the sandbox's ``ctr``.

Each tool answers at the image's version (``etcdutl version: 3.6.5``) and with its help texts (see
:mod:`.etcd_help`), so a capability probe reads the truth for that image: which of the two image
kinds it is (:func:`upgrader.sandbox.releases.etcd_image`) decides which tools exist, and etcdctl 3.6+
has only ``snapshot save`` (``snapshot restore``/``status`` print the help of ``snapshot``, exit 0).

Underneath, the work is done by this machine's real etcdctl 3.4 (Debian bookworm's): ``snapshot
restore`` writes a real data dir the sandbox's real etcd starts from, ``snapshot status`` reads the
real file, and every other etcdctl command (``snapshot save``, ``member list``...) goes to the node's
own etcd member through the same endpoint mapping as the node's etcdctl (with ``--net-host``; without
it the container has its own network and reaches no member). What that means, honestly:

- ``--bump-revision N --mark-compacted`` are accepted where the simulated tool has them (etcdctl
  3.5.10+, etcdutl) and checked as the real tool checks them, but NOT applied: etcd 3.4 cannot bump a
  revision. The restored data dir keeps the snapshot's revision. The marker this restore writes says
  so (``"bump_revision_applied": false``); nothing in the output claims a bump.
- ``snapshot status -w json`` prints etcdctl 3.4's document (no ``"version"`` field, which etcdutl 3.6
  adds; ``totalKey`` counted the 3.4 way).
- a restore leaves a marker in the new data dir (:mod:`upgrader.sandbox.etcd.data_dir`): the tool and
  version that wrote it, which the sandbox's kubelet reads to refuse a data dir written by a newer
  etcd minor than its manifest runs (see :mod:`upgrader.sandbox.node.static_pods`). etcd itself only
  warns about the extra file.
- ``etcd`` answers ``--version``; running an etcd server in a container is not simulated (the static
  pod runs etcd), nor is ``sh`` in the Kubernetes-built images: use the exec form.
"""

from __future__ import annotations

import os
import subprocess

from upgrader.sandbox.etcd.data_dir import write_marker
from upgrader.sandbox.node.tools import Node, etcd_help, etcdctl
from upgrader.sandbox.node.tools.container import Container
from upgrader.sandbox.releases import EtcdImage

RESTORE_FLAGS = ("--data-dir", "--wal-dir", "--name", "--initial-cluster", "--initial-cluster-token",
                 "--initial-advertise-peer-urls")
RESTORE_SWITCHES = ("--skip-hash-check",)
HELP = ("-h", "--help")


def run(c: Container, image: EtcdImage, tool: str, args: list[str]) -> int:
    """TOOL ARGS in the image (the tool is known to be in it)."""
    words = [a for a in args if not a.startswith("-")]
    if tool == "etcd":
        return _etcd(c.node, image, args)
    if tool == "sh":
        c.node.warn(f"sh: a shell in a container is not simulated on sandbox node {c.node.name}: run the tool in "
                    "exec form (ctr run ... IMAGE ID etcdctl ARGS)")
        return 126
    if words[:1] == ["version"] or args == ["--version"]:
        c.node.say(etcd_help.version(tool, image))
        return 0
    if words[:1] == ["snapshot"] and words[1:2] in (["restore"], ["status"]):
        return _snapshot_file(c, image, tool, words[1], args)
    if tool == "etcdctl":
        return _etcdctl(c, image, args)
    if words[:1] == ["snapshot"]:
        c.node.say(etcd_help.etcdutl_snapshot())
        return 0
    c.node.warn(f"etcdutl {' '.join(words[:2])}: not simulated on sandbox node {c.node.name} (version, snapshot "
                "restore and snapshot status are)")
    return 1


def _etcd(node: Node, image: EtcdImage, args: list[str]) -> int:
    if args in (["--version"], ["version"]):
        node.say(etcd_help.version("etcd", image))
        return 0
    node.warn(f"etcd: running an etcd server in a container is not simulated on sandbox node {node.name} (its "
              "static pod /etc/kubernetes/manifests/etcd.yaml runs etcd); `etcd --version` is")
    return 1


def _etcdctl(c: Container, image: EtcdImage, args: list[str]) -> int:
    """Any other etcdctl command: the real etcdctl against the node's member (or none without --net-host)."""
    r = etcdctl.resolve(c.node, [c.argument(a) for a in args], reachable=c.net_host)
    if isinstance(r, int):
        return r
    return _show(c, etcdctl.run_captured(r, cwd=str(c.rootfs)))


def _show(c: Container, done: subprocess.CompletedProcess[str]) -> int:
    for text, say in ((done.stdout, c.node.out), (done.stderr, c.node.err)):
        say.write(c.view(text))
        say.flush()
    return done.returncode


def _snapshot_file(c: Container, image: EtcdImage, tool: str, verb: str, args: list[str]) -> int:
    if tool == "etcdctl" and not image.etcdctl_restores:  # etcd 3.6+: only `snapshot save` is left
        c.node.say(etcd_help.etcdctl_snapshot(image))
        return 0
    if any(a in HELP for a in args):
        text = {("etcdctl", "restore"): etcd_help.etcdctl_restore(image),
                ("etcdctl", "status"): etcd_help.etcdctl_status(),
                ("etcdutl", "restore"): etcd_help.etcdutl_restore(image),
                ("etcdutl", "status"): etcd_help.etcdutl_status()}[(tool, verb)]
        c.node.say(text)
        return 0
    if tool == "etcdctl":
        c.node.warn(f"Deprecated: Use `etcdutl snapshot {verb}` instead.\n")
    rest = list(args)
    rest.remove("snapshot")
    rest.remove(verb)
    return _restore(c, image, tool, rest) if verb == "restore" else _status(c, rest)


def _status(c: Container, rest: list[str]) -> int:
    real = etcdctl.real_binary(c.node)
    if real is None:
        c.node.warn("etcdctl: command not found")
        return 127
    argv = [real, "snapshot", "status", *(c.argument(a) for a in rest)]
    return _show(c, subprocess.run(argv, env=_env(), capture_output=True, text=True, check=False, cwd=c.rootfs))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")} | {"ETCDCTL_API": "3"}


def _restore_args(c: Container, image: EtcdImage, tool: str, rest: list[str]) -> tuple[list[str], dict[str, str]] | str:
    """(the real etcdctl 3.4's restore arguments, the flags given) or the tool's error line."""
    out: list[str] = []
    given: dict[str, str] = {}
    bump_ok = image.bump_flags(tool)
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, sep, value = arg.partition("=")
        if name in (*RESTORE_FLAGS, "--bump-revision", "--initial-memory-map-size", "-w", "--write-out"):
            if not sep:
                if i + 1 >= len(rest):
                    return f"Error: flag needs an argument: {name}"
                value, i = rest[i + 1], i + 1
            given[name] = value
        elif arg in (*RESTORE_SWITCHES, "--mark-compacted") or name == "--mark-compacted":
            given[name] = value or "true"
        elif arg.startswith("-"):
            return f"Error: unknown flag: {name}"
        else:
            out.append(c.argument(arg))
        i += 1
    if ("--bump-revision" in given or "--mark-compacted" in given) and not bump_ok:
        return f"Error: unknown flag: {'--bump-revision' if '--bump-revision' in given else '--mark-compacted'}"
    if "--initial-memory-map-size" in given and not (tool == "etcdutl" and image.minor >= (3, 6)):
        return "Error: unknown flag: --initial-memory-map-size"
    bump = int(given.get("--bump-revision", "0") or 0) if given.get("--bump-revision", "0").isdigit() else -1
    if bump < 0:
        return f"Error: invalid argument \"{given['--bump-revision']}\" for \"--bump-revision\" flag"
    marked = given.get("--mark-compacted", "false") == "true"
    if bump > 0 and not marked:
        return "Error: --mark-compacted required if --bump-revision > 0"
    if marked and bump == 0:
        return "Error: --mark-compacted is disallowed if --bump-revision == 0"
    if len(out) != 1:
        return "Error: snapshot restore requires exactly one argument"
    for flag in RESTORE_FLAGS:
        if flag in given:
            out.append(f"{flag}={c.argument(given[flag]) if flag in ('--data-dir', '--wal-dir') else given[flag]}")
    out += [f for f in RESTORE_SWITCHES if f in given]
    return out, given


def _restore(c: Container, image: EtcdImage, tool: str, rest: list[str]) -> int:
    parsed = _restore_args(c, image, tool, rest)
    if isinstance(parsed, str):
        c.node.warn(parsed)
        return 1
    argv, given = parsed
    real = etcdctl.real_binary(c.node)
    if real is None:
        c.node.warn("etcdctl: command not found")
        return 127
    done = subprocess.run([real, "snapshot", "restore", *argv], env=_env(), capture_output=True, text=True,
                          check=False, cwd=c.rootfs)
    code = _show(c, done)
    if code == 0:
        data_dir = c.argument(given["--data-dir"]) if "--data-dir" in given else str(
            c.rootfs / f"{given.get('--name', 'default')}.etcd")
        _mark(data_dir, c=c, tool=tool, image=image, given=given)
    return code


def _mark(data_dir: str, *, c: Container, tool: str, image: EtcdImage, given: dict[str, str]) -> None:
    write_marker(data_dir, {"tool": tool, "version": image.semver, "image": c.image,
                            "bump_revision": int(given.get("--bump-revision", "0") or 0),
                            "mark_compacted": given.get("--mark-compacted") == "true", "bump_revision_applied": False})
