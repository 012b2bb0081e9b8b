"""`upgrader plan` and `upgrader cluster` through the real entry point: exit codes, messages, JSON, ledger."""

from __future__ import annotations

import sqlite3

import pytest

from tests.cli.conftest import inventory_doc, node

STANDARD = inventory_doc(
    node("cp-1", "v1.29.10", cp=True), node("cp-2", "v1.29.10", cp=True),
    node("w-1", "v1.29.10"), node("w-2", "v1.29.10"), node("w-3", "v1.29.10"),
)


def _count(cli, table: str) -> int:
    if not cli.db.exists():
        return 0
    with sqlite3.connect(cli.db) as conn:
        return conn.execute(f"select count(*) from {table}").fetchone()[0]


@pytest.fixture
def prod(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return cli


def test_plan_json_is_stored_and_has_the_documented_shape(prod):
    state = prod.write("inv.json", STANDARD)
    r = prod("plan", "prod", "--to", "1.32", "--state", str(state), "--max-unavailable", "2", "-o", "json")
    assert r.code == 0, r.err
    doc = r.json()
    assert set(doc) >= {"id", "cluster", "target", "source", "strategy", "skipped_versions", "hops", "steps"}
    assert doc["target"].startswith("v1.32.")
    assert [h["minor"] for h in doc["hops"]] == ["v1.30", "v1.31", "v1.32"]
    assert set(doc["steps"][0]) >= {"n", "action", "node", "version", "batch", "reversibility"}
    assert doc["source"]["fingerprint"] and len(doc["source"]["fingerprint"]) == 64
    worker_batches = {s["batch"] for s in doc["steps"] if s["node"] and s["node"].startswith("w-")}
    assert None not in worker_batches
    assert _count(prod, "plans") == 1 and _count(prod, "plan_steps") == len(doc["steps"])


def test_plan_table_shows_hops_reversibility_and_id(prod):
    state = prod.write("inv.json", STANDARD)
    r = prod("plan", "prod", "--to", "v1.31.14", "--state", str(state))
    assert r.code == 0, r.err
    assert "plan 1: prod v1.29.10 -> v1.31.14" in r.out
    assert "hop 1/2: control plane to v1.30.14" in r.out
    assert "restore the hop's etcd snapshot" in r.out
    assert "workers batch 1 to v1.31.14" in r.out


def test_cluster_skip_list_is_honoured_and_listed(prod):
    assert prod("cluster", "skip", "prod", "v1.30.14", "--reason", "CVE-2099-0001").code == 0
    state = prod.write("inv.json", STANDARD)
    doc = prod("plan", "prod", "--to", "v1.31.14", "--state", str(state), "--skip", "1.31.13", "-o", "json").json()
    assert doc["hops"][0]["version"] == "v1.30.13"
    assert doc["skipped_versions"] == ["v1.30.14", "v1.31.13"]
    shown = prod("cluster", "show", "prod", "-o", "json").json()
    assert shown["skipped_versions"][0]["reason"] == "CVE-2099-0001"
    assert prod("cluster", "unskip", "prod", "v1.30.14").code == 0
    doc = prod("plan", "prod", "--to", "v1.31.14", "--state", str(state), "-o", "json").json()
    assert doc["hops"][0]["version"] == "v1.30.14"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--to", "v1.28.3"], 3, "older than the control plane"),
        (["--to", "v1.40.0"], 3, "not in the release catalog"),
        (["--to", "banana"], 2, "invalid version 'banana'"),
        (["--to", "v1.31.14", "--skip", "v1.31.14"], 3, "skip list"),
        (["--to", "v1.31.14", "--max-unavailable", "0"], 2, "--max-unavailable"),
    ],
)
def test_plan_refusals_write_nothing(prod, args, code, message):
    state = prod.write("inv.json", STANDARD)
    before = (_count(prod, "plans"), _count(prod, "observations"))
    r = prod("plan", "prod", "--state", str(state), *args)
    assert r.code == code, (r.out, r.err)
    assert message in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert (_count(prod, "plans"), _count(prod, "observations")) == before


def test_target_equal_is_nothing_to_do(prod):
    state = prod.write("inv.json", STANDARD)
    r = prod("plan", "prod", "--to", "v1.29.10", "--state", str(state))
    assert r.code == 0 and "nothing to do" in r.out
    assert _count(prod, "plans") == 0


def test_intermediate_minor_missing_from_catalog(prod):
    state = prod.write("inv.json", STANDARD)
    catalog = prod.write("catalog.txt", "# mirror\nv1.29.10\nv1.31.2\n")
    r = prod("plan", "prod", "--to", "v1.31.2", "--state", str(state), "--catalog", str(catalog))
    assert r.code == 3 and "v1.30 is missing from the release catalog" in r.err


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([node("cp-1", "v1.30.1", cp=True), node("w-1", "v1.31.0")], "kubelet newer than every apiserver"),
        ([node("cp-1", "v1.31.1", cp=True), node("cp-2", "v1.29.1", cp=True)], "more than one minor apart"),
        ([node("cp-1", "v1.31.1", cp=True), node("w-9", "v1.27.1")], "too old for the newest apiserver (v1.31.1) on: w-9"),  # noqa: E501
    ],
)
def test_impossible_cluster_states(prod, nodes, message):
    state = prod.write("inv.json", inventory_doc(*nodes))
    r = prod("plan", "prod", "--to", "v1.32.1", "--state", str(state))
    assert r.code == 3 and message in r.err
    assert _count(prod, "plans") == 0


def test_upgrade_in_progress_is_levelled(prod):
    nodes = [node("cp-1", "v1.31.2", cp=True), node("cp-2", "v1.30.4", cp=True), node("w-1", "v1.30.4")]
    state = prod.write("inv.json", inventory_doc(*nodes))
    doc = prod("plan", "prod", "--to", "v1.31.2", "--state", str(state), "-o", "json").json()
    assert doc["hops"] == [{"minor": "v1.31", "version": "v1.31.2", "kind": "level"}]
    assert not [s for s in doc["steps"] if s["action"] == "kubeadm-upgrade-apply"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["nodes"][0].pop("kubelet"), "nodes[0].kubelet"),
        (lambda d: d["nodes"][2].update(kubelet="1.x"), "nodes[2].kubelet"),
        (lambda d: d["nodes"][0]["components"].pop("etcd"), "nodes[0].components.etcd"),
        (lambda d: d["nodes"][1].update(ready="yes"), "nodes[1].ready"),
        (lambda d: d["nodes"][3].update(colour="blue"), "nodes[3].colour"),
        (lambda d: d.update(observed_at="yesterday"), "observed_at"),
        (lambda d: d.update(nodes=[]), "nodes"),
    ],
)
def test_malformed_inventory_names_the_field(prod, mutate, field):
    import copy

    doc = copy.deepcopy(STANDARD)
    mutate(doc)
    r = prod("plan", "prod", "--to", "v1.31.14", "--state", str(prod.write("inv.json", doc)))
    assert r.code == 2 and field in r.err, r.err


def test_inventory_not_json_and_for_another_cluster(prod):
    r = prod("plan", "prod", "--to", "v1.31.14", "--state", str(prod.write("inv.json", "{nope")))
    assert r.code == 2 and "not JSON" in r.err
    other = prod.write("other.json", {**STANDARD, "cluster": "staging"})
    r = prod("plan", "prod", "--to", "v1.31.14", "--state", str(other))
    assert r.code == 2 and "inventory is for 'staging'" in r.err


def test_unknown_cluster(cli):
    r = cli("plan", "ghost", "--to", "v1.31.14", "--state", str(cli.write("inv.json", STANDARD)))
    assert r.code == 2 and "no cluster named 'ghost'" in r.err


def test_cluster_lifecycle_and_errors(cli, kubeconfig):
    assert cli("cluster", "list").out.startswith("no clusters registered")
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig), "--context", "prod-admin").code == 0
    dup = cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig))
    assert dup.code == 2 and "already exists" in dup.err
    bad_ctx = cli("cluster", "add", "stage", "--kubeconfig", str(kubeconfig), "--context", "nope")
    assert bad_ctx.code == 2 and "no context named 'nope'" in bad_ctx.err
    broken = cli("cluster", "add", "stage", "--kubeconfig", str(kubeconfig), "--context", "broken")
    assert broken.code == 2 and "not defined" in broken.err
    missing = cli("cluster", "add", "stage", "--kubeconfig", str(cli.tmp / "nope"))
    assert missing.code == 2 and "no such file" in missing.err
    bad_name = cli("cluster", "add", "Prod_1", "--kubeconfig", str(kubeconfig))
    assert bad_name.code == 2 and "invalid cluster name" in bad_name.err
    listed = cli("cluster", "list", "-o", "json").json()
    assert [c["name"] for c in listed] == ["prod"] and listed[0]["context"] == "prod-admin"
    assert cli("cluster", "skip", "prod", "v1.31", "--reason", "x").code == 2
    assert cli("cluster", "remove", "prod").code == 0
    assert cli("cluster", "show", "prod").code == 2
    with sqlite3.connect(cli.db) as conn:
        kinds = [k for (k,) in conn.execute("select kind from events order by id")]
    assert kinds == ["cluster-added", "cluster-removed"]


def test_help_and_version_do_not_need_a_database(cli):
    r = cli("--version")
    assert r.code == 0 and r.out.startswith("upgrader ")
    assert cli("--help").code == 0 and cli("plan", "--help").code == 0
    assert not cli.db.exists()


def test_live_observation_of_an_unreachable_cluster_is_a_clear_error(prod):
    r = prod("plan", "prod", "--to", "v1.31.14")
    assert r.code == 2 and "cannot reach the API at https://127.0.0.1:1" in r.err
    assert _count(prod, "plans") == 0
    assert prod("inventory", "prod").code == 2


def test_kubeconfig_with_non_string_fields_is_bad_input(cli):
    path = cli.write("kc", "apiVersion: v1\nkind: Config\ncurrent-context: [a]\ncontexts: []\nclusters: []\n")
    r = cli("cluster", "add", "prod", "--kubeconfig", str(path))
    assert r.code == 2 and "current-context must be a string" in r.err


def test_absurdly_nested_inventory_is_bad_input(prod):
    r = prod("plan", "prod", "--to", "v1.31.14", "--state", str(prod.write("deep.json", "[" * 100000)))
    assert r.code == 2 and "Traceback" not in r.err


def test_plans_list_and_show_read_back_what_plan_printed(prod):
    state = prod.write("inv.json", STANDARD)
    printed = prod("plan", "prod", "--to", "v1.31.14", "--state", str(state))
    as_json = prod("plan", "prod", "--to", "v1.31.14", "--state", str(state), "-o", "json").json()
    listed = prod("plans", "list", "--cluster", "prod", "-o", "json").json()
    assert [p["id"] for p in listed] == [1, 2] and listed[0]["target"] == "v1.31.14"
    shown = prod("plans", "show", "1")
    assert shown.code == 0 and shown.out == printed.out
    assert prod("plans", "show", "2", "-o", "json").json() == as_json
    missing = prod("plans", "show", "99")
    assert missing.code == 2 and "no plan with id 99" in missing.err


def test_plan_state_takes_an_extended_inventory_and_names_a_malformed_fact(prod):
    facts = {"internal_ip": "10.0.0.10", "os_image": "Debian GNU/Linux 12 (bookworm)",
             "container_runtime": "containerd://1.7.24", "kernel": "6.1.0-28-amd64",
             "taints": [{"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"}],
             "packages": {"status": "observed", "manager": "apt",
                          "repo": {"url": "https://pkgs.k8s.io/core:/stable:/v1.29/deb/", "minor": "v1.29",
                                   "file": "/etc/apt/sources.list.d/kubernetes.list"}}}
    doc = inventory_doc(node("cp-1", "v1.29.10", cp=True, **facts),
                        node("w-1", "v1.29.10", packages={"status": "transport_error", "error": "ssh: timeout"}))
    doc |= {"fingerprint": "0" * 64, "etcd": {"error": "etcd access is not available in this build"},
            "kubeadm_config": {"kubernetes_version": "v1.29.10", "etcd": {"mode": "local"},
                               "image_repository": "registry.k8s.io", "control_plane_endpoint": "10.0.0.5:6443"}}
    r = prod("plan", "prod", "--to", "v1.30", "--state", str(prod.write("inv.json", doc)), "-o", "json")
    assert r.code == 0, r.err
    assert r.json()["source"]["fingerprint"] != "0" * 64  # recomputed from the document, never taken from it
    doc["nodes"][0]["taints"][0]["effect"] = "Sometimes"
    r = prod("plan", "prod", "--to", "v1.30", "--state", str(prod.write("bad.json", doc)))
    assert r.code == 2 and "nodes[0].taints[0].effect" in r.err and r.err.count("\n") == 1, r.err
