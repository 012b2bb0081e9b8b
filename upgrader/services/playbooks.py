"""Playbook use cases: which upgrade playbooks a plan expands, `playbook show` and `playbook validate`.

The shipped playbooks (``playbooks/upgrade/ROLE.yaml``, inside the wheel) are the default. An operator's
copy (``plan --playbooks DIR``, or the cluster's ``playbooks_dir``) may hold only some roles: the others
come from the shipped set. DIR is either such a folder of ROLE.yaml files or a copy of the whole
``playbooks/`` folder (its ``upgrade/`` is read). Every file is read strictly (services/yaml_docs.py,
domain/playbooks.py): the first problem is one line naming the file, the step and the field (exit 2).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from upgrader.domain.plans import REVERSIBILITY, Action
from upgrader.domain.playbooks import BUILT_IN, Playbook, Playbooks, PlaybookStep, Role, parse_playbook
from upgrader.domain.records import ClusterRecord
from upgrader.errors import PlaybookError, UsageError
from upgrader.nodes import commands
from upgrader.services.yaml_docs import load_yaml
from upgrader.shipped import shipped_dir

MAX_PATH = 4096


def shipped_upgrade_dir() -> Path:
    return shipped_dir("playbooks") / "upgrade"


def playbook_dir(text: str, *, label: str = "--playbooks") -> Path:
    """``--playbooks DIR`` (or ``playbook validate DIR``: ``label`` names what the operator typed) checked
    at the edge: a readable directory, named without ``..``; UsageError (exit 2)."""
    if not text or len(text) > MAX_PATH or "\x00" in text or any(ord(c) < 32 for c in text):
        raise UsageError(f"{label}: expected a directory path")
    path = Path(text).expanduser()
    if ".." in path.parts:
        raise UsageError(f"{label} {text}: name the directory without '..' (the plan records the path)")
    if not path.exists():
        raise UsageError(f"{label} {text}: no such directory")
    if not path.is_dir():
        raise UsageError(f"{label} {text}: not a directory")
    return path.resolve()


def cluster_playbooks(cluster: ClusterRecord, given: str | None) -> Playbooks:
    """The playbooks a plan of ``cluster`` expands: ``--playbooks DIR``, else the cluster's own
    directory (``cluster set --playbooks``), else the shipped ones."""
    if given is not None:
        return load_playbooks(playbook_dir(given))
    if cluster.playbooks_dir:
        return load_playbooks(playbook_dir(cluster.playbooks_dir))
    return load_playbooks(None)


def _role_dir(directory: Path) -> Path:
    upgrade = directory / "upgrade"
    return upgrade if upgrade.is_dir() else directory


def _file(directory: Path, role: Role) -> Path:
    return directory / f"{role}.yaml"


def read_playbook(path: Path, role: Role) -> Playbook:
    return parse_playbook(load_yaml(path), file=str(path), role=role)


def load_playbooks(directory: Path | None = None) -> Playbooks:
    """The effective playbook of each role: ``directory``'s copy when it has one, else the shipped one."""
    by_role: dict[Role, Playbook] = {}
    folder = _role_dir(directory) if directory is not None else None
    if folder is not None:
        _refuse_strays(folder)
    for role in Role:
        own = _file(folder, role) if folder is not None else None
        path = own if own is not None and own.exists() else _file(shipped_upgrade_dir(), role)
        by_role[role] = read_playbook(path, role)
    return Playbooks(by_role)


def _refuse_strays(folder: Path) -> None:
    """A YAML file that is no role's playbook is a typo (``workers.yaml``): silently ignored it would
    leave the shipped procedure in force while the operator believes theirs is."""
    roles = {f"{r}.yaml" for r in Role}
    for path in sorted(folder.iterdir()):
        if path.suffix in (".yaml", ".yml") and path.name not in roles:
            raise PlaybookError(f"{path}: not a role's playbook (the roles' files: {', '.join(sorted(roles))})")


@dataclass(frozen=True, slots=True)
class Validated:
    directory: Path
    files: tuple[str, ...]  # the role files the directory holds, each valid
    playbooks: Playbooks


def validate_dir(text: str) -> Validated:
    """`playbook validate DIR`: every role file DIR holds is valid (at least one); PlaybookError else."""
    directory = playbook_dir(text, label="DIR")
    folder = _role_dir(directory)
    present = tuple(str(_file(folder, r)) for r in Role if _file(folder, r).exists())
    if not present:
        _refuse_strays(folder)
        raise PlaybookError(f"{folder}: holds no playbook (expected one or more of "
                            f"{', '.join(f'{r}.yaml' for r in Role)})")
    return Validated(directory, present, load_playbooks(directory))


def effective(directory: Path | None, *, manager: str) -> dict[str, Any]:
    """`playbook show`: every role's effective procedure, each step with what it runs on a node of
    ``manager`` (apt or dnf), its reversibility and the file it came from."""
    playbooks = load_playbooks(directory)
    return {"manager": manager, "roles": {str(role): _role_doc(playbooks.by_role[role], manager) for role in Role}}


def _role_doc(playbook: Playbook, manager: str) -> dict[str, Any]:
    return {"file": playbook.source, "description": playbook.description,
            "phases": {phase: [_step_doc(s, manager) for s in steps] for phase, steps in playbook.phases.items()},
            "built_in_order": {phase: [str(a) for a in actions] for phase, actions in BUILT_IN[playbook.role].items()}}


def _step_doc(step: PlaybookStep, manager: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": step.name, "action": str(step.action), "custom": step.custom,
                           "reversibility": str(REVERSIBILITY[step.action]), "runs": runs(step, manager)}
    if step.custom:
        doc["with"] = dict(step.args)
    if step.manager is not None:
        doc["when"] = {"manager": step.manager}
    return doc


def _install(manager: str, names: list[str]) -> list[str]:
    pm = "apt" if manager == "apt" else "dnf"
    builds = {n: "{build}" for n in names}
    return [f"point the node's pkgs.k8s.io repository file at {{minor}} "
            f"({commands.APT_LIST if pm == 'apt' else commands.YUM_REPO})",
            " ".join(commands.refresh(pm)),
            *(" ".join(commands.list_builds(pm, n)) + "   # {build}: its build of {version}" for n in names),
            *(" ".join(a) for a in commands.install(pm, builds))]


def runs(step: PlaybookStep, manager: str) -> list[str]:
    """What the step runs, with the placeholders {node}, {version}, {minor} (and {build}) left in."""
    if step.custom:
        args = step.args
        target = (f"GET {args['http']} on the cluster's API" if "http" in args
                  else f"on {{node}}: {shlex.join(args['argv'])}")
        if step.action is Action.COMMAND:
            return [f"{target} (at most {args['timeout']:g}s; "
                    + ("runs again on resume)" if args["idempotent"] else "not idempotent: resume asks a person)")]
        passes = "answers 2xx" if "http" in args else "exits 0"
        return [f"{target} until it {passes}: {args['retries'] + 1} attempt(s) {args['interval']:g}s apart, "
                f"{args['timeout']:g}s each"]
    return list(_BUILT_IN_RUNS[step.action](manager))


def _kubeadm_locked(argv: list[str]) -> str:
    return " ".join(commands.kubeadm_locked(argv, 900))


_BUILT_IN_RUNS: dict[Action, Any] = {
    Action.SNAPSHOT: lambda m: ["on every control-plane node: "
                                "kubeadm config images pull --kubernetes-version {version}",
                                "etcd snapshot save from a healthy member, verified, stored 0600"],
    Action.UPGRADE_KUBEADM: lambda m: _install(m, ["kubeadm"]),
    Action.KUBEADM_UPGRADE_APPLY: lambda m: [_kubeadm_locked(["kubeadm", "upgrade", "apply", "{version}", "--yes"])],
    Action.KUBEADM_UPGRADE_NODE: lambda m: [_kubeadm_locked(commands.kubeadm_node())],
    Action.DRAIN: lambda m: ["PATCH node {node}: spec.unschedulable=true, annotation upgrader.io/cordoned-by=RUN",
                             "evict every pod on {node} but DaemonSet and mirror pods (PodDisruptionBudgets honoured)"],
    Action.UPGRADE_KUBELET: lambda m: [*_install(m, ["kubelet", "kubectl"]),
                                       *(" ".join(a) for a in commands.restart_kubelet()),
                                       "wait for {node} Ready with its kubelet at {version}"],
    Action.UNCORDON: lambda m: ["PATCH node {node}: spec.unschedulable=false (only if this run cordoned it)"],
    Action.HEALTH_GATE: lambda m: ["GET /readyz, nodes, control-plane pods; etcd endpoint health, "
                                   "until good several readings in a row"],
}
