"""Preflight's pure rules and parsers: examples from real output, and properties over generated input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.builders import cp, inventory, worker
from upgrader.data import builtin_catalog
from upgrader.domain import drain_budgets, host_checks, preflight
from upgrader.domain.host_checks import DiskFacts
from upgrader.domain.node_output import (
    DeprecatedApiRequest,
    kubeadm_backups,
    parse_cert_expiration,
    parse_deprecated_requests,
    parse_df,
)
from upgrader.domain.preflight import CORDON_ANNOTATION, Severity, Status
from upgrader.domain.versions import Minor, Version
from upgrader.ports import EtcdMember

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
# as kubeadm v1.31 prints it (kubernetes/kubernetes cmd/kubeadm/app/cmd/certs.go: a tabwriter table)
CHECK_EXPIRATION = """\
[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...
[check-expiration] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.

CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED
admin.conf                 Dec 20, 2026 09:03 UTC   18d             ca                      no
apiserver                  Aug 19, 2027 09:03 UTC   260d            ca                      no
etcd-peer                  Nov 30, 2026 09:03 UTC   <invalid>       etcd-ca                 no
!MISSING! front-proxy-client

CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED
ca                      Aug 17, 2035 09:03 UTC   8y              no
etcd-ca                 Aug 17, 2035 09:03 UTC   8y              no
"""
DF = """\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 29276008  77114904      28% /
tmpfs              1000 0 1000 0% /mnt/a dir with spaces
"""
METRICS = """\
# HELP apiserver_requested_deprecated_apis [STABLE] Gauge of deprecated APIs that have been requested
# TYPE apiserver_requested_deprecated_apis gauge
apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",removed_release="1.32",\
resource="flowschemas",subresource="",version="v1beta3"} 1
apiserver_requested_deprecated_apis{group="policy",removed_release="1.25",\
resource="podsecuritypolicies",subresource="",version="v1beta1"} 0
apiserver_requested_deprecated_apis{group="batch",resource="cronjobs",subresource="",version="v1beta1"} 1
apiserver_request_total{code="200"} 5
"""


def test_cert_expiration_table_is_read_as_kubeadm_prints_it() -> None:
    rows, missing = parse_cert_expiration(CHECK_EXPIRATION)
    assert [(r.name, r.authority) for r in rows] == [("admin.conf", False), ("apiserver", False), ("etcd-peer", False),
                                                     ("ca", True), ("etcd-ca", True)]
    assert rows[0].expires == datetime(2026, 12, 20, 9, 3, tzinfo=UTC) and rows[2].residual == "<invalid>"
    assert missing == ["front-proxy-client"]
    check = host_checks.certificates(rows, missing, now=NOW, node="cp-1")
    assert check.blocks and check.reason == "CertificatesExpiring"
    assert check.details["certificates"] == ["etcd-peer", "admin.conf"]  # the expired one first
    assert "etcd-peer expired 2026-11-30" in check.message


@given(st.integers(min_value=-400, max_value=4000))
def test_a_certificate_fails_exactly_when_it_expires_within_30_days(minutes_ahead: int) -> None:
    expires = NOW + timedelta(days=30) + timedelta(minutes=minutes_ahead - 200)
    line = f"apiserver  {expires:%b %d, %Y %H:%M} UTC  100d  ca  no"
    rows, _ = parse_cert_expiration(line)
    assert len(rows) == 1 and rows[0].expires == expires
    check = host_checks.certificates(rows, [], now=NOW, node="cp-1")
    assert check.blocks == (expires - NOW < timedelta(days=30))


@given(st.text())
def test_parsers_never_raise_on_any_text(text: str) -> None:
    parse_cert_expiration(text)
    parse_df(text)
    kubeadm_backups(text)
    parse_deprecated_requests(text)
    parse_deprecated_requests("apiserver_requested_deprecated_apis" + text)


def test_df_rows_in_bytes_even_with_spaces_in_the_mount_point() -> None:
    rows = parse_df(DF)
    assert [(r.filesystem, r.available, r.mount) for r in rows] == [
        ("/dev/vda", 77114904 * 1024, "/"), ("tmpfs", 1000 * 1024, "/mnt/a dir with spaces")]


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=1, max_value=2**38))
def test_disk_rule_wants_twice_the_database(available: int, db: int) -> None:
    check = host_checks.disk_space([DiskFacts("cp-1:/var/lib/etcd", available, db)])
    assert check.blocks == (available < 2 * db)
    assert check.reason == ("DiskSpaceLow" if available < 2 * db else "DiskSpaceSufficient")


def test_disk_rule_fails_when_a_size_is_unknown_and_says_why() -> None:
    check = host_checks.disk_space([DiskFacts("cp-1:/var/lib/etcd", None, None, "No route to host")])
    assert check.blocks and check.reason == "DiskSpaceUnknown" and "No route to host" in check.message


def test_backups_pile_up_past_three_as_a_warning() -> None:
    listing = "kubeadm-backup-etcd-2026-01-01-10-00-00\nkubeadm-backup-manifests-2026-01-01-10-00-00\nother\n"
    assert kubeadm_backups(listing) == ["kubeadm-backup-etcd-2026-01-01-10-00-00",
                                        "kubeadm-backup-manifests-2026-01-01-10-00-00"]
    few = host_checks.kubeadm_backups({"cp-1": ["a", "b", "c"]})
    many = host_checks.kubeadm_backups({"cp-1": ["a", "b", "c", "d"], "cp-2": []})
    assert few.status is Status.PASSED
    assert many.status is Status.FAILED and many.severity is Severity.WARNING and not many.blocks
    assert "cp-1 has 4" in many.message


def test_deprecated_requests_from_metrics_text() -> None:
    found = parse_deprecated_requests(METRICS)
    assert found == [DeprecatedApiRequest("batch", "v1beta1", "cronjobs", "", ""),
                     DeprecatedApiRequest("flowcontrol.apiserver.k8s.io", "v1beta3", "flowschemas", "", "1.32")]
    # the label says 1.32; the table says batch/v1beta1 went in 1.25
    at_131 = host_checks.removed_apis(found, Minor(1, 31))
    assert at_131.blocks and "cronjobs.batch/v1beta1 (removed in v1.25)" in at_131.message
    assert "flowschemas" not in at_131.message
    at_132 = host_checks.removed_apis(found, Minor(1, 32))
    assert "flowschemas.flowcontrol.apiserver.k8s.io/v1beta3 (removed in v1.32)" in at_132.message
    assert not host_checks.removed_apis(found[1:], Minor(1, 31)).blocks


def test_metric_labels_with_escapes_are_read() -> None:
    text = 'apiserver_requested_deprecated_apis{group="a\\"b",version="v1",resource="r\\\\s",subresource=""} 1\n'
    assert parse_deprecated_requests(text) == [DeprecatedApiRequest('a"b', "v1", "r\\s", "", "")]


def _member(name: str, *, healthy: bool | None = True, leader: bool = False, error: str | None = None) -> EtcdMember:
    return EtcdMember(id=name, name=name, peer_urls=(), client_urls=(), healthy=healthy, leader=leader, error=error)


def test_etcd_rules() -> None:
    cps = ["cp-1", "cp-2", "cp-3"]
    good = [_member("cp-1", leader=True), _member("cp-2"), _member("cp-3")]
    assert preflight.etcd_health(good, cps).reason == "EtcdHealthy"
    down = [_member("cp-1", leader=True), _member("cp-2"), _member("cp-3", healthy=None, error="connection refused")]
    check = preflight.etcd_health(down, cps)
    assert check.blocks and check.reason == "EtcdMemberUnhealthy" and "cp-3" in check.message
    assert "connection refused" in check.message
    assert preflight.etcd_health([_member("cp-1"), _member("cp-2"), _member("cp-3")], cps).reason == "EtcdNoLeader"
    two = [_member("cp-1", leader=True), _member("cp-2", leader=True), _member("cp-3")]
    assert preflight.etcd_health(two, cps).reason == "EtcdSeveralLeaders"
    stray = [_member("cp-1", leader=True), _member("old-cp")]
    mismatch = preflight.etcd_health(stray, ["cp-1", "cp-2"])
    assert mismatch.reason == "EtcdMembersMismatch"
    assert "old-cp" in mismatch.message and "cp-2" in mismatch.message
    assert preflight.etcd_health(stray, ["cp-1", "cp-2"], external=True).reason == "EtcdHealthy"


def _pod(name: str, labels: dict[str, str], *, ns: str = "demo", phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}, "status": {"phase": phase}}


def _pdb(spec: dict, allowed: int | None, *, ns: str = "demo") -> dict:
    pdb = {"metadata": {"name": "db", "namespace": ns}, "spec": {"selector": {"matchLabels": {"app": "db"}}, **spec}}
    if allowed is not None:
        pdb["status"] = {"disruptionsAllowed": allowed}
    return pdb


@given(replicas=st.integers(min_value=0, max_value=5), allowed=st.one_of(st.none(), st.integers(0, 5)),
       spec=st.sampled_from([{"minAvailable": 1}, {"minAvailable": "100%"}, {"maxUnavailable": 0},
                             {"maxUnavailable": 1}, {"minAvailable": "50%"}]),
       other_ns=st.booleans())
def test_pdb_blocks_a_drain_exactly_by_the_rule(replicas: int, allowed: int | None, spec: dict,
                                                other_ns: bool) -> None:
    pods = [_pod(f"db-{i}", {"app": "db"}, ns="other" if other_ns else "demo") for i in range(replicas)]
    pods.append(_pod("web", {"app": "web"}))
    blocks = drain_budgets.pdb_blocks(_pdb(spec, allowed), pods) is not None
    guarded = 0 if other_ns else replicas
    keeps_its_only_pod = guarded == 1 and spec in (
        {"minAvailable": 1}, {"minAvailable": "100%"}, {"maxUnavailable": 0})
    assert blocks == (guarded > 0 and (allowed == 0 or keeps_its_only_pod))


def test_pdb_check_names_the_blocking_budgets() -> None:
    pods = [_pod("db-0", {"app": "db"}), _pod("done", {"app": "db"}, phase="Succeeded")]
    check = drain_budgets.disruption_budgets([_pdb({"minAvailable": 1}, 1)], pods)
    assert check.blocks and check.details["budgets"] == ["demo/db (a single replica it must keep available)"]


@given(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"])),
       st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["1", "2"])))
def test_match_labels_is_a_subset_test(selector: dict, labels: dict) -> None:
    expected = all(labels.get(k) == v for k, v in selector.items())
    assert drain_budgets.selector_matches({"matchLabels": selector}, labels) == expected
    assert drain_budgets.selector_matches(None, labels) is False
    assert drain_budgets.selector_matches({}, labels) is True


def test_match_expressions() -> None:
    sel = {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db", "cache"]},
                                {"key": "canary", "operator": "DoesNotExist"}]}
    assert drain_budgets.selector_matches(sel, {"tier": "db"})
    assert not drain_budgets.selector_matches(sel, {"tier": "db", "canary": "1"})
    assert not drain_budgets.selector_matches(sel, {"tier": "web"})


def test_foreign_cordons_are_those_without_upgraders_annotation() -> None:
    nodes = [{"metadata": {"name": "w-1"}, "spec": {"unschedulable": True}},
             {"metadata": {"name": "w-2", "annotations": {CORDON_ANNOTATION: "run-7"}},
              "spec": {"unschedulable": True}},
             {"metadata": {"name": "w-3"}, "spec": {}}]
    check = preflight.cordoned_nodes(nodes)
    assert check.status is Status.FAILED and check.severity is Severity.WARNING and not check.blocks
    assert check.details["nodes"] == ["w-1"]


def test_api_and_control_plane_readiness() -> None:
    body = "[+]ping ok\n[-]poststarthook/rbac/bootstrap-roles failed: not finished\nreadyz check failed\n"
    check = preflight.api_ready(500, body)
    assert check.blocks and "poststarthook/rbac/bootstrap-roles" in check.message
    assert not preflight.api_ready(200, "ok").blocks
    cp_check = preflight.control_plane_ready(["cp-1", "cp-2"], {"cp-1": True, "cp-2": False})
    assert cp_check.blocks and cp_check.reason == "ControlPlaneNotReady" and cp_check.details["nodes"] == ["cp-2"]


def test_skew_now_and_along_the_plan() -> None:
    catalog = builtin_catalog()
    ok = inventory(cp("cp-1", "v1.30.6"), worker("w-1", "v1.30.6"))
    check, plan = preflight.skew(ok, Minor(1, 31), catalog)
    assert check.reason == "SkewOk" and plan is not None and plan.target.line == Minor(1, 31)
    backwards, _ = preflight.skew(ok, Version(1, 29, 0), catalog)
    assert backwards.blocks and backwards.reason == "NoUpgradePath"
    broken = inventory(cp("cp-1", "v1.30.6"), worker("w-1", "v1.31.0"))
    violated, _ = preflight.skew(broken, Minor(1, 31), catalog)
    assert violated.blocks and violated.reason == "SkewViolated"
    same, _ = preflight.skew(ok, Version(1, 30, 6), catalog)
    assert same.reason == "AlreadyAtTarget" and not same.blocks


def test_overrides_turn_only_failed_checks_into_ignored() -> None:
    checks = [preflight.failed("etcd", "EtcdNoLeader", "x"), preflight.passed("skew", "SkewOk", "y")]
    after = preflight.apply_overrides(checks, ["etcd", "skew"])
    assert [c.status for c in after] == [Status.IGNORED, Status.PASSED]
    assert not preflight.refused(after) and preflight.refused(checks)
    assert preflight.unknown_checks(["etcd", "nope"]) == ["nope"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


label_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(group=label_text, version=label_text.filter(bool), resource=label_text.filter(bool), sub=label_text,
       removed=st.sampled_from(["", "1.25", "1.32"]), value=st.sampled_from(["1", "2", "1e0", "0", "NaN"]))
def test_a_deprecated_api_series_round_trips_through_the_text_format(group: str, version: str, resource: str,
                                                                     sub: str, removed: str, value: str) -> None:
    labels = {"group": group, "removed_release": removed, "resource": resource, "subresource": sub, "version": version}
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    found = parse_deprecated_requests(f"apiserver_requested_deprecated_apis{{{body}}} {value}\n")
    counted = value not in ("0", "NaN")
    assert found == ([DeprecatedApiRequest(group, version, resource, sub, removed)] if counted else [])
