"""The handlers of a rollback's steps (domain/rollback.py), registered in steps.HANDLERS on import.

Each observes before it acts when a run resumes: manifests already aside, the data dir already moved,
the restored dir there with this run's member and token, the packages already at the snapshot's
builds. Nothing is ever deleted: the static pod manifests and the kubelet config are kept under
``/etc/kubernetes/upgrader-rollback-RUN``, the etcd data dir beside itself as ``DIR.upgrader-rollback-RUN``,
a half-restored dir of an interrupted attempt as ``DIR.upgrader-partial-RUN-N``. The snapshot file is
copied to each control-plane node 0600 in a run directory and removed after its restore.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from upgrader.domain.plans import Action, Step
from upgrader.domain.versions import Version
from upgrader.engine import gates, restore_tool, steps
from upgrader.engine.context import RollbackHooks, RunContext
from upgrader.engine.gates import Reading
from upgrader.engine.steps import Handler, StepError
from upgrader.errors import FileMissingError, InvalidVersionError
from upgrader.nodes import commands

MANIFESTS_DIR = "/etc/kubernetes/manifests"
WORK_DIR = "/var/lib/upgrader"
PACKAGES = ("kubeadm", "kubelet", "kubectl")


def aside_dir(run_id: int) -> str:
    return f"/etc/kubernetes/upgrader-rollback-{run_id}"


def _spec(ctx: RunContext) -> Mapping[str, Any]:
    spec = ctx.document.get("rollback")
    if not isinstance(spec, Mapping):
        raise StepError("this run's plan is not a rollback (its document has no rollback section)")
    return spec


def _hooks(ctx: RunContext) -> RollbackHooks:
    if ctx.hooks.rollback is None:
        raise StepError("a rollback step ran without the rollback's hooks")
    return ctx.hooks.rollback


def _node(step: Step) -> str:
    assert step.node is not None, f"step {step.n} ({step.action}) has no node"
    return step.node


def _member(ctx: RunContext, node: str) -> Mapping[str, str]:
    for member in _spec(ctx)["members"]:
        if member["node"] == node:
            return dict(member)
    raise StepError(f"the rollback records no etcd member for {node}")


def _exists(ctx: RunContext, node: str, path: str) -> bool:
    return ctx.run(node, ["test", "-e", path], check=False).ok


def _listing(ctx: RunContext, node: str, directory: str) -> list[str]:
    done = ctx.run(node, ["ls", "-1", directory], check=False)
    return sorted(n for n in done.stdout.split() if n.endswith((".yaml", ".yml", ".json"))) if done.ok else []


# -- stop the control plane ------------------------------------------------------------------------

def _stop(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    aside = f"{aside_dir(ctx.run_id)}/manifests"
    ctx.run(node, ["mkdir", "-p", "-m", "0700", aside])
    moved = _listing(ctx, node, MANIFESTS_DIR)
    for name in moved:
        ctx.run(node, ["mv", "-f", "--", f"{MANIFESTS_DIR}/{name}", f"{aside}/{name}"])
    return {"aside": aside, "moved": moved, **_wait_member_down(ctx, node)}


def _wait_member_down(ctx: RunContext, node: str) -> dict[str, Any]:
    """The kubelet stops the static pods once their manifests are gone; the data dir moves only after."""
    name = _member(ctx, node)["name"]
    deadline = ctx.clock.monotonic() + ctx.options.gate_timeout
    while _hooks(ctx).member_up(name):
        if ctx.clock.monotonic() >= deadline:
            raise StepError(f"etcd member {name} on {node} still answers {ctx.options.gate_timeout:g}s after its "
                            "manifest was moved aside")
        ctx.sleep(1.0)
    return {"member_stopped": name}


def _stop_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    aside = f"{aside_dir(ctx.run_id)}/manifests"
    if _listing(ctx, node, MANIFESTS_DIR) or not _listing(ctx, node, aside):
        return None
    return {"aside": aside, **_wait_member_down(ctx, node)}


# -- move the etcd data dir aside ------------------------------------------------------------------

def _moved_path(ctx: RunContext, data_dir: str) -> str:
    return f"{data_dir.rstrip('/')}.upgrader-rollback-{ctx.run_id}"


def _move(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    data_dir = _member(ctx, node)["data_dir"]
    moved = _moved_path(ctx, data_dir)
    there, kept = _exists(ctx, node, data_dir), _exists(ctx, node, moved)
    if there and kept:
        raise StepError(f"{node}: both {data_dir} and {moved} exist; upgrader will not choose between them "
                        "(follow the restore-etcd-from-snapshot runbook)")
    if there:
        ctx.run(node, ["mv", "--", data_dir, moved])
    elif not kept:
        raise StepError(f"{node}: etcd data dir {data_dir} is not there")
    return {"data_dir": data_dir, "moved_to": moved}


def _move_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    data_dir = _member(ctx, node)["data_dir"]
    moved = _moved_path(ctx, data_dir)
    if _exists(ctx, node, moved) and not _exists(ctx, node, data_dir):
        return {"data_dir": data_dir, "moved_to": moved}
    return None


# -- restore ---------------------------------------------------------------------------------------

def _marker(ctx: RunContext) -> str:
    return f"{aside_dir(ctx.run_id)}/etcd-restored"


def _restore(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    spec, member = _spec(ctx), _member(ctx, node)
    data_dir = member["data_dir"]
    if _exists(ctx, node, data_dir):  # a restore interrupted half-way: keep its output aside, start again
        partial = f"{data_dir.rstrip('/')}.upgrader-partial-{ctx.run_id}-{int(ctx.clock.monotonic())}"
        ctx.run(node, ["mv", "--", data_dir, partial])
    try:
        tool = restore_tool.find(ctx, node, image=spec["to"].get("etcd_image"),
                                 etcd_version=spec["to"].get("etcd_version"))
    except restore_tool.NoRestoreToolError as e:
        raise StepError(f"{node}: no etcd tool can restore the snapshot here: {e}") from None
    work = f"{WORK_DIR}/rollback-{ctx.run_id}"
    path = f"{work}/snapshot.db"
    ctx.run(node, ["mkdir", "-p", "-m", "0700", work])
    try:
        ctx.write(node, path, _hooks(ctx).snapshot_file(), 0o600)
        args = restore_tool.restore_args(tool, path=path, name=member["name"], data_dir=data_dir,
                                         initial_cluster=spec["initial_cluster"], token=spec["token"],
                                         peer_url=member["peer_url"])
        parent = posixpath.dirname(data_dir.rstrip("/")) or "/"
        ctx.run(node, tool.argv(args, mounts=[work, parent],
                                container=f"upgrader-restore-{ctx.run_id}-{node}"[:63]))
    finally:
        ctx.run(node, ["rm", "-f", "--", path], check=False)
        ctx.run(node, ["rmdir", "--", work], check=False)
    ctx.write(node, _marker(ctx), f"{member['name']} {spec['token']}\n".encode(), 0o600)
    return {"member": member["name"], "data_dir": data_dir, **tool.outputs()}


def _restore_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    spec, member = _spec(ctx), _member(ctx, node)
    try:
        said = ctx.read(node, _marker(ctx)).decode(errors="replace").split()
    except FileMissingError:
        return None
    if said != [member["name"], spec["token"]] or not _exists(ctx, node, f"{member['data_dir']}/member"):
        return None
    return {"member": member["name"], "data_dir": member["data_dir"]}


# -- reinstate the snapshot's manifests and kubelet config ----------------------------------------

def _reinstate(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    files = _hooks(ctx).artefacts(node)
    if not any(kind == "manifest" for kind, _, _ in files):
        raise StepError(f"the snapshot holds no static pod manifest of {node}")
    kept = f"{aside_dir(ctx.run_id)}/kubelet"
    written = []
    # etcd first: the API server's pod is of no use before its etcd is back
    for kind, path, data in sorted(files, key=lambda f: (f[0] != "manifest", not f[1].endswith("/etcd.yaml"))):
        if kind != "manifest":
            ctx.run(node, ["mkdir", "-p", "-m", "0700", kept])
            keep = f"{kept}/{posixpath.basename(path)}"
            if not _exists(ctx, node, keep) and _exists(ctx, node, path):
                ctx.run(node, ["cp", "-p", "--", path, keep])
        ctx.write(node, path, data, 0o600 if kind == "manifest" else 0o644)
        written.append(path)
    return {"written": written, "kubelet_kept": kept}


def _reinstate_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    files = _hooks(ctx).artefacts(node)
    for _kind, path, data in files:
        try:
            if ctx.read(node, path) != data:
                return None
        except FileMissingError:
            return None
    return {"written": [path for _, path, _ in files]} if files else None


# -- packages --------------------------------------------------------------------------------------

def _newer(build: str | None, than: str) -> bool:
    have, want = commands.build_version(build or ""), commands.build_version(than)
    return have is not None and want is not None and have > want


def _take_to(ctx: RunContext, node: str, wanted: Mapping[str, str | Version], minor_of: Version,
             now: Mapping[str, str | None] | None = None) -> dict[str, Any]:
    """Each package at exactly its build (or the repository's build of a version): the repository back at
    the minor, downgraded when newer. ``now``: the installed builds, when the caller read them already."""
    out = steps.ensure_repo(ctx, node, minor_of.line)
    pm = out["manager"]
    ctx.run(node, commands.refresh(pm))
    builds: dict[str, str] = {}
    for name, want in wanted.items():
        listed = commands.parse_builds(pm, name, ctx.run(node, commands.list_builds(pm, name)).stdout)
        build = commands.pick_build(listed, want) if isinstance(want, Version) else want
        if build is None or build not in listed:
            raise StepError(f"{name} {want} is not offered by the repository on {node} "
                            f"(it offers {', '.join(listed[-3:]) or 'nothing'})")
        builds[name] = build
    now = dict(now) if now is not None else {name: steps.installed(ctx, node, name) for name in builds}
    down = {n: b for n, b in builds.items() if now[n] != b and _newer(now[n], b)}
    up = {n: b for n, b in builds.items() if now[n] != b and n not in down}
    for argv in [*(commands.downgrade(pm, down) if down else []), *(commands.install(pm, up) if up else [])]:
        ctx.run(node, argv)
    for name, build in builds.items():
        found = steps.installed(ctx, node, name)
        if found != build:
            raise StepError(f"{name} on {node} is at {found or 'nothing'} after installing {build}")
    return out | {"packages": builds, "downgraded": sorted(down)}


def _builds_at(ctx: RunContext, node: str, builds: Mapping[str, str]) -> bool:
    if not all(steps.installed(ctx, node, name) == build for name, build in builds.items()):
        return False
    listing = commands.held(steps.manager(ctx, node))
    if listing is None:
        return True
    done = ctx.run(node, listing, check=False)
    return done.ok and set(builds) <= set(done.stdout.split())


def _cp_builds(ctx: RunContext, node: str) -> dict[str, str]:
    recorded = _spec(ctx)["to"]["packages"].get(node) or {}
    return {p: str(recorded[p]) for p in PACKAGES if recorded.get(p)}


def _downgrade_packages(ctx: RunContext, step: Step) -> dict[str, Any]:
    node = _node(step)
    assert step.version is not None
    return _take_to(ctx, node, _cp_builds(ctx, node), step.version)


def _downgrade_packages_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    builds = _cp_builds(ctx, node)
    return {"packages": builds} if _builds_at(ctx, node, builds) else None


def _downgrade_kubelet(ctx: RunContext, step: Step) -> dict[str, Any]:
    """The worker's installed Kubernetes packages newer than the step's version (kubeadm only when it is
    there) down to the repository's build of it; then the kubelet restarted and the node Ready at it."""
    node = _node(step)
    version = step.version
    assert version is not None
    now = {name: steps.installed(ctx, node, name) for name in PACKAGES}
    newer = {name: version for name, build in now.items()
             if build is not None and _newer(build, f"{version.major}.{version.minor}.{version.patch}-0")}
    out = _take_to(ctx, node, newer, version, now={n: now[n] for n in newer})
    for argv in commands.restart_kubelet():
        ctx.run(node, argv)
    return out | gates.wait_for(ctx, f"{node} Ready at {step.version}", [gates.nodes_at(ctx.api, [node], step.version)])


def _downgrade_kubelet_observe(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    node = _node(step)
    assert step.version is not None
    found = {n: steps.installed(ctx, node, n) for n in ("kubelet", "kubectl")}
    if not all(b is not None and commands.upstream_of(b) == str(step.version) for b in found.values()):
        return None
    return {"packages": found} if gates.nodes_at(ctx.api, [node], step.version)().ok else None


# -- start, verify ---------------------------------------------------------------------------------

def _start(ctx: RunContext, step: Step) -> dict[str, Any]:
    assert step.version is not None
    if step.node is not None:
        for argv in commands.restart_kubelet():
            ctx.run(step.node, argv)
        return {"kubelet": "restarted"}
    return gates.wait_for(ctx, f"control plane back at {step.version}",
                          [gates.readyz(ctx.api), gates.etcd(ctx), api_version(ctx, step.version)])


def api_version(ctx: RunContext, version: Version) -> gates.Probe:
    def probe() -> Reading:
        found = str(ctx.api.server_version().get("gitVersion") or "")
        return Reading(found == str(version), f"/version says {found or 'nothing'}, expected {version}")
    return probe


def skew(ctx: RunContext, version: Version) -> gates.Probe:
    """Every kubelet not newer than the API server and at most 3 minors older (DOMAIN.md skew policy)."""
    def probe() -> Reading:
        wrong = []
        for node in ctx.api.list_nodes():
            found = gates.kubelet_version(node)
            try:
                kubelet = Version.parse(found or "")
            except InvalidVersionError:  # an unreadable version is a bad reading, not a crash
                wrong.append(f"{node['metadata']['name']} reports kubelet {found!r}")
                continue
            if version < kubelet or version.line.minus(kubelet.line) > 3:
                wrong.append(f"{node['metadata']['name']} kubelet {kubelet}")
        return Reading(not wrong, "kubelets within skew of " + str(version) if not wrong
                       else "outside the skew policy: " + ", ".join(wrong))
    return probe


def _verify(ctx: RunContext, step: Step) -> dict[str, Any]:
    assert step.version is not None
    out = gates.wait_for(ctx, f"cluster rolled back to {step.version}",
                         [gates.readyz(ctx.api), api_version(ctx, step.version), gates.all_nodes_ready(ctx.api),
                          skew(ctx, step.version), gates.etcd(ctx)])
    ok, said = _hooks(ctx).verify_objects()
    if not ok:
        raise StepError(f"the cluster's objects do not match the snapshot: {said}")
    return out | {"objects": said}


def _never(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return None


def _say(*lines: str) -> Any:
    return lambda c, s: [line.format(node=s.node, version=s.version, run=c.run_id or "RUN") for line in lines]


HANDLERS: dict[Action, Handler] = {
    Action.STOP_CONTROL_PLANE: Handler(_stop, _stop_observe, _say(
        "mv /etc/kubernetes/manifests/*.yaml /etc/kubernetes/upgrader-rollback-{run}/manifests/",
        "wait until {node}'s etcd member no longer answers")),
    Action.MOVE_ETCD_DATA: Handler(_move, _move_observe, _say("mv ETCD_DATA_DIR ETCD_DATA_DIR.upgrader-rollback-{run}"
                                                              " (kept, never deleted)")),
    Action.RESTORE_ETCD: Handler(_restore, _restore_observe, _say(
        "copy the snapshot to /var/lib/upgrader/rollback-{run}/snapshot.db (0600)",
        "etcdutl|etcdctl snapshot restore (the snapshot's etcd image through ctr, else a host tool of its minor)"
        " --name --initial-cluster --initial-cluster-token NEW --initial-advertise-peer-urls"
        " [--bump-revision 1000000000 --mark-compacted]", "remove the copy")),
    Action.REINSTATE_MANIFESTS: Handler(_reinstate, _reinstate_observe, _say(
        "write the snapshot's static pod manifests and kubelet config on {node} (current kubelet config kept)")),
    Action.DOWNGRADE_PACKAGES: Handler(_downgrade_packages, _downgrade_packages_observe, _say(
        "point the pkgs.k8s.io repository back at the snapshot's minor",
        "apt-get install -y --allow-downgrades kubeadm=... kubelet=... kubectl=... | dnf downgrade -y ...")),
    Action.START_CONTROL_PLANE: Handler(_start, _never, lambda c, s: (
        ["systemctl daemon-reload", "systemctl restart kubelet"] if s.node else
        [f"wait for etcd quorum, /readyz and /version {s.version}"])),
    Action.DOWNGRADE_KUBELET: Handler(_downgrade_kubelet, _downgrade_kubelet_observe, _say(
        "point the repository at {version}'s minor; downgrade kubelet, kubectl (and a newer kubeadm) to {version}",
        "systemctl daemon-reload && systemctl restart kubelet", "wait for {node} Ready at {version}")),
    Action.VERIFY_ROLLBACK: Handler(_verify, _never, _say(
        "/readyz, /version {version}, every node Ready within skew, etcd healthy with one leader",
        "objects: those of the snapshot exist, those written after it do not")),
}
steps.HANDLERS.update(HANDLERS)
