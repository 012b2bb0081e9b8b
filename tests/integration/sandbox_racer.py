"""One racer of tests/integration/test_sandbox_racing_up.py: runs the real `sandbox up` of one name, round after round.

Only the supervisor is left out: `_launch` is replaced by a stand-in that says "launched" and then
waits for the test's go-ahead, so the winner of a round holds its claim while every loser answers.
Each round waits on the test's gate file (an flock the test releases for all racers at once) and
prints one JSON line per outcome on stdout.

    python -m tests.integration.sandbox_racer NAME ROUNDS GATE_DIR
"""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path

from upgrader.errors import UpgraderError
from upgrader.sandbox.lifecycle import up as lifecycle_up


def _wait_for(path: Path) -> None:
    """Block until the test releases its exclusive flock on path."""
    with open(path) as f:
        fcntl.flock(f, fcntl.LOCK_SH)


def _say(**fields: object) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main(name: str, rounds: int, gates: Path) -> None:
    current = {"round": 0}

    def launch(cfg: object, register: object, *, wait: float) -> None:
        _say(round=current["round"], outcome="launched")
        _wait_for(gates / f"hold-{current['round']}")

    lifecycle_up._launch = launch  # type: ignore[assignment]
    for i in range(rounds):
        current["round"] = i
        _wait_for(gates / f"go-{i}")
        try:
            result = lifecycle_up.up(lifecycle_up.UpRequest(name=name, control_planes=1, workers=0))
        except UpgraderError as e:
            _say(round=i, outcome="refused", code=e.exit_code, message=e.message)
        except Exception as e:  # a bug: the test shows it
            _say(round=i, outcome="crashed", error=f"{e.__class__.__name__}: {e}")
        else:
            _say(round=i, outcome="resumed" if result.resumed else "created")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
