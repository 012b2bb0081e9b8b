"""The control-plane runbooks' handlers on the in-package fakes, and their pure rules.

A small node (files in a dict; ``ls``, ``mv``, ``mkdir``, ``test``, ``crictl``, ``journalctl``,
``systemctl`` and an etcd member list behind ``etcdctl`` answered as the real tools answer) is enough
to check what each step changes, what it keeps, what it refuses, and that ``observe`` tells a resumed
run the step already took effect.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.control_plane_repair import (
    EndpointReading,
    Member,
    backup_dirs_newest_first,
    classify_not_ready,
    flags_present,
    initial_cluster,
    manifest_flag,
    quorum_verdict,
    replacement_verdict,
    set_manifest_flag,
    unknown_flags,
    without_flags,
)
from upgrader.domain.plans import REVERSIBILITY, Action, Plan, Reversibility, Step, Strategy
from upgrader.domain.runbook_actions import ACTIONS
from upgrader.domain.versions import Version
from upgrader.engine.context import ApplyOptions, Hooks, RunContext
from upgrader.engine.steps import HANDLERS, StepError
from upgrader.fakes import FakeTransport
from upgrader.fakes.clock import FakeClock
from upgrader.fakes.cluster import FakeClusterApi
from upgrader.ports import CommandResult

RUN = 7
CP_LABEL = "node-role.kubernetes.io/control-plane"
MINE = (Action.STATIC_POD_STATE, Action.MANIFEST_DIFF, Action.RESTORE_BACKUP_MANIFEST, Action.ETCD_MEMBERS,
        Action.ETCD_MEMBER_REMOVE, Action.ETCD_MEMBER_RESET, Action.ETCD_MEMBER_ADD, Action.ETCD_MEMBER_START,
        Action.ETCD_MEMBER_PROMOTE, Action.ETCD_QUORUM, Action.NODE_CONDITIONS, Action.KUBELET_FLAGS_FIX,
        Action.RESTART_KUBELET)


def ok(out: str = "", err: str = "", code: int = 0) -> CommandResult:
    return CommandResult(code, out, err)


class Node(FakeTransport):
    """A node whose ls/mv/mkdir/test work on its files; a directory is the prefix of its files' paths."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        super().__init__(files=files or {})
        self.dirs: set[str] = set()
        self.handlers.update({"ls": self._ls, "mv": self._mv, "mkdir": self._mkdir, "test": self._test})

    def text(self, path: str) -> str:
        return self.files[path][0].decode()

    def _ls(self, argv: list[str]) -> CommandResult:
        base = argv[-1].rstrip("/") + "/"
        names = {p[len(base):].split("/")[0] for p in [*self.files, *self.dirs] if p.startswith(base)}
        return ok("".join(f"{n}\n" for n in sorted(names)))

    def _mv(self, argv: list[str]) -> CommandResult:
        src, dst = argv[-2], argv[-1]
        if src in self.files:
            self.files[dst] = self.files.pop(src)
            return ok()
        moved = {p: p.replace(src, dst, 1) for p in self.files if p.startswith(src + "/")}
        if not moved and src not in self.dirs:
            return ok(err=f"mv: cannot stat '{src}': No such file or directory", code=1)
        for old, new in moved.items():
            self.files[new] = self.files.pop(old)
        self.dirs.discard(src)
        self.dirs.add(dst)
        return ok()

    def _mkdir(self, argv: list[str]) -> CommandResult:
        self.dirs.add(argv[-1])
        return ok()

    def _test(self, argv: list[str]) -> CommandResult:
        path = argv[-1]
        there = path in self.dirs or any(p.startswith(path + "/") for p in self.files)
        if argv[1] == "-e":
            there = there or path in self.files
        return ok(code=0 if there else 1)


def ctx_for(nodes: dict[str, Node], api: FakeClusterApi, *, steps: tuple[Step, ...] = ()) -> RunContext:
    v = Version.parse("v1.31.4")
    plan = Plan("demo", v, v, "", Strategy(), (), (), steps)
    hooks = Hooks(preflight=dict, snapshot=lambda s: {}, etcd_health=lambda: (True, "ok"))
    return RunContext(run_id=RUN, token=1, cluster="demo", plan=plan,
                      options=ApplyOptions(gate_timeout=30, gate_interval=1, gate_passes=2, node_attempts=1),
                      unit_of_work=lambda: None,  # type: ignore[arg-type,return-value]
                      api=api, transports=lambda n: nodes[n], clock=FakeClock(), hooks=hooks)


def step(action: Action, **with_: Any) -> Step:
    return Step(1, action, None, None, None, REVERSIBILITY[action], params={"with": with_})


def api_node(name: str, *, ready: bool = True, control_plane: bool = True, annotations: dict[str, str] | None = None,
             unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {CP_LABEL: ""} if control_plane else {},
                         "annotations": dict(annotations or {})},
            "spec": {"unschedulable": True} if unschedulable else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown",
                                       "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                                       "message": "" if ready else "Kubelet stopped posting node status."}],
                       "nodeInfo": {"kubeletVersion": "v1.31.4"}}}


def test_every_control_plane_action_is_declared_handled_and_has_a_reversibility() -> None:
    for action in MINE:
        assert action.value in ACTIONS, action
        assert action in HANDLERS and action in REVERSIBILITY, action
    assert REVERSIBILITY[Action.RESTORE_BACKUP_MANIFEST] is Reversibility.MANIFEST_SWAP
    assert not ACTIONS["manifest-diff"].changes and ACTIONS["etcd-member-remove"].changes


# -- apiserver-crashloop-after-upgrade -----------------------------------------------------------------

GOOD = b"spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --secure-port=6443\n"
BAD = b"spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --insecure-port=0\n    - --secure-port=6443\n"
OLDER = b"spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --old=1\n"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def crashing_node() -> Node:
    node = Node({MANIFEST: BAD,
                 "/etc/kubernetes/tmp/kubeadm-backup-manifests-2026-11-01-10-00-00/kube-apiserver.yaml": OLDER,
                 "/etc/kubernetes/tmp/kubeadm-backup-manifests-2026-12-03-14-00-00/kube-apiserver.yaml": GOOD,
                 "/etc/kubernetes/tmp/kubeadm-backup-manifests-2026-12-03-14-00-00/etcd.yaml": b"etcd"})
    containers = [{"id": "aaa111", "metadata": {"name": "kube-apiserver", "attempt": 4}, "createdAt": "200",
                   "state": "CONTAINER_EXITED", "image": {"image": "registry.k8s.io/kube-apiserver:v1.31.4"}},
                  {"id": "bbb222", "metadata": {"name": "kube-apiserver", "attempt": 3}, "createdAt": "100",
                   "state": "CONTAINER_EXITED", "image": {"image": "registry.k8s.io/kube-apiserver:v1.31.4"}}]
    node.handlers["crictl"] = lambda argv: (
        ok(json.dumps({"containers": containers})) if argv[1] == "ps"
        else ok(err="Error: unknown flag: --insecure-port\n") if argv[1:] == ["logs", "--tail", "50", "aaa111"]
        else ok(err="not found", code=1))
    return node


def test_static_pod_state_records_the_newest_exited_container_and_its_last_words() -> None:
    nodes = {"cp-1": crashing_node()}
    out = HANDLERS[Action.STATIC_POD_STATE].act(ctx_for(nodes, FakeClusterApi()), step(
        Action.STATIC_POD_STATE, node="cp-1", component="kube-apiserver"))
    assert (out["state"], out["attempt"], out["id"], out["containers"]) == ("CONTAINER_EXITED", 4, "aaa111", 2)
    assert out["log_tail"] == ["Error: unknown flag: --insecure-port"]
    assert ["crictl", "ps", "-a", "--name", "kube-apiserver", "-o", "json"] in nodes["cp-1"].ran


def test_manifest_diff_compares_with_the_newest_backup_of_that_component() -> None:
    ctx = ctx_for({"cp-1": crashing_node()}, FakeClusterApi())
    out = HANDLERS[Action.MANIFEST_DIFF].act(ctx, step(Action.MANIFEST_DIFF, node="cp-1"))
    assert out["backup"].endswith("kubeadm-backup-manifests-2026-12-03-14-00-00/kube-apiserver.yaml")
    assert "-    - --insecure-port=0" in out["diff"] and not out["identical"]
    assert not any(line.startswith("+") and "--old" in line for line in out["diff"])


def test_no_backup_is_refused_naming_what_to_do_instead() -> None:
    ctx = ctx_for({"cp-1": Node({MANIFEST: BAD})}, FakeClusterApi())
    with pytest.raises(StepError, match=r"no kubeadm backup of kube-apiserver\.yaml .* known-good snapshot"):
        HANDLERS[Action.MANIFEST_DIFF].act(ctx, step(Action.MANIFEST_DIFF, node="cp-1"))


def test_restore_quarantines_the_current_manifest_renames_the_backup_in_and_observe_sees_it() -> None:
    node = crashing_node()
    ctx = ctx_for({"cp-1": node}, FakeClusterApi())
    s = step(Action.RESTORE_BACKUP_MANIFEST, node="cp-1")
    handler = HANDLERS[Action.RESTORE_BACKUP_MANIFEST]
    assert handler.observe(ctx, s) is None, "not restored yet: a resumed run acts"
    out = handler.act(ctx, s)
    assert node.files[MANIFEST][0] == GOOD and node.files[MANIFEST][1] == 0o600
    assert node.files[f"/etc/kubernetes/tmp/upgrader-quarantine-{RUN}/kube-apiserver.yaml"][0] == BAD
    assert out["restored"] and out["quarantined"].endswith("kube-apiserver.yaml")
    # staged outside manifests/ (the kubelet reads every file there), then renamed over the manifest
    mv = next(a for a in node.ran if a[0] == "mv")
    assert mv[-1] == MANIFEST and not mv[-2].startswith("/etc/kubernetes/manifests/")
    assert not [p for p in node.files if p.startswith("/etc/kubernetes/manifests/") and p != MANIFEST]
    assert handler.observe(ctx, s) == {"node": "cp-1", "component": "kube-apiserver", "backup": out["backup"],
                                       "sha256": out["sha256"], "restored": True}
    assert handler.act(ctx, s)["restored"] is False, "a second run changes nothing"


# -- etcd-member-lost --------------------------------------------------------------------------------

class Etcd:
    """An etcd member list behind every node's etcdctl: what etcdctl 3.4 prints for it."""

    def __init__(self, names: list[str], *, lost: str) -> None:
        self.members = {f"{0xa0 + i:x}": {"name": n, "peer": f"https://10.0.0.{i + 1}:2380",
                                           "client": f"https://10.0.0.{i + 1}:2379", "learner": False}
                        for i, n in enumerate(names)}
        self.down = {lost}
        self.promote_refusals = 1
        self.nodes: dict[str, Node] = {}

    def _doc(self) -> str:
        return json.dumps({"members": [
            {"ID": int(i, 16), **({"name": m["name"], "clientURLs": [m["client"]]} if m["name"] else {}),
             "peerURLs": [m["peer"]], **({"isLearner": True} if m["learner"] else {})}
            for i, m in self.members.items()]})

    def run(self, node: str, argv: list[str]) -> CommandResult:
        words = [a for a in argv[1:] if not a.startswith("--") or a in ("--learner", "--cluster")]
        if node in self.down:
            return ok(err="Error: context deadline exceeded", code=1)
        self._follow_manifests()
        if words[:2] == ["member", "list"]:
            return ok(self._doc())
        if words[:2] == ["member", "remove"]:
            del self.members[words[2]]
            return ok(f"Member {words[2]} removed from cluster 1\n")
        if words[:2] == ["member", "add"]:
            peer = next(a.split("=", 1)[1] for a in argv if a.startswith("--peer-urls="))
            new = f"{0xf0 + len(self.members):x}"
            self.members[new] = {"name": "", "peer": peer, "client": peer.replace("2380", "2379"),
                                 "learner": "--learner" in words}
            return ok(f"Member {new} added to cluster 1\n")
        if words[:2] == ["member", "promote"]:
            if self.promote_refusals:
                self.promote_refusals -= 1
                return ok(err="Error: etcdserver: can only promote a learner member which is in sync with leader",
                          code=1)
            self.members[words[2]]["learner"] = False
            return ok(f"Member {words[2]} promoted in cluster 1\n")
        if words[:2] == ["endpoint", "health"]:
            return ok(json.dumps([{"endpoint": m["client"], "health": m["name"] not in self.down}
                                  for m in self.members.values()]))
        if words[:2] == ["endpoint", "status"]:
            return ok(json.dumps([{"Endpoint": m["client"], "Status": {
                "header": {"member_id": int(i, 16), "revision": 100}, "leader": 0xa0}}
                for i, m in self.members.items() if m["name"] not in self.down]))
        return ok(err=f"unexpected {argv}", code=2)

    def _follow_manifests(self) -> None:
        """The kubelet runs the member whose manifest is in manifests/ (an added member then has a name)."""
        for name, node in self.nodes.items():
            text = node.files.get("/etc/kubernetes/manifests/etcd.yaml", (b"", 0))[0].decode()
            if "--initial-cluster-state=existing" in text:
                self.down.discard(name)
                for m in self.members.values():
                    if m["peer"] == manifest_flag(text, "initial-advertise-peer-urls"):
                        m["name"] = name


def etcd_manifest(i: int) -> bytes:
    return (f"spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n"
            f"    - --initial-advertise-peer-urls=https://10.0.0.{i}:2380\n"
            f"    - --initial-cluster=cp-{i}=https://10.0.0.{i}:2380\n    - --name=cp-{i}\n").encode()


def etcd_world(count: int = 3, lost: str = "cp-3") -> tuple[Etcd, dict[str, Node], RunContext]:
    names = [f"cp-{i + 1}" for i in range(count)]
    etcd = Etcd(names, lost=lost)
    nodes = {}
    for i, name in enumerate(names, start=1):
        node = Node({"/etc/kubernetes/manifests/etcd.yaml": etcd_manifest(i),
                     "/var/lib/etcd/member/snap/db": b"data"})
        node.handlers["etcdctl"] = lambda argv, name=name: etcd.run(name, argv)
        node.handlers["crictl"] = lambda argv, node=node: ok(json.dumps({"containers": [
            {"metadata": {"name": "etcd"}}] if "/etc/kubernetes/manifests/etcd.yaml" in node.files else []}))
        nodes[name] = node
    etcd.nodes = nodes
    return etcd, nodes, ctx_for(nodes, FakeClusterApi(nodes=[api_node(n) for n in names]))


def test_the_lost_member_is_removed_moved_aside_added_as_a_learner_started_and_promoted() -> None:
    etcd, nodes, ctx = etcd_world()
    lost = nodes["cp-3"]
    order = (Action.ETCD_MEMBERS, Action.ETCD_MEMBER_REMOVE, Action.ETCD_MEMBER_RESET, Action.ETCD_MEMBER_ADD,
             Action.ETCD_MEMBER_START, Action.ETCD_MEMBER_PROMOTE, Action.ETCD_QUORUM)
    outs = {}
    for action in order:
        s = step(action, node="cp-3")
        if action not in (Action.ETCD_MEMBERS, Action.ETCD_QUORUM):
            assert HANDLERS[action].observe(ctx, s) is None, f"{action} observed done before it ran"
        outs[action] = HANDLERS[action].act(ctx, s)
        if action not in (Action.ETCD_MEMBERS, Action.ETCD_QUORUM):
            assert HANDLERS[action].observe(ctx, s) is not None, f"{action} not observed done after it ran"
    assert outs[Action.ETCD_MEMBERS]["target"] == "a2" and outs[Action.ETCD_MEMBERS]["via"] == "cp-1"
    assert outs[Action.ETCD_MEMBER_REMOVE]["removed"] == "a2"
    # the old data and manifest kept in the run's places, never deleted
    assert lost.files[f"/var/lib/etcd.lost-{RUN}/member/snap/db"][0] == b"data"
    assert f"/etc/kubernetes/tmp/upgrader-etcd-{RUN}/etcd.yaml" in lost.files
    assert outs[Action.ETCD_MEMBER_ADD]["learner"] is True
    added = next(a for a in nodes["cp-1"].ran if "add" in a)
    assert added[-5:] == ["member", "add", "cp-3", "--peer-urls=https://10.0.0.3:2380", "--learner"]
    manifest = lost.text("/etc/kubernetes/manifests/etcd.yaml")
    assert manifest_flag(manifest, "initial-cluster-state") == "existing"
    assert manifest_flag(manifest, "initial-cluster") == ("cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380,"
                                                          "cp-3=https://10.0.0.3:2380")
    assert outs[Action.ETCD_MEMBER_PROMOTE]["retries"] == 1  # "in sync with leader" retried, not failed
    assert [m["learner"] for m in etcd.members.values()] == [False, False, False]
    assert outs[Action.ETCD_QUORUM]["passes"] == 2


def test_replacing_is_refused_when_quorum_would_be_lost_or_the_member_is_healthy() -> None:
    etcd, _, ctx = etcd_world()
    etcd.down = {"cp-3", "cp-2"}
    with pytest.raises(StepError, match="restore-etcd-from-snapshot"):
        HANDLERS[Action.ETCD_MEMBERS].act(ctx, step(Action.ETCD_MEMBERS, node="cp-3"))
    etcd.down = set()
    with pytest.raises(StepError, match="is healthy: there is nothing to replace"):
        HANDLERS[Action.ETCD_MEMBERS].act(ctx, step(Action.ETCD_MEMBERS, node="cp-3"))
    _, _, two = etcd_world(count=2, lost="cp-2")
    with pytest.raises(StepError, match="unsafe"):
        HANDLERS[Action.ETCD_MEMBER_REMOVE].act(two, step(Action.ETCD_MEMBER_REMOVE, node="cp-2"))


def _members(n: int) -> list[Member]:
    return [Member(f"{i:x}", f"cp-{i}", (f"https://10.0.0.{i}:2380",), ()) for i in range(1, n + 1)]


@given(st.integers(min_value=1, max_value=7), st.data())
def test_a_member_is_only_replaced_while_the_others_keep_a_quorum(n: int, data: st.DataObject) -> None:
    members = _members(n)
    healthy = {m.id: data.draw(st.booleans()) for m in members}
    target = members[-1]
    healthy[target.id] = False
    verdict = replacement_verdict(members, healthy, target=target, node=target.name)
    good_others = sum(healthy[m.id] for m in members[:-1])
    assert verdict.ok == (n >= 3 and good_others >= (n - 1) // 2 + 1)


def test_initial_cluster_lists_every_member_and_names_the_unstarted_one() -> None:
    members = [*_members(2), Member("f0", "", ("https://10.0.0.3:2380",), (), learner=True)]
    assert initial_cluster(members, node="cp-3", peer_url="https://10.0.0.3:2380") == (
        "cp-1=https://10.0.0.1:2380,cp-2=https://10.0.0.2:2380,cp-3=https://10.0.0.3:2380")
    with pytest.raises(ValueError, match="add it first"):
        initial_cluster(_members(2), node="cp-3", peer_url="https://10.0.0.3:2380")


def test_set_manifest_flag_replaces_or_adds_one_line_and_keeps_the_rest() -> None:
    text = etcd_manifest(1).decode()
    once = set_manifest_flag(text, "initial-cluster-state", "existing", after="initial-cluster")
    assert once.splitlines()[-2] == "    - --initial-cluster-state=existing"
    twice = set_manifest_flag(once, "initial-cluster", "a=b", after="name")
    assert manifest_flag(twice, "initial-cluster") == "a=b" and len(twice.splitlines()) == len(once.splitlines())
    assert manifest_flag(twice, "initial-cluster-state") == "existing"


def test_quorum_needs_every_member_voting_healthy_one_leader_and_close_revisions() -> None:
    members = _members(3)
    healthy = {m.id: True for m in members}
    statuses = [EndpointReading(m.id, "1", 100 + i) for i, m in enumerate(members)]
    assert quorum_verdict(members, healthy, statuses, expected=3, max_lag=5).ok
    assert not quorum_verdict(members, healthy, statuses, expected=4, max_lag=5).ok
    assert not quorum_verdict(members, healthy, [*statuses[:2], EndpointReading("3", "2", 100)], expected=3,
                              max_lag=5).ok
    assert not quorum_verdict(members, healthy, statuses, expected=3, max_lag=1).ok
    learner = [*members[:2], Member("3", "cp-3", (), (), learner=True)]
    assert "learner" in quorum_verdict(learner, healthy, statuses, expected=3, max_lag=5).reason


def test_backup_dirs_sort_newest_first_and_ignore_other_names() -> None:
    assert backup_dirs_newest_first(["kubeadm-backup-manifests-2026-01-02-00-00-00", "notes",
                                     "kubeadm-backup-etcd-2026-12-01-00-00-00",
                                     "kubeadm-backup-manifests-2026-12-01-00-00-00"]) == [
        "kubeadm-backup-manifests-2026-12-01-00-00-00", "kubeadm-backup-manifests-2026-01-02-00-00-00"]


# -- node-stuck-not-ready ---------------------------------------------------------------------------

FLAGS = "/var/lib/kubelet/kubeadm-flags.env"
JOURNAL = ('Started kubelet.service - kubelet: The Kubernetes Node Agent.\n'
           'E1203 14:37:01.000000 1 run.go:72] "command failed" err="failed to parse kubelet flag: unknown flag: '
           '--container-runtime"\nkubelet.service: Main process exited, code=exited, status=1/FAILURE\n')


def kubelet_world(*, annotations: dict[str, str] | None = None) -> tuple[Node, FakeClusterApi, RunContext]:
    state = {"active": "activating"}
    node = Node({FLAGS: b'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/c.sock '
                        b'--container-runtime=remote"\n'})
    api = FakeClusterApi(nodes=[api_node("worker-1", ready=False, control_plane=False, annotations=annotations,
                                         unschedulable=annotations is not None)])
    api.version_info = {"gitVersion": "v1.31.4"}

    def systemctl(argv: list[str]) -> CommandResult:
        if argv[1] == "restart" and "--container-runtime=" not in node.text(FLAGS):
            state["active"] = "active"
            api.nodes[0]["status"]["conditions"][0]["status"] = "True"
        return ok(state["active"] + "\n" if argv[1] == "is-active" else "", code=0 if state["active"] == "active"
                  or argv[1] != "is-active" else 3)

    node.handlers.update({"systemctl": systemctl, "journalctl": lambda argv: ok(JOURNAL)})
    return node, api, ctx_for({"worker-1": node}, api)


def test_node_conditions_names_the_flag_the_kubelet_refused() -> None:
    _, _, ctx = kubelet_world()
    out = HANDLERS[Action.NODE_CONDITIONS].act(ctx, step(Action.NODE_CONDITIONS, node="worker-1"))
    assert out["ready"]["status"] == "Unknown" and out["kubelet_active"] == "activating"
    assert (out["cause"], out["flags"]) == ("removed-flag", ["--container-runtime"])
    assert out["apiserver_version"] == "v1.31.4"


def test_the_flag_is_removed_the_old_file_kept_and_the_node_uncordoned_only_if_upgrader_cordoned_it() -> None:
    node, api, ctx = kubelet_world(annotations={"upgrader.io/cordoned-by": "3"})
    fix = step(Action.KUBELET_FLAGS_FIX, node="worker-1")
    assert HANDLERS[Action.KUBELET_FLAGS_FIX].observe(ctx, fix) is None
    out = HANDLERS[Action.KUBELET_FLAGS_FIX].act(ctx, fix)
    assert node.text(FLAGS) == 'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/c.sock"\n'
    assert "--container-runtime=remote" in node.text(f"/etc/kubernetes/tmp/upgrader-kubelet-{RUN}/kubeadm-flags.env")
    assert any(line.startswith("-KUBELET_KUBEADM_ARGS") for line in out["diff"])
    assert HANDLERS[Action.KUBELET_FLAGS_FIX].observe(ctx, fix) is not None
    restarted = HANDLERS[Action.RESTART_KUBELET].act(ctx, step(Action.RESTART_KUBELET, node="worker-1"))
    assert restarted["uncordoned"] == "by run 3" and not api.nodes[0]["spec"].get("unschedulable")
    assert ["systemctl", "restart", "kubelet"] in node.ran


def test_a_node_someone_else_cordoned_stays_cordoned() -> None:
    _, api, ctx = kubelet_world(annotations={})
    api.nodes[0]["spec"]["unschedulable"] = True
    HANDLERS[Action.KUBELET_FLAGS_FIX].act(ctx, step(Action.KUBELET_FLAGS_FIX, node="worker-1"))
    out = HANDLERS[Action.RESTART_KUBELET].act(ctx, step(Action.RESTART_KUBELET, node="worker-1"))
    assert out["uncordoned"] is None and api.nodes[0]["spec"]["unschedulable"] is True


@pytest.mark.parametrize(("journal", "message", "cause"), [
    (JOURNAL, "Kubelet stopped posting node status.", "removed-flag"),
    ('E1203 run.go:72] "command failed" err="kubelet is configured to not run on a host using cgroup v1"', "",
     "cgroup-v1"),
    ("", "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network "
         "plugin returns error: cni plugin not initialized", "cni-not-ready"),
    ("", "PLEG is not healthy", "unknown"),
])
def test_a_not_ready_node_is_classified_by_the_line_that_says_why(journal: str, message: str, cause: str) -> None:
    found = classify_not_ready(journal, message)
    assert found.cause == cause and found.next
    assert found.evidence in f"{journal}\n{message}"
    assert found.flags == (("--container-runtime",) if cause == "removed-flag" else ())


def test_kubelet_flag_rules() -> None:
    text = 'KUBELET_KUBEADM_ARGS="--a=1 --network-plugin=cni --b"\nOTHER=1\n'
    assert unknown_flags(JOURNAL + JOURNAL) == ["--container-runtime"]
    assert flags_present(text, ["--network-plugin", "--container-runtime"]) == ["--network-plugin"]
    assert without_flags(text, ["--network-plugin"]) == 'KUBELET_KUBEADM_ARGS="--a=1 --b"\nOTHER=1\n'
