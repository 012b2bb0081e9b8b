"""The API server as its own process (``python -m upgrader.sandbox.apiserver``): restarts and etcd failover."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.integration.sandbox_helpers import (
    NODES,
    VERSION,
    apiserver_process,
    etcd_cluster,
    needs_etcd,
    stop_process,
)
from upgrader.sandbox.apiserver.seed import seed_cluster
from upgrader.sandbox.apiserver.storage import Store
from upgrader.sandbox.etcd.kv import EtcdKV
from upgrader.sandbox.etcd.members import stop_member

pytestmark = [pytest.mark.etcd, needs_etcd]


def _call(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
            code = resp.status
    except urllib.error.HTTPError as e:
        text, code = e.read().decode(), e.code
    try:
        return code, json.loads(text)
    except ValueError:
        return code, text


def test_data_survives_an_apiserver_restart_and_sigterm_is_clean(tmp_path):
    with etcd_cluster(tmp_path, members=1) as members:
        endpoints = [m.client_url for m in members]
        with apiserver_process(endpoints, prefix="/registry") as (proc, url):
            assert _call(url + "/version")[1]["gitVersion"] == VERSION
            code, created = _call(url + "/api/v1/namespaces", "POST", {"metadata": {"name": "keep"}})
            assert code == 201
            assert stop_process(proc) == 0
            assert proc.stdout is None or proc.stdout.closed
        with apiserver_process(endpoints, prefix="/registry", version="v1.31.4") as (_, url2):
            code, again = _call(url2 + "/api/v1/namespaces/keep")
            assert code == 200 and again["metadata"]["uid"] == created["metadata"]["uid"]
            assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
            assert _call(url2 + "/version")[1]["minor"] == "31"


def test_only_the_listening_line_goes_to_stdout_and_unready_flag(tmp_path):
    with etcd_cluster(tmp_path, members=1) as members, apiserver_process(
            [m.client_url for m in members], prefix="/registry", extra=("--unready", "--node-name", "cp-1")) as (
            proc, url):
        code, body = _call(url + "/readyz")
        assert code == 500 and "readyz check failed" in body
        assert _call(url + "/livez") == (200, "ok")
        stop_process(proc)


def test_api_keeps_working_when_one_etcd_member_dies(tmp_path):
    with etcd_cluster(tmp_path, members=3) as members:
        store = Store(EtcdKV([m.client_url for m in members]))
        seed_cluster(store, nodes=NODES, version=VERSION, cluster_name="kubernetes")
        with apiserver_process([m.client_url for m in members], prefix="/registry") as (_, url):
            assert len(_call(url + "/api/v1/nodes")[1]["items"]) == 4
            stop_member(members[0])  # the first endpoint: the server must fail over
            code, body = _call(url + "/api/v1/nodes")
            assert code == 200 and len(body["items"]) == 4
            assert _call(url + "/api/v1/namespaces", "POST", {"metadata": {"name": "after"}})[0] == 201
            assert _call(url + "/readyz")[0] == 200
