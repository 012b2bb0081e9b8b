"""Which run a runbook may level forward (level-control-plane) or roll back (rollback-upgrade): only an
upgrade run of the runbook's cluster, never a rollback's, a certificate renewal's or another runbook's
run (resuming one of those "as an upgrade" would confirm its destructive steps unasked). An upgrade run
that was rolled back, whose automatic rollback started, or after which a rollback run started, is not
leveled forward: going back is what is under way, and rollback-last-upgrade finishes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upgrader.domain.certificates import is_renewal
from upgrader.domain.records import RunRecord
from upgrader.domain.rollback import is_rollback
from upgrader.domain.runbooks import is_runbook
from upgrader.domain.runs import RunStatus
from upgrader.errors import RunNotFoundError, UsageError
from upgrader.services.wiring import AppContext


def not_an_upgrade(document: Mapping[str, Any]) -> str | None:
    """What kind of run the plan document records when it is not an upgrade's; None for an upgrade."""
    for test, kind in ((is_rollback, "a rollback run"), (is_renewal, "a certificate-renewal run"),
                       (is_runbook, "a runbook run")):
        if test(document):
            return kind
    return None


def upgrade_run(app: AppContext, cluster: str, run_id: int, *, where: str) -> RunRecord:
    """The upgrade run ``run_id`` of ``cluster``; UsageError (exit 2) naming ``where`` otherwise."""
    with app.unit_of_work() as uow:
        try:
            run = uow.repo.get_run(run_id)
        except RunNotFoundError:
            raise UsageError(f"{where}: no run {run_id} in the ledger") from None
        kind = not_an_upgrade(uow.repo.get_plan(run.plan_id).document)
    if run.cluster != cluster:
        raise UsageError(f"{where}: run {run_id} is a run of cluster {run.cluster}, not of {cluster}")
    if kind is not None:
        raise UsageError(f"{where}: run {run_id} is {kind}, not an upgrade run; only an upgrade run is taken here")
    return run


def going_back(app: AppContext, cluster: str, run: RunRecord) -> str | None:
    """Why the upgrade run must not be leveled forward (it is being, or was, rolled back), or None."""
    if run.status is RunStatus.ROLLED_BACK or run.rolled_back_by:
        by = ", ".join(str(r) for r in run.rolled_back_by)
        return "it was rolled back" + (f" (by run {by})" if by else "")
    auto = (run.outcome or {}).get("auto_rollback")
    if isinstance(auto, Mapping) and auto.get("run") is not None:
        return f"its automatic rollback (run {auto['run']}) started and {auto.get('status') or 'did not finish'}"
    with app.unit_of_work() as uow:
        newer = [r for r in uow.repo.list_runs(cluster)
                 if r.id > run.id and is_rollback(uow.repo.get_plan(r.plan_id).document)]
    if newer:
        last = max(newer, key=lambda r: r.id)
        return f"rollback run {last.id} started after it ({last.status.value})"
    return None


def refuse_going_back(app: AppContext, cluster: str, run: RunRecord) -> None:
    """UsageError (exit 2) when the run must not be leveled forward, pointing to rollback-last-upgrade."""
    why = going_back(app, cluster, run)
    if why is not None:
        raise UsageError(f"upgrade run {run.id} is not leveled forward: {why}; finish going back instead: "
                         f"`upgrader runbook run rollback-last-upgrade --cluster {cluster}`")
