"""``python -m upgrader.sandbox.supervisor SANDBOX_DIR``: the supervisor process of one sandbox.

SIGTERM/SIGINT stop everything it started; SIGHUP is ignored (a daemon outlives the terminal that
started it). A second supervisor for a sandbox whose supervisor still runs exits at once (code 3).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from upgrader import logs
from upgrader.sandbox import processes
from upgrader.sandbox.sandbox_config import SandboxConfig
from upgrader.sandbox.supervisor.daemon import Supervisor
from upgrader.sandbox.supervisor.state import SUPERVISOR, read_state

log = logs.get_logger(SUPERVISOR)  # not __name__: run with -m, that is "__main__"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sandbox_dir = Path(args[0])
    cfg = SandboxConfig.load(sandbox_dir)
    logs.configure()  # supervisor.log: JSON lines, one event each
    if read_state(sandbox_dir).get("status") in ("starting", "running") and _other_alive(sandbox_dir):
        log.error("supervisor_refused", reason="another supervisor is running", sandbox=str(sandbox_dir))
        return 3
    sup = Supervisor(cfg)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name, action="stopping")
        sup.stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return sup.run()


def _other_alive(sandbox_dir: Path) -> bool:
    pid = read_state(sandbox_dir).get("pid")
    return bool(pid) and pid != os.getpid() and processes.owned(pid, SUPERVISOR)


if __name__ == "__main__":
    sys.exit(main())
