"""The inventory use case on fakes: the API's document, each node's packages through its transport,
etcd's members from a callable, merged, validated and recorded; a failure is recorded where it happened."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.unit.builders import cp, inventory, worker
from tests.unit.test_services import World
from upgrader import errors
from upgrader.cluster.observe import cluster_configuration
from upgrader.domain.inventory import inventory_to_dict, parse_inventory
from upgrader.fakes import FakeTransport
from upgrader.nodes import packages
from upgrader.ports import CommandResult, EtcdMember
from upgrader.sandbox.apiserver.seed import cluster_configuration as sandbox_cluster_configuration
from upgrader.services import clusters, plans
from upgrader.services import inventory as service
from upgrader.services.etcd_access import EtcdSession

SOURCES = ("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
           "https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n")
YUM = """[kubernetes]
name=Kubernetes
baseurl=https://pkgs.k8s.io/core:/stable:/v1.30/rpm/
enabled=1
gpgcheck=1
"""
MEMBERS = [
    EtcdMember(id="b2", name="cp-2", peer_urls=("https://10.0.0.11:2380",), client_urls=("https://10.0.0.11:2379",),
               healthy=True, leader=False, db_size=2_000_000, revision=77, version="3.5.15"),
    EtcdMember(id="a1", name="cp-1", peer_urls=("https://10.0.0.10:2380",), client_urls=("https://10.0.0.10:2379",),
               healthy=True, leader=True, db_size=2_100_000, revision=77, version="3.5.15"),
]


def _node(files: dict[str, bytes], managers: tuple[str, ...] = ("apt-get",)) -> FakeTransport:
    """A node with these package managers and files; ``grep -rlsE`` and ``head -c`` work on its files."""
    t = FakeTransport(files=files)

    def version(argv: list[str]) -> CommandResult:
        return CommandResult(0, f"{argv[0]} 1.0\n", "")

    def grep(argv: list[str]) -> CommandResult:
        roots = argv[argv.index("--") + 2:]
        hits = [p for p in t.files if any(p == r or p.startswith(r + "/") for r in roots)
                and (b"pkgs.k8s.io" in t.files[p][0] or b"kubernetes" in t.files[p][0])]
        return CommandResult(0 if hits else 1, "".join(f"{p}\n" for p in sorted(hits)), "")

    def head(argv: list[str]) -> CommandResult:
        path, limit = argv[-1], int(argv[2])
        if path not in t.files:
            return CommandResult(1, "", f"head: cannot open '{path}' for reading: No such file or directory\n")
        return CommandResult(0, t.files[path][0][:limit].decode(), "")

    t.handlers = {m: version for m in managers} | {"grep": grep, "head": head}
    return t


LIVE = inventory(cp("cp-1", "v1.31.4"), cp("cp-2", "v1.31.4"), worker("w-1", "v1.31.4"), worker("w-2", "v1.31.4"))


@pytest.fixture
def live(tmp_path: Path) -> World:
    world = World(tmp_path, live=inventory_to_dict(LIVE))
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None)
    return world


def _with_nodes(world: World, nodes: dict[str, FakeTransport]) -> None:
    """Give the cluster a node transport, as `sandbox up` or SSH settings do."""
    clusters.unregister_cluster(world.app, name="prod")
    clusters.register_cluster(world.app, name="prod", kubeconfig=world.kubeconfig, context=None,
                              transport={"kind": "fake"})
    world.app.transport_factory = lambda record, node: nodes[node]


def test_a_cluster_without_settings_is_probed_over_ssh_defaults_and_unreachable_nodes_are_recorded(live):
    """``cluster add`` alone means ssh with ssh's defaults (as --transport says), for the inventory too:
    every node is probed, in parallel, at the InternalIP this observation found; one nobody set up
    for ssh is a transport_error on that node, and the inventory is still whole and recorded."""
    import threading

    from upgrader.services.wiring import AppContext

    asked: list[tuple[object, str]] = []
    together = threading.Barrier(4, timeout=10)  # all four probes in flight at once: parallel

    def nobody_home(record, node):
        asked.append((record.transport, node))
        together.wait()
        return FakeTransport(unreachable=True)

    live.app.transport_factory = nobody_home
    inv = service.observe_and_record(live.app, cluster="prod", members=lambda: list(MEMBERS))
    assert sorted(asked, key=lambda a: a[1]) == [(None, "cp-1"), (None, "cp-2"), (None, "w-1"), (None, "w-2")]
    assert {n.packages.status for n in inv.nodes if n.packages} == {"transport_error"}
    with live.ledger.unit_of_work() as uow:
        stored = uow.repo.latest_observation("prod")
    assert stored is not None and stored.source == "live" and stored.fingerprint == inv.fingerprint
    assert parse_inventory(dict(stored.inventory)) == inv
    # and what the real wiring makes of "no settings": ssh, with a short connect timeout
    from upgrader.nodes.ssh import SshTransport

    with live.ledger.unit_of_work() as uow:
        record = uow.repo.get_cluster("prod")
    plain = AppContext(unit_of_work_factory=live.ledger.unit_of_work).transport(record, "cp-1", {"nodes": [
        {"name": "cp-1", "internal_ip": "10.9.8.7"}]})
    assert isinstance(plain, SshTransport) and plain.target.address == "10.9.8.7" and plain.connect_timeout <= 5
    assert plain.cluster == "prod"


def test_each_node_reports_its_package_manager_and_repository_and_a_failing_node_only_itself(live):
    apt = {"/etc/apt/sources.list.d/kubernetes.list": SOURCES.encode(),
           "/etc/apt/sources.list.d/debian.list": b"deb http://deb.debian.org/debian bookworm main\n"}
    down = FakeTransport(unreachable=True)
    _with_nodes(live, {"cp-1": _node(apt), "cp-2": _node({"/etc/yum.repos.d/kubernetes.repo": YUM.encode()},
                                                         managers=("dnf",)),
                       "w-1": down, "w-2": _node({}, managers=())})
    inv = service.observe_and_record(live.app, cluster="prod", members=None)
    p = {n.name: n.packages for n in inv.nodes}
    assert p["cp-1"] is not None and p["cp-1"].manager == "apt" and p["cp-1"].repo is not None
    assert (p["cp-1"].repo.minor, p["cp-1"].repo.file) == ("v1.31", "/etc/apt/sources.list.d/kubernetes.list")
    assert p["cp-2"] is not None and p["cp-2"].manager == "dnf" and p["cp-2"].repo is not None
    assert p["cp-2"].repo.url == "https://pkgs.k8s.io/core:/stable:/v1.30/rpm/" and p["cp-2"].repo.minor == "v1.30"
    assert p["w-1"] is not None and p["w-1"].status == "transport_error" and "unreachable" in (p["w-1"].error or "")
    assert p["w-2"] is not None and (p["w-2"].status, p["w-2"].manager, p["w-2"].repo) == ("observed", None, None)
    assert inv.etcd is None  # members=None leaves etcd out


def test_commands_are_argv_lists_and_bounded(live):
    node = _node({"/etc/apt/sources.list.d/kubernetes.list": SOURCES.encode() + b"#" * 200_000})
    found = packages.probe(node)
    assert found.repo is not None and found.repo.minor == "v1.31"
    heads = [argv for argv in node.ran if argv[0] == "head"]
    assert heads == [["head", "-c", str(packages.MAX_FILE), "--", "/etc/apt/sources.list.d/kubernetes.list"]]
    assert all(isinstance(a, str) for argv in node.ran for a in argv)


def test_a_node_command_that_times_out_is_a_transport_error():
    node = FakeTransport(handlers={"apt-get": lambda argv: CommandResult(124, "", "timed out after 10s: apt-get\n")})
    with pytest.raises(errors.TransportError, match="timed out"):
        packages.probe(node)


@pytest.mark.parametrize(("text", "url", "minor"), [
    (SOURCES, "https://pkgs.k8s.io/core:/stable:/v1.31/deb/", "v1.31"),
    ("# deb https://pkgs.k8s.io/core:/stable:/v1.29/deb/ /\n" + SOURCES, "https://pkgs.k8s.io/core:/stable:/v1.31/deb/",
     "v1.31"),
    ("Types: deb\nURIs: https://pkgs.k8s.io/core:/stable:/v1.32/deb/\nSuites: /\n",
     "https://pkgs.k8s.io/core:/stable:/v1.32/deb/", "v1.32"),
    ("deb https://apt.kubernetes.io/ kubernetes-xenial main\n", "https://apt.kubernetes.io/", None),
    ("deb http://deb.debian.org/debian bookworm main\n", None, None),
    # a private mirror's login is never recorded or shown
    ("deb [signed-by=/k.gpg] https://deploy:s3cr3t@mirror.example/kubernetes/core:/stable:/v1.31/deb/ /\n",
     "https://mirror.example/kubernetes/core:/stable:/v1.31/deb/", None),
    ("Types: deb\nURIs: https://token@pkgs.k8s.io/core:/stable:/v1.30/deb/\nSuites: /\n",
     "https://pkgs.k8s.io/core:/stable:/v1.30/deb/", "v1.30"),
])
def test_apt_sources_name_the_repository_and_its_minor(text, url, minor):
    repo = packages.apt_repo_in(text, "/etc/apt/sources.list.d/x.list")
    assert (repo.url if repo else None, repo.minor if repo else None) == (url, minor)


# -- etcd members ----------------------------------------------------------------------------------

def test_members_are_merged_sorted_by_name(live):
    inv = service.observe(live.app, cluster="prod", members=lambda: list(MEMBERS))
    assert inv.etcd is not None and inv.etcd.members is not None
    assert [(m.name, m.leader, m.db_size) for m in inv.etcd.members] == [("cp-1", True, 2_100_000),
                                                                         ("cp-2", False, 2_000_000)]
    assert inventory_to_dict(inv)["etcd"]["members"][0] == {
        "id": "a1", "name": "cp-1", "peer_urls": ["https://10.0.0.10:2380"], "client_urls": ["https://10.0.0.10:2379"],
        "leader": True, "healthy": True, "db_size": 2_100_000, "revision": 77, "version": "3.5.15", "error": None}


@pytest.mark.parametrize(("failure", "recorded"), [
    (errors.ClusterUnreachableError("no etcd endpoint answered (https://10.0.0.10:2379)"), "no etcd endpoint answered"),
    (NotImplementedError("etcd access is being built"), "etcd access is not available"),
    (errors.EtcdToolError("etcdctl is not installed\nsecond line"), "etcdctl is not installed"),
    (RuntimeError("password=hunter2 in a bug"), "RuntimeError: password=***"),
])
def test_an_etcd_failure_is_recorded_not_raised(live, failure, recorded):
    def members() -> list[EtcdMember]:
        raise failure

    inv = service.observe_and_record(live.app, cluster="prod", members=members)
    assert inv.etcd is not None and inv.etcd.members is None and (inv.etcd.error or "").startswith(recorded)
    assert "\n" not in (inv.etcd.error or "") and "hunter2" not in (inv.etcd.error or "")


def test_the_default_etcd_access_never_crashes_the_inventory(live):
    inv = service.observe_and_record(live.app, cluster="prod")  # etcd_session, whatever state it is in
    assert inv.etcd is not None and (inv.etcd.members is not None or inv.etcd.error)


def test_a_live_plan_uses_the_same_observation_as_the_inventory_but_never_opens_etcd(live):
    opened = []

    @contextmanager
    def session(record, inventory):
        opened.append(record.name)
        yield EtcdSession(tool=None, endpoints=[], tls=None)  # type: ignore[arg-type]

    live.app.etcd_session_factory = session
    reached: list[str] = []
    probe = live.app.transport
    live.app.transport = lambda record, node, inventory=None: reached.append(node) or probe(record, node, inventory)
    result = plans.make_plan(live.app, plans.PlanRequest(cluster="prod", target="v1.32", state=None, catalog=None))
    assert opened == []  # a read-only plan never copies etcd's client certificate
    assert reached == []  # nor logs into a node
    inv = service.observe(live.app, cluster="prod", members=lambda: list(MEMBERS))
    assert inv.etcd is not None and inv.etcd.members  # the inventory did see etcd
    assert result.plan.source_fingerprint == inv.fingerprint


def test_an_unreachable_api_is_still_an_error(live):
    from upgrader.fakes import FakeClusterApi

    live.api = FakeClusterApi(unreachable="cluster prod: cannot reach the API at https://127.0.0.1:1")
    with pytest.raises(errors.ClusterUnreachableError):
        service.observe_and_record(live.app, cluster="prod", members=None)
    with live.ledger.unit_of_work() as uow:
        assert uow.repo.latest_observation("prod") is None


# -- kubeadm's ClusterConfiguration ----------------------------------------------------------------

@pytest.mark.parametrize("version", ["v1.30.6", "v1.31.4"])  # v1beta3 and v1beta4
def test_the_cluster_configuration_kubeadm_uploads_is_read(version):
    text = sandbox_cluster_configuration(version, cluster_name="kubernetes", control_plane_endpoint="10.0.0.5:6443")
    assert cluster_configuration(text) == {"kubernetes_version": version, "etcd": {"mode": "local"},
                                           "image_repository": "registry.k8s.io",
                                           "control_plane_endpoint": "10.0.0.5:6443"}


def test_external_etcd_and_odd_configurations():
    external = ("kind: ClusterConfiguration\nkubernetesVersion: v1.31.4\netcd:\n  external:\n    endpoints:\n"
                "    - https://10.0.1.1:2379\n    - https://10.0.1.2:2379\n    caFile: /etc/etcd/ca.crt\n")
    assert cluster_configuration(external) == {
        "kubernetes_version": "v1.31.4", "etcd": {"mode": "external", "endpoints": ["https://10.0.1.1:2379",
                                                                                  "https://10.0.1.2:2379"]},
        "image_repository": None, "control_plane_endpoint": None}
    assert "no ClusterConfiguration" in cluster_configuration(None)["error"]
    assert "not YAML" in cluster_configuration("a: [\n")["error"]
    assert "not a mapping" in cluster_configuration("- a\n")["error"]
    assert "kubernetes_version" in cluster_configuration("kubernetesVersion: latest\n")["error"]


def test_the_table_shows_the_new_columns_members_and_fingerprint(live):
    from upgrader.cli.plan import render_inventory

    inv = service.observe(live.app, cluster="prod", members=lambda: list(MEMBERS))
    text = render_inventory(inv)
    header = text.splitlines()[0].split()
    assert header[-4:] == ["INTERNAL-IP", "RUNTIME", "PACKAGES", "TAINTS"]
    assert "transport error" in text and "ETCD MEMBER" in text and "leader" in text
    assert text.endswith(f"fingerprint: {inv.fingerprint}")
    failed = service.observe(live.app, cluster="prod", members=lambda: (_ for _ in ()).throw(OSError("refused")))
    assert "etcd: refused" in render_inventory(failed)


def test_node_addresses_come_from_the_observation_just_read_not_the_last_stored_one(live):
    """A first inventory of an SSH cluster has no stored observation: the transports must be given
    the live document, whose InternalIPs say where the nodes are."""
    clusters.unregister_cluster(live.app, name="prod")
    clusters.register_cluster(live.app, name="prod", kubeconfig=live.kubeconfig, context=None,
                              transport={"kind": "ssh"})
    given: dict[str, object] = {}

    def transport(record, node, inventory=None):
        given[node] = inventory
        return FakeTransport(unreachable=True)

    live.app.transport = transport  # the composition root's own method, recording what it is given
    service.observe(live.app, cluster="prod", members=None)
    assert set(given) == {n.name for n in LIVE.nodes}
    for doc in given.values():
        assert isinstance(doc, dict) and [n["name"] for n in doc["nodes"]] == sorted(n.name for n in LIVE.nodes)
