"""`upgrader finalize RUN`: end a two-step hop's soak and raise the emulated version.

The run must be soaking (paused at its soak step after step one). Finalize is the point of no return:
after it a rollback needs the etcd snapshot. Before anything changes it checks what finalize needs
(every etcd member at the minimum patch when the soak held etcd's minor); when that is not met the
run stays soaking and PreflightError (exit 4) says why. Otherwise the run continues from the soak:
finalize, the control-plane kubelets, the workers, postflight (or the next hop's soak).
"""

from __future__ import annotations

import threading
from typing import Any

from upgrader.domain.plans import Action, NoReturn, Plan, plan_from_dict
from upgrader.domain.records import RunRecord
from upgrader.domain.runs import RunStatus
from upgrader.errors import PreflightError, RunRefusedError
from upgrader.services.apply import Report, RunResult, resume
from upgrader.services.wiring import AppContext


def soaking(run: RunRecord) -> dict[str, Any] | None:
    """The soak a run is paused in (its outcome's ``soaking``), None when it is not soaking."""
    if run.status is not RunStatus.INTERRUPTED:
        return None
    found = (run.outcome or {}).get("soaking")
    return dict(found) if isinstance(found, dict) else None


def load_soaking(app: AppContext, run_id: int) -> tuple[RunRecord, Plan, dict[str, Any], list[NoReturn]]:
    """The soaking run, its plan, the soak, and the points of no return finalize passes;
    RunRefusedError when the run is not soaking."""
    with app.unit_of_work() as uow:
        run = uow.repo.get_run(run_id)
        plan = plan_from_dict(dict(uow.repo.get_plan(run.plan_id).document))
    soak = soaking(run)
    if soak is None:
        raise RunRefusedError(f"run {run_id} is not soaking ({run.status.value}): there is no two-step hop "
                              f"to finalize (see `upgrader runs show {run_id}`)")
    finalize_steps = {s.n for s in plan.steps if s.hop == soak.get("hop") and s.action is
                      Action.FINALIZE_EMULATED_VERSION}
    points = [p for p in plan.points_of_no_return if p.step in finalize_steps]
    return run, plan, soak, points


def finalize(app: AppContext, run_id: int, *, report: Report = lambda e: None,
             stop: threading.Event | None = None) -> RunResult:
    _run, _plan, soak, _points = load_soaking(app, run_id)
    result = resume(app, run_id, report=report, stop=stop, finalize_step=int(soak["step"]))
    still = soaking(result.run)
    if still is not None and still.get("finalize_refused"):
        raise PreflightError(f"finalize of run {run_id} refused, nothing was changed and it is still soaking: "
                             f"{still['finalize_refused']}")
    return result
