"""Input files are bounded: only regular files, under a cap per kind, and echoed input is cut short.

Through the real entry point: ``/dev/zero``, a FIFO, a directory or an oversized file given as
``--kubeconfig``, ``--state`` or ``--catalog`` is refused with exit 2 and one line, at once, and
never read whole; a huge bad field is named but not echoed whole.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.cli.conftest import inventory_doc, node
from upgrader.inputs import CAPS

NOT_REGULAR = {"/dev/zero": "a character device", "fifo": "a FIFO", "dir": "a directory"}


@pytest.fixture
def prod(cli, kubeconfig):
    assert cli("cluster", "add", "prod", "--kubeconfig", str(kubeconfig)).code == 0
    return cli


def _special(cli, which: str) -> str:
    if which == "fifo":
        path = cli.tmp / "fifo"
        os.mkfifo(path)  # nobody ever writes to it: a read would hang forever
        return str(path)
    if which == "dir":
        (cli.tmp / "dir").mkdir()
        return str(cli.tmp / "dir")
    return which


def _sparse(cli, name: str, size: int) -> str:
    """A file of ``size`` bytes that takes no disk space (and would take ``size`` of memory to read)."""
    path = cli.tmp / name
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


@pytest.mark.parametrize("which", list(NOT_REGULAR))
@pytest.mark.parametrize("flag", ["--state", "--catalog"])
def test_plan_refuses_an_input_that_is_not_a_regular_file(prod, flag, which):
    state = prod.write("inv.json", inventory_doc(node("cp-1", "v1.30.6", cp=True)))
    args = ["--state", str(state)] if flag == "--catalog" else []
    r = prod("plan", "prod", "--to", "v1.31", flag, _special(prod, which), *args)
    assert r.code == 2, r
    assert f"not a regular file ({NOT_REGULAR[which]})" in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize("which", list(NOT_REGULAR))
def test_cluster_add_refuses_a_kubeconfig_that_is_not_a_regular_file(cli, which):
    path = _special(cli, which)
    r = cli("cluster", "add", "prod", "--kubeconfig", path)
    assert r.code == 2, r
    assert r.err.startswith(f"error: kubeconfig {path}: not a regular file ({NOT_REGULAR[which]})")


@pytest.mark.parametrize(("kind", "argv"), [
    ("inventory", ["plan", "prod", "--to", "v1.31", "--state"]),
    ("catalog", ["plan", "prod", "--to", "v1.31", "--catalog"]),
    ("kubeconfig", ["cluster", "add", "other", "--kubeconfig"]),
])
def test_a_file_over_its_cap_is_refused_before_it_is_read(prod, kind, argv):
    big = _sparse(prod, f"big-{kind}", CAPS[kind] + 1)
    r = prod(*argv, big)
    assert r.code == 2, r
    assert f"{kind} {big}: " in r.err and "limit for a " + kind in r.err


def test_a_huge_field_is_named_not_echoed(prod):
    doc = inventory_doc(node("cp-1", "v1.30.6", cp=True), node("w-1", "v1.30.6", kubelet="x" * 50_000_000))
    r = prod("plan", "prod", "--to", "v1.31", "--state", str(prod.write("inv.json", json.dumps(doc))))
    assert r.code == 2
    assert "nodes[1].kubelet" in r.err and "(50000000 characters)" in r.err
    assert len(r.err) < 400


def test_a_huge_cluster_name_is_cut_short_in_the_message(cli, kubeconfig):
    r = cli("cluster", "add", "p" * 100_000, "--kubeconfig", str(kubeconfig))
    assert r.code == 2 and "invalid cluster name" in r.err and "(100000 characters)" in r.err
    assert len(r.err) < 400


@pytest.mark.parametrize(("what", "text"), [
    ("an integer of 5000 digits", "x: " + "9" * 5000 + "\n"),
    ("20000 open brackets", "[" * 20000 + "\n"),
    ("an impossible date", "x: 2001-13-45\n"),
])
def test_a_kubeconfig_that_breaks_the_yaml_parser_is_bad_input(cli, what, text):
    r = cli("cluster", "add", "prod", "--kubeconfig", str(cli.write("kc", text)))
    assert (r.code, "not valid YAML" in r.err, r.err.count("\n")) == (2, True, 1), (what, r)


def test_an_inventory_with_a_5000_digit_integer_is_bad_input(prod):
    r = prod("plan", "prod", "--to", "v1.31", "--state", str(prod.write("inv.json", '{"cluster": ' + "9" * 5000 + "}")))
    assert r.code == 2 and r.err.startswith("error: inventory ") and r.err.count("\n") == 1, r
