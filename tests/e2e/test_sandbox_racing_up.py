"""Racing `upgrader sandbox up` commands on one new name, through the real CLI and supervisor.

Exactly one creates the sandbox (exit 0); the others exit 2 at once, told it is being created (by
whom) or already running; `down` then frees the name for the next round. Twenty rounds of the same
race through the real `up` code, without a supervisor, are in
tests/integration/test_sandbox_racing_up.py; these few rounds prove the CLI end of it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.e2e.conftest import REPO, Cli

RACERS = 5
ROUNDS = 3
REFUSAL = re.compile(r"error: sandbox racy is being created( or started)? by pid \d+: wait for it to finish "
                     r"\(nothing was changed\)|error: sandbox 'racy' is already running \(.*\)")


def test_racing_cli_ups_one_creates_the_others_exit_2(cli: Cli) -> None:
    cli.started.append("racy")
    for i in range(ROUNDS):
        procs = [subprocess.Popen([sys.executable, "-m", "upgrader", "sandbox", "up", "racy", "--control-planes", "1",
                                   "--workers", "0", "-o", "json"], env=cli.env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(RACERS)]
        done = [(p.pid, p.returncode, out, err) for p in procs for out, err in [p.communicate(timeout=240)]]
        created = [d for d in done if d[1] == 0]
        assert len(created) == 1, (i, done)
        assert json.loads(created[0][2])["resumed"] is False, (i, created)
        for pid, code, _out, err in done:
            if code != 0:
                assert code == 2 and err.count("\n") == 1 and REFUSAL.fullmatch(err.strip()), (i, pid, code, err)
        assert cli.status("racy")["status"] == "running"
        cli.run("sandbox", "down", "racy")
        assert json.loads(cli.run("sandbox", "list", "-o", "json").stdout) == []
