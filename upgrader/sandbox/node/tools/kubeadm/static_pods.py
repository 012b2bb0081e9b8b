"""kubeadm's static pod upgrade (phases/upgrade/staticpods.go) for one node.

Per component: back the old manifest up to /etc/kubernetes/tmp/kubeadm-backup-manifests-<date>-<time>/,
move the new one in, wait for the kubelet to pick it up (the mirror pod's config hash changes) and
for the component to be ready, and on any failure move every backed-up manifest back and fail with
kubeadm's "couldn't upgrade control plane" error. etcd goes first, with its data directory copied
into kubeadm-backup-etcd-<date>-<time>/ (so /var/lib/etcd/member lands in .../etcd/member), and is
never downgraded; ``--etcd-upgrade=false`` leaves it (manifest and data) alone. The manifests carry
the ClusterConfiguration's extraArgs, so flags put there (``--emulated-version``) survive every
later kubeadm run. Both backup dirs are made at the start; after a success the manifests' is kept and
etcd's only when etcd was upgraded (stacked etcd is never "HA" to kubeadm's cleanup); a failure keeps
both. Nothing ever removes them later (kubernetes/kubernetes #125357).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from upgrader.domain.versions import Version
from upgrader.sandbox import releases
from upgrader.sandbox.etcd.health import probe
from upgrader.sandbox.kubeclient import ApiError, KubeClient
from upgrader.sandbox.node import manifests
from upgrader.sandbox.node.tools import Node
from upgrader.sandbox.sandbox_config import SandboxConfig

CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
HASH = "kubernetes.io/config.hash"
POLL = 0.25


class UpgradeFailed(Exception):
    """A fatal error of the static pod upgrade; the message is what kubeadm prints."""


def go_duration(seconds: float) -> str:
    """Go's time.Duration String(): 300 -> 5m0s, 5 -> 5s, 0.5 -> 500ms."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    sec = f"{secs:g}s"
    if hours:
        return f"{hours}h{minutes}m{sec}"
    return f"{minutes}m{sec}" if minutes else sec


def with_extra_args(pod: dict[str, Any], extra: list[tuple[str, str]]) -> dict[str, Any]:
    """The pod with kubeadm's flags merged with ``extra`` (BuildArgumentListFromMap): an extra argument
    replaces every default flag of its name, the others are added, and the flags are sorted by name."""
    if not extra:
        return pod
    container = manifests.container(pod)
    binary, *flags = container["command"]
    names = {name for name, _ in extra}
    kept = [f for f in flags if f[2:].partition("=")[0] not in names]
    merged = kept + [f"--{name}={value}" for name, value in extra]
    container["command"] = [binary, *sorted(merged, key=lambda f: f[2:].partition("=")[0])]
    return pod


@dataclass
class StaticPodUpgrade:
    node: Node
    api: KubeClient
    cfg: SandboxConfig
    target: Version
    timeout: float
    etcd_upgrade: bool = True
    # per component, the ClusterConfiguration's extraArgs (name, value) that kubeadm writes into its manifest
    extra_args: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    modern: bool = False  # a v1.32+ kubeadm, which words its progress lines differently
    stamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%d-%H-%M-%S"))
    recover: dict[str, Path] = field(default_factory=dict)

    # node paths, as kubeadm prints them
    @property
    def backup_manifests(self) -> str:
        return f"/etc/kubernetes/tmp/kubeadm-backup-manifests-{self.stamp}"

    @property
    def backup_etcd(self) -> str:
        return f"/etc/kubernetes/tmp/kubeadm-backup-etcd-{self.stamp}"

    def host(self, node_path: str) -> Path:
        return self.node.layout.host_path(node_path)

    def run(self) -> None:
        """Upgrade this node's control plane to target; raises UpgradeFailed after restoring."""
        before = {c: self._hash(c) for c in (*CONTROL_PLANE, "etcd")}
        tmp = tempfile.mkdtemp(prefix="kubeadm-upgraded-manifests", dir=self.host("/etc/kubernetes/tmp"))
        temp_dir = Path(tmp)
        self.host(self.backup_manifests).mkdir(parents=True, exist_ok=True)
        self.host(self.backup_etcd).mkdir(parents=True, exist_ok=True)
        try:
            if self.etcd_upgrade and self.host("/etc/kubernetes/manifests/etcd.yaml").exists():
                self._etcd(before["etcd"], temp_dir)
            self.node.say("[upgrade/staticpods] Writing new Static Pod manifests to "
                          f'"/etc/kubernetes/tmp/{temp_dir.name}"')
            for component in CONTROL_PLANE:
                pod = with_extra_args(manifests.RENDER[component](self.cfg, self.node.name, self.target),
                                      self.extra_args.get(component, []))
                (temp_dir / f"{component}.yaml").write_text(manifests.dump(pod))
            for component in CONTROL_PLANE:
                self._component(component, before[component], temp_dir, recover_etcd=False)
        finally:
            shutil.rmtree(temp_dir, ignore_errors=True)
        # CleanupDirs after a success: the manifests' backup is always kept; etcd's only when etcd was
        # upgraded (keepEtcdDir = etcdUpgrade && !isHAEtcd, where HA means an *external* etcd with more
        # than one endpoint, so never for stacked etcd). A failure keeps both, for the person.
        if not self.etcd_upgrade:
            shutil.rmtree(self.host(self.backup_etcd), ignore_errors=True)

    def _hash(self, component: str) -> str:
        name = f"{component}-{self.node.name}"
        try:
            pod = self.api.get(f"/api/v1/namespaces/kube-system/pods/{name}")
        except ApiError as e:
            raise UpgradeFailed(f"failed to obtain static Pod hash for component {component} on Node "
                                f"{self.node.name}: {e}") from e
        return str(pod.get("metadata", {}).get("annotations", {}).get(HASH, ""))

    # --- etcd ---------------------------------------------------------------------------

    def _etcd(self, before_hash: str, temp_dir: Path) -> None:
        self._check_etcd_health()
        current_pod = manifests.load(self.host("/etc/kubernetes/manifests/etcd.yaml")) or {}
        data_dir = manifests.host_path_for(current_pod, manifests.flags(current_pod).get("data-dir", "/var/lib/etcd"))
        # kubeadm's CopyDir is `cp -r DATA_DIR BACKUP_DIR` into the existing backup dir, so the data
        # lands in .../kubeadm-backup-etcd-<date>-<time>/etcd/member for the default /var/lib/etcd.
        target = self.host(self.backup_etcd) / PurePosixPath(data_dir.rstrip("/")).name
        try:
            shutil.copytree(self.host(data_dir), target, dirs_exist_ok=True)
        except OSError as e:
            raise UpgradeFailed(f"failed to back up etcd data: {e}") from e
        desired, current = releases.etcd_tag(self.target), manifests.image_tag(current_pod)
        if releases.etcd_semver(desired) < releases.etcd_semver(current):
            # the wording of every kubeadm since v1.19 (seen from v1.19.11 to v1.30.14 in the field); the
            # "Won't downgrade etcd, instead just continue" of DOMAIN.md is v1.18's and older
            self.node.say(f'[upgrade/etcd] Non fatal issue encountered during upgrade: the desired etcd version '
                          f'"{desired}" is older than the currently installed "{current}". Skipping etcd upgrade')
            return
        if desired == current:
            return
        (temp_dir / "etcd.yaml").write_text(manifests.dump(manifests.etcd(self.cfg, self.node.name, self.target)))
        try:
            self._component("etcd", before_hash, temp_dir, recover_etcd=True)
        except UpgradeFailed as e:
            self.node.say(f"[upgrade/etcd] Failed to upgrade etcd: {e}")
            self.node.say("[upgrade/etcd] Etcd was rolled back and is now available")
            raise UpgradeFailed(f"fatal error when trying to upgrade the etcd cluster, rolled the state back "
                                f"to pre-upgrade state: {e}") from e
        self.node.say("[upgrade/etcd] Waiting for etcd to become available")
        if not self._wait(lambda: probe(self.cfg.etcd_client_url(self.node.name), timeout=2).healthy):
            raise UpgradeFailed("fatal error upgrading local etcd cluster: etcd cluster is not healthy")

    def _check_etcd_health(self) -> None:
        for name in self.cfg.control_planes:
            url = self.cfg.etcd_client_url(name)
            if not probe(url, timeout=2).healthy:
                raise UpgradeFailed(f"etcd cluster is not healthy: failed to dial endpoint {url} with "
                                    "maintenance client: context deadline exceeded")

    # --- one component --------------------------------------------------------------------

    def _component(self, component: str, before_hash: str, temp_dir: Path, *, recover_etcd: bool) -> None:
        current = self.host(f"/etc/kubernetes/manifests/{component}.yaml")
        new = temp_dir / f"{component}.yaml"
        backup = self.host(f"{self.backup_manifests}/{component}.yaml")
        self.recover[component] = backup
        if current.exists() and current.read_bytes() == new.read_bytes():
            self.node.say(f"[upgrade/staticpods] Current and new manifests of {component} are equal, skipping upgrade")
            return
        self.node.say(f'[upgrade/staticpods] Preparing for "{component}" upgrade')
        try:
            shutil.move(current, backup)
            shutil.move(new, current)
        except OSError as e:
            self._rollback(str(e), recover_etcd=recover_etcd)
        moved, backed = ("Moving", "backing") if self.modern else ("Moved", "backed")
        self.node.say(f'[upgrade/staticpods] {moved} new manifest to "/etc/kubernetes/manifests/{component}.yaml" '
                      f'and {backed} up old manifest to "{self.backup_manifests}/{component}.yaml"')
        self.node.say("[upgrade/staticpods] Waiting for the kubelet to restart the component")
        self.node.say(f"[upgrade/staticpods] This can take up to {go_duration(self.timeout)}")
        last_error: list[str] = []  # WaitForStaticPodHashChange: a failed read on the last poll is the error
        if not self._wait(lambda: self._hash_or_error(component, last_error) not in ("", before_hash)):
            self._rollback(last_error[-1] if last_error else
                           f"static Pod hash for component {component} on Node {self.node.name} did not change "
                           f"after {go_duration(self.timeout)}: {self._timed_out}", recover_etcd=recover_etcd)
        if not self._wait(lambda: self._ready(component)):
            self._rollback(f"static Pod for component {component} on Node {self.node.name} did not become ready "
                           f"after {go_duration(self.timeout)}: {self._timed_out}", recover_etcd=recover_etcd)
        self.node.say(f'[upgrade/staticpods] Component "{component}" upgraded successfully!')

    @property
    def _timed_out(self) -> str:
        """The poll's own error: client-go's wait.PollImmediate said "timed out waiting for the condition";
        the context-based polls kubeadm uses now say "context deadline exceeded" (real v1.3x output:
        christensenjairus/ClusterCreator #54). The sandbox switches with the phase workflow (v1.32)."""
        return "context deadline exceeded" if self.modern else "timed out waiting for the condition"

    def _hash_or_error(self, component: str, last_error: list[str]) -> str:
        try:
            found = self._hash(component)
        except UpgradeFailed as e:
            last_error[:] = [str(e)]
            return ""
        last_error.clear()
        return found

    def _ready(self, component: str) -> bool:
        if component != "kube-apiserver":
            return True
        own = KubeClient(self.cfg.apiserver_url(self.node.name), timeout=2)
        try:
            return own.git_version() == str(self.target) and own.ready()
        except (ApiError, KeyError):
            return False

    def _wait(self, condition: object) -> bool:
        deadline = time.monotonic() + self.timeout
        while True:
            if condition():  # type: ignore[operator]
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def _rollback(self, error: str, *, recover_etcd: bool) -> None:
        for component, backup in self.recover.items():
            if component == "etcd" and not recover_etcd:
                continue
            if backup.exists():
                shutil.move(backup, self.host(f"/etc/kubernetes/manifests/{component}.yaml"))
        raise UpgradeFailed("couldn't upgrade control plane. kubeadm has tried to recover everything into the "
                            f"earlier state. Errors faced: {error}")
