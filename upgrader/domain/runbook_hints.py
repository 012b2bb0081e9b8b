"""Which incident runbook a failed step calls for: the run's error names it, with its parameters.

The person reading a failed run at 3 a.m. should not have to recognise kubeadm's wording. These rules
read what the run already recorded (the step's action and node, its error, the output's last lines)
and, where the service could ask, etcd's member health, and name one runbook with the reason.
The wording they match is kubeadm's and etcd's own (issue13-research.md sections 1 and 9):

- ``static Pod hash for component C on Node N did not change after 5m0s`` (kubeadm's
  WaitForStaticPodHashChange), ``failed to obtain static Pod hash for component ...`` (the API was down
  on the last poll), and the wrapper ``couldn't upgrade control plane. kubeadm has tried to recover
  everything into the earlier state`` (``[upgrade/apply] FATAL:`` before v1.32, ``error execution
  phase control-plane:`` since): the control plane of N did not come up at the new version (the
  crashloop runbook when C is kube-apiserver, the only manifest it restores; else a rollback, and the
  hand restore of C's manifest named in the reason);
- ``etcdserver: request timed out``, ``etcd cluster is not healthy``, a ``context deadline exceeded``
  from an etcd call, members unhealthy in a gate: one member lost when a majority still answers, else
  quorum is lost and only a snapshot brings the cluster back (DOMAIN.md "etcd snapshots");
- ``x509: certificate has expired or is not yet valid``: the certificates;
- a node that never reports Ready after its kubelet moved;
- a kubeadm step the run found ``running`` (a killed process) and could not finish: a half-done hop.

Pure: values in, a value out; no rule guesses when its evidence is absent (None then).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

APISERVER_CRASHLOOP = "apiserver-crashloop-after-upgrade"
ETCD_MEMBER_LOST = "etcd-member-lost"
RESTORE_ETCD = "restore-etcd-from-snapshot"
RENEW_CERTIFICATES = "renew-certificates"
NODE_NOT_READY = "node-stuck-not-ready"
KUBEADM_INTERRUPTED = "kubeadm-upgrade-interrupted"
UNCORDON = "uncordon-nodes-left-by-upgrader"
ROLLBACK = "rollback-last-upgrade"
RUNBOOKS = frozenset({APISERVER_CRASHLOOP, ETCD_MEMBER_LOST, RESTORE_ETCD, RENEW_CERTIFICATES, NODE_NOT_READY,
                      KUBEADM_INTERRUPTED, UNCORDON, ROLLBACK})

KUBEADM_ACTIONS = frozenset({"kubeadm-upgrade-apply", "kubeadm-upgrade-node", "emulated-upgrade-apply",
                             "emulated-upgrade-node", "finalize-emulated-version"})
NODE_ACTIONS = frozenset({"upgrade-kubelet", "health-gate", "postflight"})

STATIC_POD = ("did not change after", "failed to obtain static Pod hash for component", "kubeadm has tried to recover")
ETCD_WORDS = ("etcdserver: request timed out", "etcd cluster is not healthy", "etcd member(s) unhealthy",
              "etcd lists no members", "etcd not reachable", "etcdserver: no leader", "etcd has 0 leaders")
DEADLINE = "context deadline exceeded"
X509_EXPIRED = "x509: certificate has expired or is not yet valid"
NAME = r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?"
# kubeadm's "for component %s on Node %s" is followed by " did not ..." or ": <cause>": a node name stops there
COMPONENT_ON_NODE = re.compile(rf"for component ({NAME}) on Node ({NAME})")
NOT_READY_ONE = re.compile(rf"(?<![\w.-])({NAME}) NotReady\b")  # gates: "worker-1 NotReady"
NOT_READY_LIST = re.compile(rf"node\(s\) NotReady: ({NAME}(?:, {NAME})*)")  # gates: "node(s) NotReady: a, b"


@dataclass(frozen=True, slots=True)
class FailedStep:
    """What the ledger recorded of the step that stopped the run."""

    action: str
    node: str | None
    error: str
    output: str | None = None
    version: str | None = None
    found_running: bool = False  # a killed process had left it `running`; this attempt was the retry


@dataclass(frozen=True, slots=True)
class EtcdHealth:
    """etcd's members as the service read them when the run stopped (``unhealthy``: their names)."""

    healthy: int
    total: int
    unhealthy: tuple[str, ...] = ()

    @property
    def quorum(self) -> bool:
        return self.total > 0 and self.healthy > self.total // 2


@dataclass(frozen=True, slots=True)
class RunbookHint:
    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    why: str = ""

    def command(self, cluster: str) -> str:
        """The command line to run it, quoted for a POSIX shell."""
        argv = ["upgrader", "runbook", "run", self.name, "--cluster", cluster]
        for key, value in self.params.items():
            argv += ["--param", f"{key}={value}"]
        return shlex.join(argv)

    def to_dict(self, cluster: str) -> dict[str, object]:
        return {"name": self.name, "params": dict(self.params), "why": self.why, "command": self.command(cluster)}


def hint_for(step: FailedStep, etcd: EtcdHealth | None = None, *, snapshot_id: int | None = None) -> RunbookHint | None:
    """The runbook a failed step calls for, or None when nothing recorded points to one.

    The most fundamental cause wins when the text carries several: expired certificates break
    everything above them, a lost etcd member breaks the API server above it, then kubeadm's own
    static-pod failure, a node that stays NotReady, and last a half-done kubeadm step."""
    text = f"{step.error}\n{step.output or ''}"
    for rule in (_certificates, _etcd, _static_pod, _not_ready, _interrupted):
        found = rule(step, text, etcd, snapshot_id)
        if found is not None:
            return found
    return None


def uncordon_hint(run_id: int, cordoned: Sequence[str]) -> RunbookHint | None:
    """Nodes the run cordoned stay cordoned while it is stopped; this releases them if it is abandoned."""
    if not cordoned:
        return None
    return RunbookHint(UNCORDON, {"run": str(run_id)},
                       f"run {run_id} left {', '.join(cordoned)} cordoned; `upgrader resume {run_id}` uncordons "
                       "them when it finishes, this runbook does it if the run is abandoned")


def restore_hint(snapshot_id: int | None, why: str) -> RunbookHint:
    return RunbookHint(RESTORE_ETCD, {"snapshot": str(snapshot_id)} if snapshot_id is not None else {}, why)


# -- the rules: (step, its text, etcd's health, the known-good snapshot) -> a hint or None ---------------

def _certificates(step: FailedStep, text: str, etcd: EtcdHealth | None, snapshot_id: int | None) -> RunbookHint | None:
    if X509_EXPIRED not in text:
        return None
    return RunbookHint(RENEW_CERTIFICATES, {}, f"step {step.action}{_on(step.node)} met an expired certificate "
                                               f"({X509_EXPIRED})")


def _etcd(step: FailedStep, text: str, etcd: EtcdHealth | None, snapshot_id: int | None) -> RunbookHint | None:
    if any(s in text for s in STATIC_POD) and (etcd is None or not etcd.unhealthy):
        # kubeadm's own static-pod failure mentions etcd and (1.32+) ends in "context deadline exceeded":
        # without a member seen unhealthy, it is the static pod's rule that explains it
        return None
    said = next((w for w in ETCD_WORDS if w in text), None)
    if said is None and DEADLINE in text and "etcd" in text:
        said = f"{DEADLINE} on an etcd call"
    if said is None and not (etcd is not None and etcd.unhealthy and "etcd" in text):
        return None
    if etcd is None:
        return RunbookHint(ETCD_MEMBER_LOST, {}, f"etcd failed ({said}) and its members could not be read: the "
                                                 "runbook checks quorum first and sends you to "
                                                 f"{RESTORE_ETCD} if a majority is lost")
    if not etcd.unhealthy and etcd.healthy >= etcd.total > 0:
        return None  # every member answers now: no member to replace, another rule may explain the failure
    members = f"{etcd.healthy}/{etcd.total} etcd members healthy"
    if etcd.quorum:
        params = {"node": etcd.unhealthy[0]} if len(etcd.unhealthy) == 1 else {}
        return RunbookHint(ETCD_MEMBER_LOST, params, f"{members} ({', '.join(etcd.unhealthy) or 'unnamed'} "
                                                     "not): quorum holds, replace the lost member")
    return restore_hint(snapshot_id, f"{members}: quorum is lost, only a snapshot brings etcd back")


def _static_pod(step: FailedStep, text: str, etcd: EtcdHealth | None, snapshot_id: int | None) -> RunbookHint | None:
    if not any(s in text for s in STATIC_POD):
        return None
    match = COMPONENT_ON_NODE.search(text)
    node = match.group(2) if match else step.node
    component = match.group(1) if match else "the control plane"
    if node is None:
        return None
    if match and component != "kube-apiserver":
        # the crashloop runbook puts back kube-apiserver.yaml only
        return RunbookHint(ROLLBACK, {}, f"kubeadm gave up on {component} on {node}; {APISERVER_CRASHLOOP} restores "
                                         f"only kube-apiserver: restore {component}.yaml on {node} by hand from the "
                                         "newest /etc/kubernetes/tmp/kubeadm-backup-manifests-*/ (staged outside "
                                         "manifests/, then mv into /etc/kubernetes/manifests/), or roll the upgrade "
                                         "back with this runbook")
    return RunbookHint(APISERVER_CRASHLOOP, {"node": node},
                       f"kubeadm gave up on {component} on {node} and tried to put the old manifests back: read "
                       "the static pod's state, diff the manifest against kubeadm's backup, restore it")


def _not_ready(step: FailedStep, text: str, etcd: EtcdHealth | None, snapshot_id: int | None) -> RunbookHint | None:
    if step.action not in NODE_ACTIONS:
        return None
    listed = NOT_READY_LIST.search(text)
    names: list[str] = [m.group(1) for m in NOT_READY_ONE.finditer(text)]
    names += listed.group(1).split(", ") if listed else []
    if not names:
        return None
    node = step.node if step.action == "upgrade-kubelet" and step.node in names else None
    node = node or names[0]
    return RunbookHint(NODE_NOT_READY, {"node": node},
                       f"{node} did not report Ready after {step.action}{_on(step.node)}")


def _interrupted(step: FailedStep, text: str, etcd: EtcdHealth | None, snapshot_id: int | None) -> RunbookHint | None:
    if not (step.found_running and step.action in KUBEADM_ACTIONS):
        return None
    params = {"version": step.version} if step.version else {}
    return RunbookHint(KUBEADM_INTERRUPTED, params,
                       f"{step.action}{_on(step.node)} was interrupted and failed when run again: the hop is half "
                       "done; level it forward")


def _on(node: str | None) -> str:
    return f" on {node}" if node else ""
