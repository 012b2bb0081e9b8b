"""The vocabulary of incident runbook steps: what each action is called, the arguments its ``with:``
takes, whether it changes the cluster (then a person confirms it before it runs, unless the runbook
says otherwise or ``--yes`` answers for them), and one line saying what it does.

Each action is implemented by an engine handler registered in ``engine.steps.HANDLERS`` under the
:class:`~upgrader.domain.plans.Action` member of the same name; the handler reads its arguments from
``step.params["with"]``, already validated here and substituted by domain/runbooks.py.

Sections: "generic" (runbooks built on existing use cases: rollback, certificate renewal, uncordon,
leveling a half-done hop), "control plane" (static pod manifests, etcd members, nodes), and the two
playbook actions ``command`` and ``check`` that runbooks may use as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class ArgKind(StrEnum):
    """What an argument's value is. The first seven are also the kinds of a runbook's params (checked
    against the cluster when the runbook runs); the others are literal values only."""

    NODE = "node"  # a node of the cluster
    CONTROL_PLANE_NODE = "control-plane-node"
    WORKER_NODE = "worker-node"
    RUN = "run"  # a run id in the ledger
    SNAPSHOT = "snapshot"  # a snapshot id in the ledger
    VERSION = "version"  # a Kubernetes version, v1.32.4
    STRING = "string"
    STRINGS = "strings"  # a list of strings (an argv: never a shell string)
    NUMBER = "number"
    BOOLEAN = "boolean"


PARAM_KINDS: tuple[ArgKind, ...] = (ArgKind.NODE, ArgKind.CONTROL_PLANE_NODE, ArgKind.WORKER_NODE, ArgKind.RUN,
                                    ArgKind.SNAPSHOT, ArgKind.VERSION, ArgKind.STRING)

# which param kinds may fill an argument of a kind: a control-plane node is a node, anything is a string
ACCEPTS: dict[ArgKind, frozenset[ArgKind]] = {
    ArgKind.NODE: frozenset({ArgKind.NODE, ArgKind.CONTROL_PLANE_NODE, ArgKind.WORKER_NODE}),
    ArgKind.CONTROL_PLANE_NODE: frozenset({ArgKind.CONTROL_PLANE_NODE}),
    ArgKind.WORKER_NODE: frozenset({ArgKind.WORKER_NODE}),
    ArgKind.RUN: frozenset({ArgKind.RUN}),
    ArgKind.SNAPSHOT: frozenset({ArgKind.SNAPSHOT}),
    ArgKind.VERSION: frozenset({ArgKind.VERSION}),
    ArgKind.STRING: frozenset(PARAM_KINDS),
    ArgKind.STRINGS: frozenset(),
    ArgKind.NUMBER: frozenset(),
    ArgKind.BOOLEAN: frozenset(),
}


@dataclass(frozen=True, slots=True)
class ArgSpec:
    """One argument of an action: its kind, whether it must be given, and what it means."""

    kind: ArgKind
    required: bool = False
    help: str = ""
    low: float = 0  # a number's bounds (a playbook's command and check steps have the same)
    high: float | None = None


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A runbook action. ``describe`` is one line for ``runbook show``; ``{arg}`` in it is replaced by
    the argument's value as written in the runbook (the handler's own describe, at run time, says
    exactly what it will do on this cluster). ``one_of``: groups of arguments of which exactly one must
    be given (a check probes a command or an HTTP path)."""

    name: str
    args: Mapping[str, ArgSpec] = field(default_factory=dict)
    changes: bool = False
    describe: str = ""
    one_of: tuple[tuple[str, ...], ...] = ()


# -- generic ----------------------------------------------------------------------------------------
# Runbooks built on use cases that already exist (services): a rollback, a certificate renewal, a
# level of a half-done hop run as child runs under the runbook's lease; the uncordon of what upgrader
# left cordoned; the health gate; a look at the cluster.

GENERIC: tuple[ActionSpec, ...] = (
    ActionSpec("observe-cluster", describe="read every node's versions and readiness, the control plane's "
               "health and the cluster's last runs (changes nothing)"),
    ActionSpec("wait-healthy", args={"timeout": ArgSpec(ArgKind.NUMBER, help="seconds (default: the run's gate "
                                                                              "timeout)")},
               describe="the health gate: GET /readyz, every node Ready, each control-plane node's kube-apiserver, "
               "kube-controller-manager and kube-scheduler pods Running and ready, etcd endpoint health, until "
               "several good readings in a row"),
    ActionSpec("rollback-upgrade", changes=True,
               args={"run": ArgSpec(ArgKind.RUN, help="the upgrade run to roll back (default: the last one)"),
                     "snapshot": ArgSpec(ArgKind.SNAPSHOT, help="the snapshot to go back to (default: the one "
                                         "taken before the run's first hop)")},
               describe="roll the cluster back to the etcd snapshot taken before {run}: a rollback run (stop the "
               "control plane, restore etcd, reinstate the manifests, downgrade the packages), under this lease"),
    ActionSpec("preview-restore",
               args={"snapshot": ArgSpec(ArgKind.SNAPSHOT, help="default: the newest known-good snapshot")},
               describe="choose the snapshot ({snapshot}), verify it, and list what restoring it loses: the keys "
               "written since, which revert, vanish or reappear (values are never shown; changes nothing)"),
    ActionSpec("restore-snapshot", changes=True,
               args={"snapshot": ArgSpec(ArgKind.SNAPSHOT, help="default: the newest known-good snapshot")},
               describe="restore etcd from snapshot {snapshot} on every control-plane node, as a rollback run "
               "under this lease, and verify the objects match it"),
    ActionSpec("renew-all-certificates", changes=True,
               describe="per control-plane node, one at a time: kubeadm certs renew all, restart the static pods "
               "(manifests moved aside and back), health gate; a certificate-renewal run under this lease"),
    ActionSpec("uncordon-left-by-upgrader", changes=True,
               args={"run": ArgSpec(ArgKind.RUN, help="only the nodes this run cordoned (default: any run's)")},
               describe="uncordon the nodes carrying upgrader.io/cordoned-by (only those; of run {run}), one "
               "patch each with the node's resourceVersion; nodes cordoned by someone else are listed, untouched"),
    ActionSpec("level-control-plane", changes=True,
               args={"run": ArgSpec(ArgKind.RUN, help="the interrupted upgrade run (default: the last one that "
                                    "did not finish)"),
                     "version": ArgSpec(ArgKind.VERSION, help="the hop's target (default: the run's)")},
               describe="finish the half-done hop of {run}: resume that run, whose interrupted kubeadm step is "
               "observed and run again (kubeadm upgrade is idempotent), under this lease"),
)

# -- control plane ----------------------------------------------------------------------------------
# Static pod manifests, etcd members, nodes that will not come back (engine/runbook_manifests.py,
# runbook_etcd.py, runbook_nodes.py).

_CP = {"node": ArgSpec(ArgKind.CONTROL_PLANE_NODE, required=True, help="the control-plane node")}
_COMPONENT = {"component": ArgSpec(ArgKind.STRING, help="kube-apiserver (default), kube-controller-manager, "
                                   "kube-scheduler or etcd")}
_NODE = {"node": ArgSpec(ArgKind.NODE, required=True)}

CONTROL_PLANE: tuple[ActionSpec, ...] = (
    ActionSpec("static-pod-state", args={**_CP, **_COMPONENT, "running": ArgSpec(
        ArgKind.BOOLEAN, help="fail the step unless the newest container is running (default: false, only read)")},
               describe="on {node}: `crictl ps -a --name {component} -o json` (state and attempt of its newest "
               "container) and, if it exited, `crictl logs --tail 50 ID` (changes nothing; with running: true "
               "the step fails unless that container is running)"),
    ActionSpec("manifest-diff", args={**_CP, **_COMPONENT},
               describe="on {node}: the diff from /etc/kubernetes/manifests/{component}.yaml to the newest "
               "/etc/kubernetes/tmp/kubeadm-backup-manifests-*/{component}.yaml; refused when kubeadm kept none "
               "(changes nothing)"),
    ActionSpec("restore-backup-manifest", args={**_CP, **_COMPONENT}, changes=True,
               describe="on {node}: the current {component}.yaml copied to /etc/kubernetes/tmp/"
               "upgrader-quarantine-RUN/, kubeadm's newest backup written to a temporary file in /etc/kubernetes "
               "and renamed over /etc/kubernetes/manifests/{component}.yaml; sha256 checked"),
    ActionSpec("etcd-members", args=_CP,
               describe="from another control-plane node: `etcdctl member list` and `endpoint health --cluster`; "
               "refused when {node}'s member is healthy, etcd has 2 voting members or fewer, or the others are "
               "no quorum without it (changes nothing)"),
    ActionSpec("etcd-member-remove", args=_CP, changes=True,
               describe="from another control-plane node: `etcdctl member remove ID` of {node}'s member"),
    ActionSpec("etcd-member-reset", args=_CP, changes=True,
               describe="on {node}: etcd.yaml moved to /etc/kubernetes/tmp/upgrader-etcd-RUN/ (the member stops), "
               "/var/lib/etcd moved to /var/lib/etcd.lost-RUN (kept), an empty /var/lib/etcd made"),
    ActionSpec("etcd-member-add", args={**_CP, "learner": ArgSpec(ArgKind.BOOLEAN, help="add as a learner "
                                                                   "(default: true; etcd 3.4+)")},
               changes=True,
               describe="from another control-plane node: `etcdctl member add {node} --peer-urls=PEER --learner`"),
    ActionSpec("etcd-member-start", args=_CP, changes=True,
               describe="on {node}: its etcd.yaml with --initial-cluster=EVERY_MEMBER and "
               "--initial-cluster-state=existing, staged outside manifests/ and renamed in; wait until started"),
    ActionSpec("etcd-member-promote", args=_CP, changes=True,
               describe="from another control-plane node: `etcdctl member promote ID`, retried while the learner "
               "catches up with the leader"),
    ActionSpec("etcd-quorum", args={"node": ArgSpec(ArgKind.CONTROL_PLANE_NODE)},
               describe="every control-plane node a healthy voting etcd member, one leader, revisions converged, "
               "several readings in a row (changes nothing)"),
    ActionSpec("node-conditions", args=_NODE,
               describe="{node}'s Ready condition and kubelet version, `systemctl is-active kubelet`, the kubelet's "
               "journal tail, and what they point to (changes nothing)"),
    ActionSpec("kubelet-flags-fix", args={**_NODE, "flags": ArgSpec(ArgKind.STRINGS, help="flags to remove "
                                                                    "(default: those the kubelet refused)")},
               changes=True,
               describe="on {node}: /var/lib/kubelet/kubeadm-flags.env without the flags the kubelet refused "
               "(`unknown flag: --X` in its journal), the old file kept in /etc/kubernetes/tmp/upgrader-kubelet-RUN/"),
    ActionSpec("restart-kubelet", args=_NODE, changes=True,
               describe="on {node}: `systemctl daemon-reload`, `systemctl restart kubelet`; wait until Ready; "
               "uncordon it only if upgrader cordoned it"),
)

# -- playbook steps: command and check (engine/custom_steps.py), usable in runbooks too ---------------

MAX_SECONDS = 86400.0  # as domain/playbooks.py's MAX_TIMEOUT
MAX_RETRIES = 1000

PLAYBOOK: tuple[ActionSpec, ...] = (
    ActionSpec("command", changes=True,
               args={"node": ArgSpec(ArgKind.NODE, required=True), "argv": ArgSpec(ArgKind.STRINGS, required=True),
                     "timeout": ArgSpec(ArgKind.NUMBER, help="seconds", low=1, high=MAX_SECONDS),
                     "idempotent": ArgSpec(ArgKind.BOOLEAN, help="safe to run again on resume (default: true)")},
               describe="on {node}: {argv}"),
    ActionSpec("check",
               args={"node": ArgSpec(ArgKind.NODE, help="where argv runs (required with argv)"),
                     "argv": ArgSpec(ArgKind.STRINGS),
                     "http": ArgSpec(ArgKind.STRING, help="a path on the cluster's API, /readyz"),
                     "timeout": ArgSpec(ArgKind.NUMBER, low=1, high=MAX_SECONDS),
                     "retries": ArgSpec(ArgKind.NUMBER, low=0, high=MAX_RETRIES),
                     "interval": ArgSpec(ArgKind.NUMBER, low=0, high=MAX_SECONDS)},
               one_of=(("argv", "http"),),
               describe="must succeed: {argv}{http} (retried)"),
)

ACTIONS: dict[str, ActionSpec] = {a.name: a for a in (*GENERIC, *CONTROL_PLANE, *PLAYBOOK)}


def action_spec(name: str) -> ActionSpec | None:
    return ACTIONS.get(name)
