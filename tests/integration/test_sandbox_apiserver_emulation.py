"""The sandbox API server as its own process, started the way the simulated kubelet starts it from a
manifest's ``--emulated-version``: a value outside the binary's range stops it at start-up like the real
kube-apiserver (exit 1, component-base's message); an allowed one shows in /version from v1.33 on."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request

from tests.integration.sandbox_helpers import REPO, apiserver_process

NOWHERE = "http://127.0.0.1:1"  # /version never reaches etcd


def _start(version: str, emulated: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upgrader.sandbox.apiserver", "--etcd-endpoints", NOWHERE,
                           "--git-version", version, "--emulated-version", emulated],
                          cwd=REPO, capture_output=True, text=True, timeout=30, check=False)


def test_an_emulated_version_outside_the_range_stops_the_server() -> None:
    for version, emulated, why in [("v1.34.2", "kube=1.30", "emulation version 1.30 is not between [1.31, 1.34.0]"),
                                   ("v1.32.3", "1.30", "emulation version 1.30 is not between [1.31, 1.32.0]"),
                                   ("v1.31.4", "1.32", "emulation version 1.32 is not between [1.31, 1.31.0]")]:
        done = _start(version, emulated)
        assert done.returncode == 1 and done.stdout == "", (version, done.stdout)
        assert re.fullmatch(rf'E\d{{4}} [\d:.]+ +1 run\.go:72\] "command failed" err="{re.escape(why)}"\n',
                            done.stderr), done.stderr
    done = _start("v1.30.6", "1.30")
    assert (done.returncode, done.stderr) == (1, "Error: unknown flag: --emulated-version\n")


def test_an_allowed_emulated_version_shows_in_version_from_133() -> None:
    with apiserver_process([NOWHERE], prefix="/x", version="v1.34.2", extra=("--emulated-version", "kube=1.31")) \
            as (_, url), urllib.request.urlopen(f"{url}/version", timeout=5) as r:
        info = json.loads(r.read())
    assert (info["gitVersion"], info["emulationMajor"], info["emulationMinor"]) == ("v1.34.2", "1", "31")
    with apiserver_process([NOWHERE], prefix="/x", version="v1.32.3", extra=("--emulated-version", "1.31")) \
            as (_, url), urllib.request.urlopen(f"{url}/version", timeout=5) as r:
        info = json.loads(r.read())
    assert info["gitVersion"] == "v1.32.3" and "emulationMinor" not in info, "no emulation fields before v1.33"
