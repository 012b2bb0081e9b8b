"""The pure rules behind a rollback's loss list: what an etcd key names, and what a rollback changes.

Key layouts are those of kubernetes/kubernetes pkg/registry/*/storage (table cases); the properties
say that any DNS-like name round-trips through its key, and that the comparison of two keyspaces
classifies every key by its mod revisions alone, as domain.rollback_loss documents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upgrader.domain.etcd_keys import ObjectRef, excluded_kind, parse_key
from upgrader.domain.rollback_loss import Change, LossReport, LostObject, change_of, compare
from upgrader.errors import ClusterUnreachableError
from upgrader.etcd.parsing import parse_hashkv, parse_key_listing
from upgrader.etcd.tool import EtcdctlTool
from upgrader.ports import CommandResult, EtcdTls

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
NAME = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True)


@pytest.mark.parametrize(("key", "ref"), [
    ("/registry/configmaps/default/x", ObjectRef("configmaps", "default", "x")),
    ("/registry/secrets/kube-system/bootstrap-token-abc", ObjectRef("secrets", "kube-system", "bootstrap-token-abc")),
    ("/registry/pods/default/web-7d9c-x2", ObjectRef("pods", "default", "web-7d9c-x2")),
    ("/registry/minions/cp-1", ObjectRef("nodes", None, "cp-1")),
    ("/registry/nodes/w-1", ObjectRef("nodes", None, "w-1")),  # the sandbox's layout: kept as its raw plural
    ("/registry/namespaces/team-a", ObjectRef("namespaces", None, "team-a")),
    ("/registry/services/specs/default/kubernetes", ObjectRef("services", "default", "kubernetes")),
    ("/registry/services/endpoints/default/kubernetes", ObjectRef("endpoints", "default", "kubernetes")),
    ("/registry/controllers/default/rc", ObjectRef("replicationcontrollers", "default", "rc")),
    ("/registry/deployments/default/web", ObjectRef("deployments.apps", "default", "web")),
    ("/registry/cronjobs/ops/backup", ObjectRef("cronjobs.batch", "ops", "backup")),
    ("/registry/poddisruptionbudgets/default/pdb", ObjectRef("poddisruptionbudgets.policy", "default", "pdb")),
    ("/registry/ingress/default/site", ObjectRef("ingresses.networking.k8s.io", "default", "site")),
    ("/registry/clusterroles/admin", ObjectRef("clusterroles.rbac.authorization.k8s.io", None, "admin")),
    ("/registry/rolebindings/ns/rb", ObjectRef("rolebindings.rbac.authorization.k8s.io", "ns", "rb")),
    ("/registry/priorityclasses/system-node-critical",
     ObjectRef("priorityclasses.scheduling.k8s.io", None, "system-node-critical")),
    ("/registry/ranges/serviceips", ObjectRef("ranges", None, "serviceips")),
    ("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com",
     ObjectRef("customresourcedefinitions.apiextensions.k8s.io", None, "widgets.example.com")),
    ("/registry/apiregistration.k8s.io/apiservices/v1.apps",
     ObjectRef("apiservices.apiregistration.k8s.io", None, "v1.apps")),
    ("/registry/example.com/widgets/default/w", ObjectRef("widgets.example.com", "default", "w")),
    ("/registry/example.com/gadgets/g", ObjectRef("gadgets.example.com", None, "g")),
    # unknown layouts are kept as they are, never dropped
    ("/registry/frobs/a/b", ObjectRef("frobs", "a", "b")),
    ("/registry/frobs/a/b/c", ObjectRef("frobs", None, "a/b/c")),
    ("/registry/configmaps/only-a-name", ObjectRef("configmaps", None, "only-a-name")),
    ("/registry/services/specs/x", ObjectRef("services", None, "specs/x")),
    ("/other/thing", ObjectRef("etcd", None, "/other/thing")),
    ("/registry/", ObjectRef("etcd", None, "/registry/")),
])
def test_each_layout_names_its_object(key: str, ref: ObjectRef) -> None:
    assert parse_key(key) == ref


@pytest.mark.parametrize(("key", "kind"), [
    ("/registry/leases/kube-node-lease/cp-1", "leases"), ("/registry/events/default/x.17a", "events"),
    ("/registry/masterleases/10.0.0.1", "masterleases"), ("compact_rev_key", "compact_rev_key"),
    ("/registry/configmaps/default/leases", None), ("/registry/leasecandidates/kube-system/x", None),
])
def test_the_churning_kinds_are_named(key: str, kind: str | None) -> None:
    assert excluded_kind(key) == kind


@given(resource=st.sampled_from(["configmaps", "secrets", "pods", "serviceaccounts", "frobs"]),
       namespace=LABEL, name=NAME)
def test_a_namespaced_key_round_trips(resource: str, namespace: str, name: str) -> None:
    assert parse_key(f"/registry/{resource}/{namespace}/{name}") == ObjectRef(resource, namespace, name)


@given(group=st.lists(LABEL, min_size=2, max_size=4).map(".".join), plural=LABEL, namespace=LABEL, name=NAME)
def test_a_custom_resource_key_round_trips(group: str, plural: str, namespace: str, name: str) -> None:
    assert parse_key(f"/registry/{group}/{plural}/{namespace}/{name}") == ObjectRef(f"{plural}.{group}",
                                                                                    namespace, name)
    assert parse_key(f"/registry/{group}/{plural}/{name}") == ObjectRef(f"{plural}.{group}", None, name)


@given(key=st.text(alphabet="/abc.-", min_size=1, max_size=40))
def test_any_key_is_kept_with_a_name(key: str) -> None:
    ref = parse_key(key)
    assert ref.resource and ref.name  # nothing is dropped, every key names something


# the comparison

@given(snap=st.one_of(st.none(), st.integers(1, 10**12)), live=st.one_of(st.none(), st.integers(1, 10**12)))
def test_the_rule_for_one_key(snap: int | None, live: int | None) -> None:
    change = change_of(snap, live)
    if snap is None and live is None:
        assert change is None
    elif snap is None:
        assert change is Change.VANISHES
    elif live is None:
        assert change is Change.REAPPEARS
    elif snap == live:
        assert change is None
    else:
        assert change is Change.REVERTS


KEYS = st.builds(lambda r, ns, n: f"/registry/{r}/{ns}/{n}",
                 st.sampled_from(["configmaps", "secrets", "deployments", "leases", "events"]),
                 st.sampled_from(["default", "kube-system", "team-a"]), LABEL)
SPACES = st.dictionaries(KEYS, st.integers(1, 500), max_size=25)


@given(snapshot=SPACES, live=SPACES)
def test_compare_classifies_every_key_once(snapshot: dict[str, int], live: dict[str, int]) -> None:
    diff = compare(snapshot, live)
    by_key = {o.key: o.change for o in diff.objects}
    assert len(by_key) == len(diff.objects)
    churn = {k for k in snapshot.keys() | live.keys() if excluded_kind(k)}
    for key in snapshot.keys() | live.keys():
        expected = change_of(snapshot.get(key), live.get(key))
        if key in churn:
            assert key not in by_key
        else:
            assert by_key.get(key) == (expected.value if expected else None)
    counted = {kind: sum(1 for k in churn if excluded_kind(k) == kind and change_of(snapshot.get(k), live.get(k)))
               for kind in ("leases", "events")}
    assert dict(diff.excluded) == {k: v for k, v in counted.items() if v}
    assert diff.keys_compared == len(snapshot.keys() | live.keys())
    assert list(diff.objects) == sorted(diff.objects, key=lambda o: (o.resource, o.namespace or "", o.name,
                                                                     o.change, o.key))


@given(space=SPACES)
def test_equal_keyspaces_lose_nothing(space: dict[str, int]) -> None:
    diff = compare(space, dict(space))
    assert diff.objects == () and diff.excluded == ()


def test_the_three_changes_and_the_report() -> None:
    snapshot = {"/registry/configmaps/default/kept": 5, "/registry/configmaps/default/edited": 6,
                "/registry/secrets/default/deleted": 7, "/registry/leases/kube-node-lease/cp-1": 8}
    live = {"/registry/configmaps/default/kept": 5, "/registry/configmaps/default/edited": 20,
            "/registry/deployments/default/new": 21, "/registry/leases/kube-node-lease/cp-1": 30,
            "compact_rev_key": 31}
    diff = compare(snapshot, live)
    assert [(o.resource, o.namespace, o.name, o.change) for o in diff.objects] == [
        ("configmaps", "default", "edited", "reverts"), ("deployments.apps", "default", "new", "vanishes"),
        ("secrets", "default", "deleted", "reappears")]
    report = LossReport(snapshot_id=3, snapshot_revision=8, live_revision=31, revisions_since=23,
                        snapshot_taken_at=datetime(2026, 12, 3, tzinfo=UTC), seconds_since=60.0,
                        objects=diff.objects, keys_compared=diff.keys_compared, excluded=diff.excluded)
    doc = report.to_dict()
    assert doc["counts"] == {"reverts": 1, "vanishes": 1, "reappears": 1}
    assert doc["excluded"]["kinds"] == {"leases": 1, "events": 0, "masterleases": 0, "compact_rev_key": 1}
    assert doc["objects"][2] == {"resource": "secrets", "namespace": "default", "name": "deleted",
                                 "change": "reappears"}
    assert doc["keys_compared"] == 6 and doc["revisions_since"] == 23
    assert LostObject("configmaps", "default", "x", "reverts") == LostObject("configmaps", "default", "x", "reverts")


# what etcdctl prints (recorded from etcdctl 3.4.23)

LISTING = ('{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":3,'
           '"raft_term":2},"kvs":[{"key":"L3JlZ2lzdHJ5L2NvbmZpZ21hcHMvZGVmYXVsdC94","create_revision":2,'
           '"mod_revision":2,"version":1},{"key":"Y29tcGFjdF9yZXZfa2V5","create_revision":3,"mod_revision":3,'
           '"version":1}],"count":2}')
EMPTY = '{"header":{"cluster_id":15118495548433857066,"member_id":13668033151171901709,"revision":1,"raft_term":2}}'
HASHKV = ('[{"Endpoint":"http://127.0.0.1:23791","HashKV":{"header":{"cluster_id":1,"member_id":2,"revision":3,'
          '"raft_term":2},"hash":2205687446,"compact_revision":-1}}]')


def test_a_key_listing_is_read_from_etcdctls_json() -> None:
    listing = parse_key_listing(LISTING)
    assert listing.revision == 3
    assert dict(listing.keys) == {"/registry/configmaps/default/x": 2, "compact_rev_key": 3}
    assert parse_key_listing(EMPTY).keys == {}
    assert parse_hashkv(HASHKV) == 2205687446
    for bad in ("", "[]", '{"kvs": []}', '{"header":{"revision":1},"kvs":[{"key":"%%%","mod_revision":1}]}'):
        with pytest.raises(ValueError):
            parse_key_listing(bad)
    with pytest.raises(ValueError):
        parse_hashkv("[]")


def test_the_tool_lists_keys_only_from_the_first_endpoint_that_answers() -> None:
    ran: list[list[str]] = []

    def runner(argv: list[str], timeout: float) -> CommandResult:
        ran.append(argv)
        if "--endpoints=https://10.0.0.1:2379" in argv:
            return CommandResult(1, "", "Error: context deadline exceeded\n")
        return CommandResult(0, LISTING, "")

    tool = EtcdctlTool(runner=runner, etcdctl="etcdctl")
    tls = EtcdTls(cacert=Path("/t/ca.crt"), cert=Path("/t/c.crt"), key=Path("/t/c.key"))
    listing = tool.keys(["https://10.0.0.1:2379", "https://10.0.0.2:2379"], tls)
    assert listing.revision == 3 and len(listing.keys) == 2
    assert all(argv[-6:] == ["get", "", "--prefix", "--keys-only", "-w", "json"] for argv in ran)
    assert "--cacert=/t/ca.crt" in ran[1]
    with pytest.raises(ClusterUnreachableError, match="no etcd endpoint listed its keys"):
        tool.keys(["https://10.0.0.1:2379"], tls)
