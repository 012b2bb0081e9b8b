"""The sandbox node's command table: every wrapper resolves, each command loads only its own module.

The table names functions as strings (so a command imports only its tool), which a typo or a
renamed function would break only when that command runs: these tests load every entry instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from upgrader.sandbox.node import wrappers
from upgrader.sandbox.node.tools import dispatch

REPO = Path(__file__).resolve().parents[2]
TOOLS = "upgrader.sandbox.node.tools."


@pytest.mark.parametrize("rhel", [False, True])
def test_every_wrapper_resolves_to_a_function_on_either_os(rhel: bool) -> None:
    assert set(dispatch.names()) == set(wrappers.ALL)
    for name in dispatch.names():
        spec = dispatch.entry(name, rhel=rhel)
        assert spec is not None, name
        assert callable(dispatch.load(name, spec)), name


def test_the_other_os_package_manager_is_refused_or_missing_and_etcdctl_only_when_lent() -> None:
    assert {dispatch.entry(n) for n in dispatch.RHEL_ONLY} == {dispatch.REFUSE}
    assert {dispatch.entry(n, rhel=True) for n in dispatch.DEBIAN_ONLY} == {dispatch.MISSING}
    assert dispatch.entry("dnf", rhel=True) == "dnf:dnf"
    assert dispatch.entry("apt-get") == "apt:apt_get"
    assert dispatch.entry("etcdctl", etcd_tools=False) == dispatch.MISSING
    assert dispatch.entry("etcdctl") == "etcdctl:main"
    assert dispatch.entry("reboot", rhel=True) == dispatch.REFUSE
    assert dispatch.entry("etcdutl") is None


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The command run as a wrapper runs it; the last line of stderr lists the upgrader modules it loaded."""
    env = {**os.environ, "UPGRADER_SANDBOX_NODE_ROOT": str(tmp_path), "UPGRADER_SANDBOX_NODE": "n1",
           "PYTHONPATH": str(REPO)}
    env.pop("UPGRADER_SANDBOX_DIR", None)
    probe = ("import runpy, sys; sys.argv = ['tools', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('upgrader.sandbox.node.tools', run_name='__main__')\n"
             "except SystemExit as e:\n"
             "    print(' '.join(sorted(m for m in sys.modules if m.startswith('upgrader'))), file=sys.stderr)\n"
             "    raise")
    return subprocess.run([sys.executable, "-P", "-c", probe, *argv], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def _loaded(done: subprocess.CompletedProcess[str]) -> set[str]:
    return set(done.stderr.strip().splitlines()[-1].split())


def test_a_command_loads_only_its_tool_and_a_refusal_loads_none(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("cp-1\n")
    done = _run(tmp_path, "hostname")
    assert (done.returncode, done.stdout) == (0, "cp-1\n")
    tools = {m for m in _loaded(done) if m.startswith(TOOLS)}
    assert TOOLS + "host_commands" in tools
    assert not tools & {TOOLS + "kubeadm", TOOLS + "ctr", TOOLS + "crictl", TOOLS + "etcdctl", TOOLS + "dnf"}
    assert "upgrader.ports" not in _loaded(done)

    refused = _run(tmp_path, "reboot")
    assert refused.returncode == 127
    assert "reboot: not available on sandbox node n1" in refused.stderr
    assert {m for m in _loaded(refused) if m.startswith(TOOLS)} == {TOOLS + "dispatch", TOOLS + "guards"}


def test_an_unknown_command_gets_the_usage_with_every_name(tmp_path: Path) -> None:
    done = _run(tmp_path, "no-such-tool")
    assert done.returncode == 2
    assert "usage: python -m upgrader.sandbox.node.tools {" in done.stderr
    assert "apt-get,apt-key,apt-mark" in done.stderr and "rpm" in done.stderr
