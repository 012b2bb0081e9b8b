"""The etcd tool a rollback restores with, on a control-plane node (DOMAIN.md "etcd snapshots").

It must be of the snapshot's etcd minor: etcd refuses a data dir written by a newer version. First
choice, the etcd image named in the snapshot's own etcd.yaml, run through the node's containerd
(``ctr -n k8s.io run --rm``, exec form: official images have no shell): its ``etcdutl`` (official
images), else its ``etcdctl snapshot restore`` (older Kubernetes-built images). Else a host
``etcdutl``/``etcdctl`` on the node. Every candidate is probed by its OUTPUT, never its exit code
(etcd 3.6's ``etcdctl snapshot restore`` prints help and exits 0); one whose minor is newer than the
snapshot's etcd is refused, and the refusal is recorded with the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgrader.engine.context import RunContext
from upgrader.etcd import parsing

BUMP_REVISION = "1000000000"  # kubernetes #118501: resource versions keep moving forward after a restore
CTR = ["ctr", "-n", "k8s.io"]
PROBE_TIMEOUT = 120.0


@dataclass
class RestoreTool:
    tool: str  # etcdutl | etcdctl
    version: str
    via: str  # "image IMAGE" | "host"
    bump: bool
    prefix: list[str]  # argv before the tool's own arguments (ctr run ... IMAGE ID)
    image: str | None = None
    refused: list[str] = field(default_factory=list)

    def argv(self, args: list[str], *, mounts: list[str], container: str) -> list[str]:
        if self.image is None:
            return [self.tool, *args]
        binds = [a for d in mounts for a in ("--mount", f"type=bind,src={d},dst={d},options=rbind:rw")]
        return [*CTR, "run", "--rm", "--net-host", *binds, self.image, container, self.tool, *args]

    def outputs(self) -> dict[str, Any]:
        return {"tool": self.tool, "tool_version": self.version, "via": self.via, "bump_revision": self.bump,
                "refused_tools": self.refused}


class NoRestoreToolError(Exception):
    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


def find(ctx: RunContext, node: str, *, image: str | None, etcd_version: str | None) -> RestoreTool:
    """The restore tool of ``node`` (see the module docstring); NoRestoreToolError naming every candidate
    and why it was not used."""
    wanted = parsing.major_minor(etcd_version) if etcd_version else None
    refused: list[str] = []
    if image and _has_ctr(ctx, node):
        _pull(ctx, node, image)
        for tool in ("etcdutl", "etcdctl"):
            prefix = [*CTR, "run", "--rm", image, f"upgrader-probe-{ctx.run_id}-{node}-{tool}"[:63]]
            found = _probe(ctx, node, prefix, tool, wanted, refused, where=f"image {image}")
            if found is not None:
                return RestoreTool(tool, found[0], f"image {image}", found[1], prefix, image=image, refused=refused)
    elif image:
        refused.append(f"{node} has no ctr to run {image}'s tools")
    for tool in ("etcdutl", "etcdctl"):
        found = _probe(ctx, node, [], tool, wanted, refused, where="host")
        if found is not None:
            return RestoreTool(tool, found[0], "host", found[1], [], refused=refused)
    raise NoRestoreToolError(refused)


def _has_ctr(ctx: RunContext, node: str) -> bool:
    done = ctx.run(node, [*CTR, "images", "ls", "-q"], timeout=PROBE_TIMEOUT, check=False)
    return done.ok


def _pull(ctx: RunContext, node: str, image: str) -> None:
    listed = ctx.run(node, [*CTR, "images", "ls", "-q"], timeout=PROBE_TIMEOUT, check=False).stdout.split()
    if image not in listed:
        ctx.run(node, [*CTR, "images", "pull", image], timeout=ctx.options.command_timeout, check=False)


def _probe(ctx: RunContext, node: str, prefix: list[str], tool: str, wanted: tuple[int, int] | None,
           refused: list[str], *, where: str) -> tuple[str, bool] | None:
    """(version, bump flags supported) when ``tool`` there can restore a snapshot of the ``wanted`` minor."""
    said = ctx.run(node, [*prefix, tool, "version"], timeout=PROBE_TIMEOUT, check=False)
    version = parsing.parse_version(said.stdout + "\n" + said.stderr, tool)
    if version is None:
        refused.append(f"{where}: no {tool}")
        return None
    have = parsing.major_minor(version)
    if wanted and have and have > wanted:
        refused.append(f"{where}: {tool} {version} is newer than the snapshot's etcd "
                       f"{wanted[0]}.{wanted[1]} (etcd will not start on a data dir of a newer version)")
        return None
    helped = ctx.run(node, [*prefix, tool, "snapshot", "restore", "--help"], timeout=PROBE_TIMEOUT, check=False)
    text = helped.stdout + "\n" + helped.stderr
    if not parsing.usage_names(text, tool, "snapshot restore"):
        refused.append(f"{where}: {tool} {version} has no `snapshot restore`")
        return None
    return version, parsing.lists_flags(text, "--bump-revision", "--mark-compacted")


def restore_args(tool: RestoreTool, *, path: str, name: str, data_dir: str, initial_cluster: str, token: str,
                 peer_url: str) -> list[str]:
    args = ["snapshot", "restore", path, f"--name={name}", f"--data-dir={data_dir}",
            f"--initial-cluster={initial_cluster}", f"--initial-cluster-token={token}",
            f"--initial-advertise-peer-urls={peer_url}"]
    if tool.bump:
        args += [f"--bump-revision={BUMP_REVISION}", "--mark-compacted"]
    return args
