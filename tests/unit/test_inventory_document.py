"""The inventory document's observed facts: optional, validated when present, and fingerprinted with care.

Older inventories and hand-written ``plan --state`` files have none of the facts and must keep
working (and keep their fingerprint); an observed document has them all; a malformed one is refused
with the field named. The fingerprint covers what planning depends on and nothing that moves on
its own between two looks at an unchanged cluster.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from upgrader.domain.inventory import inventory_to_dict, parse_inventory
from upgrader.errors import InvalidInventoryError

LEGACY = inventory_to_dict(inventory(cp("cp-1", "v1.30.6"), worker("w-1", "v1.30.6")))
del LEGACY["fingerprint"]

MEMBER = {"id": "8e9e05c52164694d", "name": "cp-1", "peer_urls": ["https://10.0.0.10:2380"],
          "client_urls": ["https://10.0.0.10:2379"], "leader": True, "healthy": True, "db_size": 4_317_184,
          "revision": 1234, "version": "3.5.15", "error": None}


def observed() -> dict[str, Any]:
    """A document as `upgrader inventory -o json` prints it for a kubeadm cluster."""
    doc = copy.deepcopy(LEGACY)
    facts = {"internal_ip": "10.0.0.10", "os_image": "Debian GNU/Linux 12 (bookworm)",
             "container_runtime": "containerd://1.7.24", "kernel": "6.1.0-28-amd64"}
    doc["nodes"][0] |= facts | {
        "taints": [{"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}],
        "packages": {"status": "observed", "manager": "apt",
                     "repo": {"url": "https://pkgs.k8s.io/core:/stable:/v1.30/deb/", "minor": "v1.30",
                              "file": "/etc/apt/sources.list.d/kubernetes.list"}}}
    doc["nodes"][1] |= facts | {"internal_ip": "10.0.0.20", "taints": [],
                                "packages": {"status": "transport_error", "error": "ssh: connect to host w-1: timeout"}}
    doc["kubeadm_config"] = {"kubernetes_version": "v1.30.6", "etcd": {"mode": "local"},
                             "image_repository": "registry.k8s.io", "control_plane_endpoint": "10.0.0.5:6443"}
    doc["etcd"] = {"members": [dict(MEMBER)]}
    return doc


def test_a_document_without_the_observed_facts_is_accepted_and_keeps_its_old_fingerprint():
    inv = parse_inventory(LEGACY)
    assert all(n.taints is None and n.packages is None and n.internal_ip is None for n in inv.nodes)
    assert inv.kubeadm_config is None and inv.etcd is None
    old = {k: v for k, v in LEGACY.items() if k != "observed_at"}  # what the fingerprint hashed before the facts
    assert inv.fingerprint == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    assert "taints" not in inventory_to_dict(inv)["nodes"][0]


def test_an_observed_document_round_trips_with_every_fact():
    doc = observed()
    inv = parse_inventory(doc)
    cp1, w1 = inv.nodes
    assert cp1.taints and cp1.taints[0].effect == "NoSchedule" and w1.taints == ()
    assert cp1.packages is not None and cp1.packages.repo is not None and cp1.packages.repo.minor == "v1.30"
    assert w1.packages is not None and w1.packages.status == "transport_error"
    assert inv.kubeadm_config is not None and inv.kubeadm_config.etcd == "local"
    assert inv.etcd is not None and inv.etcd.members is not None and inv.etcd.members[0].db_size == 4_317_184
    again = inventory_to_dict(inv)
    assert again == doc | {"fingerprint": inv.fingerprint}
    assert parse_inventory(again) == inv  # its own fingerprint is accepted back


def test_failures_are_documents_too():
    doc = observed() | {"etcd": {"error": "no endpoint answered"},
                        "kubeadm_config": {"error": "no ConfigMap kube-system/kubeadm-config"}}
    doc["nodes"][0]["packages"] = {"status": "not_observed"}
    inv = parse_inventory(doc)
    assert inv.etcd is not None and inv.etcd.error == "no endpoint answered" and inv.etcd.members is None
    assert inv.kubeadm_config is not None and inv.kubeadm_config.error
    assert inventory_to_dict(inv)["etcd"] == {"error": "no endpoint answered"}


def test_external_etcd_keeps_its_endpoints():
    doc = observed()
    doc["kubeadm_config"]["etcd"] = {"mode": "external", "endpoints": ["https://etcd-0:2379", "https://etcd-1:2379"]}
    inv = parse_inventory(doc)
    assert inv.kubeadm_config is not None and inv.kubeadm_config.etcd_endpoints == ("https://etcd-0:2379",
                                                                                    "https://etcd-1:2379")
    assert inventory_to_dict(inv)["kubeadm_config"]["etcd"]["endpoints"] == ["https://etcd-0:2379", "https://etcd-1:2379"]


def _set(path: str, value: object):
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for p in parents:
            target = target[int(p)] if p.isdigit() else target[p]
        target[int(last) if last.isdigit() else last] = value
    return edit


@pytest.mark.parametrize(("edit", "field"), [
    (_set("nodes.0.taints", "NoSchedule"), "nodes[0].taints"),
    (_set("nodes.0.taints.0.effect", "NoWay"), "nodes[0].taints[0].effect"),
    (_set("nodes.0.taints.0.key", ""), "nodes[0].taints[0].key"),
    (_set("nodes.0.taints.0.colour", "red"), "nodes[0].taints[0].colour: unknown field"),
    (_set("nodes.0.internal_ip", "10.0.0.300"), "nodes[0].internal_ip"),
    (_set("nodes.1.internal_ip", 10), "nodes[1].internal_ip"),
    (_set("nodes.0.os_image", 12), "nodes[0].os_image"),
    (_set("nodes.0.container_runtime", "x" * 300), "nodes[0].container_runtime"),
    (_set("nodes.0.kernel", ""), "nodes[0].kernel"),
    (_set("nodes.0.packages.status", "seen"), "nodes[0].packages.status"),
    (_set("nodes.0.packages.manager", "zypper"), "nodes[0].packages.manager"),
    (_set("nodes.0.packages.repo.minor", "1.30"), "nodes[0].packages.repo.minor"),
    (_set("nodes.0.packages.repo.url", None), "nodes[0].packages.repo.url"),
    (_set("nodes.1.packages", {"status": "transport_error"}), "nodes[1].packages.error"),
    (_set("nodes.1.packages", {"status": "not_observed", "manager": "apt"}), "nodes[1].packages.manager"),
    (_set("kubeadm_config.kubernetes_version", "1.30"), "kubeadm_config.kubernetes_version"),
    (_set("kubeadm_config.etcd", {"mode": "stacked"}), "kubeadm_config.etcd.mode"),
    (_set("kubeadm_config.etcd", {"mode": "external", "endpoints": "https://e:2379"}),
     "kubeadm_config.etcd.endpoints"),
    (_set("kubeadm_config.error", "x"), "kubeadm_config.control_plane_endpoint: unknown field"),
    (_set("etcd.members.0.id", "not-hex"), "etcd.members[0].id"),
    (_set("etcd.members.0.db_size", -1), "etcd.members[0].db_size"),
    (_set("etcd.members.0.revision", True), "etcd.members[0].revision"),
    (_set("etcd.members.0.leader", "yes"), "etcd.members[0].leader"),
    (_set("etcd.members.0.peer_urls", ["", "x"]), "etcd.members[0].peer_urls[0]"),
    (_set("etcd.members.0.votes", 3), "etcd.members[0].votes: unknown field"),
    (_set("etcd.members", "cp-1"), "etcd.members"),
    (_set("fingerprint", "abc"), "fingerprint"),
])
def test_a_malformed_fact_is_refused_with_the_field_named(edit, field):
    doc = observed()
    edit(doc)
    with pytest.raises(InvalidInventoryError) as e:
        parse_inventory(doc)
    assert e.value.message.startswith(field), e.value.message


def test_duplicate_etcd_members_are_refused():
    doc = observed()
    doc["etcd"]["members"].append(dict(MEMBER))
    with pytest.raises(InvalidInventoryError, match=r"etcd\.members: duplicate member id"):
        parse_inventory(doc)


# -- the fingerprint -------------------------------------------------------------------------------

def _fingerprint(doc: dict[str, Any]) -> str:
    return parse_inventory(doc).fingerprint


@pytest.mark.parametrize("edit", [
    _set("observed_at", "2027-01-01T00:00:00+00:00"),
    _set("etcd.members.0.db_size", 99_000_000),
    _set("etcd.members.0.revision", 99_999),
    _set("etcd.members.0.leader", False),
    _set("etcd.members.0.healthy", False),
    _set("etcd.members.0.error", "context deadline exceeded"),
    _set("nodes.1.packages.error", "ssh: connect to host w-1: Connection refused"),
    # seen through etcd's port and the node transports, whose reachability changes on its own
    _set("nodes.0.packages.repo.minor", "v1.31"),
    _set("nodes.0.packages.manager", None),
    _set("nodes.1.packages", {"status": "observed", "manager": "apt", "repo": None}),
    _set("etcd.members.0.version", "3.5.16"),
    _set("etcd.members.0.client_urls", ["https://10.0.0.99:2379"]),
    _set("etcd", {"error": "no endpoint answered"}),
    _set("fingerprint", "0" * 64),  # a stale fingerprint in a file is recomputed, never trusted
])
def test_the_fingerprint_ignores_what_moves_on_its_own(edit):
    doc = observed()
    edit(doc)
    assert _fingerprint(doc) == _fingerprint(observed())


def test_the_fingerprint_ignores_the_order_of_members_and_taints_and_the_text_of_errors():
    doc, other = observed(), observed()
    second = dict(MEMBER, id="1d2e3f", name="cp-2")
    doc["etcd"]["members"].append(second)
    other["etcd"]["members"].insert(0, second)
    taints = [{"key": "a", "value": "", "effect": "NoSchedule"}, {"key": "b", "value": "1", "effect": "NoExecute"}]
    doc["nodes"][1]["taints"], other["nodes"][1]["taints"] = taints, taints[::-1]
    assert _fingerprint(doc) == _fingerprint(other)
    doc["etcd"], other["etcd"] = {"error": "timeout"}, {"error": "connection refused"}
    assert _fingerprint(doc) == _fingerprint(other)


@pytest.mark.parametrize("edit", [
    _set("nodes.0.taints", []),
    _set("nodes.0.internal_ip", "10.0.0.11"),
    _set("nodes.0.os_image", "Ubuntu 24.04.1 LTS"),
    _set("nodes.0.container_runtime", "containerd://2.0.0"),
    _set("kubeadm_config.kubernetes_version", "v1.31.4"),
    _set("kubeadm_config.etcd", {"mode": "external", "endpoints": ["https://e:2379"]}),
    _set("kubeadm_config.image_repository", "mirror.example/k8s"),
    _set("nodes.0.ready", False),
])
def test_the_fingerprint_covers_what_planning_depends_on(edit):
    doc = observed()
    edit(doc)
    assert _fingerprint(doc) != _fingerprint(observed())


# -- a round trip for any mix of facts -------------------------------------------------------------

_text = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)
_taint = st.fixed_dictionaries({"key": _text, "value": st.text(max_size=10),
                                "effect": st.sampled_from(["NoSchedule", "PreferNoSchedule", "NoExecute"])})
_repo = st.none() | st.fixed_dictionaries({"url": _text, "file": _text,
                                           "minor": st.none() | st.from_regex(r"\Av1\.[0-9]{1,2}\Z")})
_packages = st.one_of(
    st.just({"status": "not_observed"}),
    st.fixed_dictionaries({"status": st.just("transport_error"), "error": _text}),
    st.fixed_dictionaries({"status": st.just("observed"), "manager": st.sampled_from([None, "apt", "dnf", "yum"]),
                           "repo": _repo}),
)
_facts = st.fixed_dictionaries({}, optional={
    "taints": st.lists(_taint, max_size=3), "internal_ip": st.ip_addresses().map(str), "os_image": _text,
    "container_runtime": _text, "kernel": _text, "packages": _packages})
_member = st.fixed_dictionaries({
    "id": st.from_regex(r"\A[0-9a-f]{1,16}\Z"), "name": st.text(max_size=8), "peer_urls": st.lists(_text, max_size=2),
    "client_urls": st.lists(_text, max_size=2), "leader": st.none() | st.booleans(),
    "healthy": st.none() | st.booleans(), "db_size": st.none() | st.integers(0, 2**40),
    "revision": st.none() | st.integers(0, 2**40), "version": st.none() | _text, "error": st.none() | _text})
_etcd = st.one_of(st.fixed_dictionaries({"error": _text}),
                  st.lists(_member, max_size=3, unique_by=lambda m: m["id"]).map(lambda ms: {"members": ms}))


@settings(max_examples=150, deadline=None)
@given(cp_facts=_facts, worker_facts=_facts, etcd=st.none() | _etcd)
def test_any_mix_of_facts_round_trips(cp_facts, worker_facts, etcd):
    doc = copy.deepcopy(LEGACY)
    doc["nodes"][0] |= cp_facts
    doc["nodes"][1] |= worker_facts
    if etcd is not None:
        doc["etcd"] = etcd
    inv = parse_inventory(doc)
    again = inventory_to_dict(inv)
    assert parse_inventory(again) == inv
    assert parse_inventory(again).fingerprint == again["fingerprint"] == inv.fingerprint
    for i, node in enumerate(doc["nodes"]):
        for key in ("internal_ip", "os_image", "container_runtime", "kernel", "packages"):
            if key in node:
                assert key in again["nodes"][i]
