"""The runbook actions that run an existing use case as a child run under the runbook's lease
(engine/runbook_steps.py hands them here through ``RunContext.runbook``).

rollback-upgrade: services.rollback (the snapshot before the last upgrade run's first hop, or the
given one). preview-restore: the same preview for a restore (the newest known-good snapshot unless
one is given): the snapshot, verified, and the loss list; changes nothing. restore-snapshot: that
rollback run. renew-all-certificates: services.certificates.renew. level-control-plane: the resume
of the interrupted or failed upgrade run (its interrupted kubeadm step is observed and run again:
kubeadm upgrade is idempotent), or with ``version`` and no such run, a plan to it (the planner
levels a half-done hop first) applied.

The child run's id is recorded as an event ``runbook-child-run`` (step, run) as soon as its first
step starts; the runbook's resumed step finds it, accepts it when it succeeded, or resumes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from upgrader.domain.plans import Action, Step
from upgrader.domain.records import ClusterRecord, RunRecord
from upgrader.domain.runs import RunStatus
from upgrader.engine.context import RunbookHooks, RunContext, StepEvent, StopRequestedError
from upgrader.engine.runbook_steps import args
from upgrader.engine.steps import StepError
from upgrader.errors import LockLostError
from upgrader.services.apply import RunResult
from upgrader.services.audit import record_event
from upgrader.services.runbook_lines import rollback_lines
from upgrader.services.runbook_upgrade_run import not_an_upgrade, refuse_going_back, upgrade_run
from upgrader.services.wiring import AppContext

CHILD = "runbook-child-run"
EVENTS_READ = 5000  # of one run and one kind: a run records a few per step
RESUMABLE = (RunStatus.INTERRUPTED, RunStatus.FAILED, RunStatus.RUNNING)
Report = Callable[[StepEvent], None]


class Children:
    """The service-backed actions of one runbook run (or of its preview: run id 0, nothing runs)."""

    def __init__(self, app: AppContext, cluster: ClusterRecord, *, report: Report, stop: threading.Event) -> None:
        self.app, self.cluster, self.report, self.stop = app, cluster, report, stop
        self._previews: dict[tuple[str | None, str | None], Any] = {}

    def bind(self, *, report: Report, stop: threading.Event) -> Children:
        """The same (what it already read kept), reporting to and stopped by the run that starts now."""
        self.report, self.stop = report, stop
        return self

    def hooks(self, confirm: Callable[[RunContext, Step], str | None]) -> RunbookHooks:
        acts = {Action.ROLLBACK_UPGRADE: self._rollback, Action.PREVIEW_RESTORE: self._preview_restore,
                Action.RESTORE_SNAPSHOT: self._restore, Action.RENEW_ALL_CERTIFICATES: self._renew,
                Action.LEVEL_CONTROL_PLANE: self._level}
        describes = {Action.ROLLBACK_UPGRADE: self._describe_rollback,
                     Action.PREVIEW_RESTORE: self._describe_restore, Action.RESTORE_SNAPSHOT: self._describe_restore,
                     Action.RENEW_ALL_CERTIFICATES: self._describe_renew,
                     Action.LEVEL_CONTROL_PLANE: self._describe_level}
        observes = {str(a): self._observe for a in acts if a is not Action.PREVIEW_RESTORE}
        return RunbookHooks(confirm=confirm, act={str(k): v for k, v in acts.items()}, observe=observes,
                            describe={str(k): v for k, v in describes.items()})

    # -- the child run ------------------------------------------------------------------------------

    def child_of(self, ctx: RunContext, step: Step) -> RunRecord | None:
        """The child run this step started (recorded by an event), if any."""
        with self.app.unit_of_work() as uow:
            events = uow.repo.list_events(self.cluster.name, limit=EVENTS_READ, run_id=ctx.run_id, kind=CHILD)
            found = [e for e in events if (e.data or {}).get("step") == step.n]
            return uow.repo.get_run(int(found[-1].data["run"])) if found and found[-1].data else None

    def _record_child(self, ctx: RunContext, step: Step, child: int, kind: str) -> None:
        with self.app.unit_of_work() as uow:
            record_event(self.app, uow, CHILD, cluster=self.cluster.name, run_id=ctx.run_id,
                         data={"step": step.n, "run": child, "kind": kind})
            uow.commit()

    def _reporting(self, ctx: RunContext, step: Step, kind: str, *, known: int | None = None) -> Report:
        """The child's step events, shown as the child's; its id recorded at its first (unless ``known``)."""
        seen: list[int] = [known] if known is not None else []

        def report(event: StepEvent) -> None:
            if event.run_id != ctx.run_id and not seen:
                seen.append(event.run_id)
                self._record_child(ctx, step, event.run_id, kind)
            self.report(replace(event, detail=f"child run {event.run_id} ({kind}) {event.detail}".rstrip()))
        return report

    def _judge(self, result: RunResult, kind: str) -> dict[str, Any]:
        run = result.run
        if result.lease_lost:
            raise LockLostError(result.lease_lost)
        outcome = dict(run.outcome or {})
        if run.status is RunStatus.SUCCEEDED:
            return {"run": run.id, "kind": kind, "status": run.status.value,
                    "summary": outcome.get("summary") or outcome.get("target")}
        if run.status is RunStatus.INTERRUPTED and self.stop.is_set():
            raise StopRequestedError
        why = outcome.get("error") or outcome.get("reason") or run.status.value
        raise StepError(f"the {kind} run {run.id} {run.status.value}: {why}; `upgrader runs show {run.id}`; "
                        "resuming this runbook continues it")

    def _continue(self, ctx: RunContext, step: Step, child: RunRecord, kind: str) -> dict[str, Any] | None:
        """A child already started: accepted when it succeeded, resumed when it can be; None: start anew."""
        if child.status is RunStatus.SUCCEEDED:
            return {"run": child.id, "kind": kind, "status": child.status.value, "observed": True}
        if child.status not in RESUMABLE:
            return None
        from upgrader.services import apply

        return self._judge(apply.resume(self.app, child.id, lease_token=ctx.token, report=self._reporting(
            ctx, step, kind, known=child.id), stop=ctx.stop, yes=True), kind)

    def _observe(self, ctx: RunContext, step: Step) -> dict[str, Any] | None:
        child = self.child_of(ctx, step)
        if child is None or child.status is not RunStatus.SUCCEEDED:
            return None
        return {"run": child.id, "status": child.status.value}

    # -- rollback and restore -----------------------------------------------------------------------

    def _rollback_preview(self, to: str | None, rollback_of: str | None) -> Any:
        key = (to, rollback_of)
        if key not in self._previews:
            from upgrader.services import rollback

            self._previews[key] = rollback.preview(self.app, cluster=self.cluster.name, to=to,
                                                   rollback_of=int(rollback_of) if rollback_of else None)
        return self._previews[key]

    def _rollback_to(self, ctx: RunContext, step: Step, to: str | None, rollback_of: str | None,
                     kind: str) -> dict[str, Any]:
        child = self.child_of(ctx, step)
        if child is not None:
            done = self._continue(ctx, step, child, kind)
            if done is not None:
                return done
        from upgrader.services import rollback

        previewed = self._rollback_preview(to, rollback_of)
        self._previews.clear()  # a resumed run previews again: the cluster moved since
        result = rollback.run_under_lease(self.app, previewed, token=ctx.token,
                                          report=self._reporting(ctx, step, kind), stop=ctx.stop)
        return self._judge(result, kind) | {"snapshot": previewed.snapshot.id,
                                            "loss": (previewed.loss or {}).get("counts")}

    def _rollback(self, ctx: RunContext, step: Step) -> dict[str, Any]:
        self._named_run(step, "the upgrade run to roll back")
        a = args(step)
        snapshot = a.get("snapshot")
        return self._rollback_to(ctx, step, str(snapshot) if snapshot else None,
                                 str(a["run"]) if a.get("run") else None, "rollback")

    def _restore_target(self, step: Step) -> str:
        from upgrader.services.rollback_target import LAST_KNOWN_GOOD

        snapshot = args(step).get("snapshot")
        return str(snapshot) if snapshot else LAST_KNOWN_GOOD

    def _restore(self, ctx: RunContext, step: Step) -> dict[str, Any]:
        return self._rollback_to(ctx, step, self._restore_target(step), None, "restore")

    def _preview_restore(self, ctx: RunContext, step: Step) -> dict[str, Any]:
        previewed = self._rollback_preview(self._restore_target(step), None)
        doc = previewed.to_dict()
        return {"snapshot": doc["snapshot"], "target": doc["target"]["version"], "loss": doc["loss"],
                "loss_error": doc["loss_error"], "control_planes": doc["control_planes"]}

    def _describe_rollback(self, ctx: RunContext, step: Step) -> list[str]:
        a = args(step)
        previewed = self._rollback_preview(str(a["snapshot"]) if a.get("snapshot") else None,
                                           str(a["run"]) if a.get("run") else None)
        return rollback_lines(previewed.to_dict(), "roll back")

    def _describe_restore(self, ctx: RunContext, step: Step) -> list[str]:
        previewed = self._rollback_preview(self._restore_target(step), None)
        verb = "restore" if step.action is Action.RESTORE_SNAPSHOT else "would restore (this step only reads)"
        return rollback_lines(previewed.to_dict(), verb)

    # -- certificates -------------------------------------------------------------------------------

    def _renew(self, ctx: RunContext, step: Step) -> dict[str, Any]:
        child = self.child_of(ctx, step)
        if child is not None:
            done = self._continue(ctx, step, child, "certificate-renewal")
            if done is not None:
                return done
        from upgrader.services import certificates

        result = certificates.renew(self.app, self.cluster.name, lease_token=ctx.token,
                                    report=self._reporting(ctx, step, "certificate-renewal"), stop=ctx.stop)
        return self._judge(result, "certificate-renewal")

    def _describe_renew(self, ctx: RunContext, step: Step) -> list[str]:
        from upgrader.services import certificates

        previewed = certificates.preview(self.app, self.cluster.name)
        doc = previewed.to_dict()
        soonest = doc["certificates"]["soonest"]
        lines = [f"certificates now: soonest expiry {soonest[:16] if soonest else 'unknown'} (UTC)"
                 + ("; authorities due (kubeadm does not renew them): " + ", ".join(
                     doc["certificates"]["authorities_due"]) if doc["certificates"]["authorities_due"] else ""),
                 "a certificate-renewal run, one control-plane node at a time:"]
        for s in doc["steps"]:
            lines.append(f"  {s['n']}. {s['action']} {s['node']}: " + "; ".join(s["would"]))
        return lines

    # -- level a half-done hop ------------------------------------------------------------------------

    def _named_run(self, step: Step, kind: str) -> RunRecord | None:
        """The run the step's ``run`` argument names, refused (exit 2) unless an upgrade run of this cluster."""
        wanted = args(step).get("run")
        if not wanted:
            return None
        return upgrade_run(self.app, self.cluster.name, int(wanted), where=f"{step.action} ({kind}) run={wanted}")

    def _interrupted_upgrade(self, step: Step) -> RunRecord | None:
        named = self._named_run(step, "the upgrade run to level")
        if named is not None:
            return named
        with self.app.unit_of_work() as uow:
            for run in uow.repo.list_runs(self.cluster.name):
                if not_an_upgrade(uow.repo.get_plan(run.plan_id).document) is not None:
                    continue
                return run if run.status in RESUMABLE else None
        return None

    def check(self, steps: list[Step]) -> None:
        """Before anything is recorded: the runs the steps would level or roll back are upgrade runs of
        this cluster, and one to level forward is not being rolled back (UsageError, exit 2)."""
        for step in steps:
            if step.action is Action.LEVEL_CONTROL_PLANE:
                found = self._interrupted_upgrade(step)
                if found is not None and found.status in RESUMABLE:
                    refuse_going_back(self.app, self.cluster.name, found)
            elif step.action is Action.ROLLBACK_UPGRADE:
                self._named_run(step, "the upgrade run to roll back")

    def _level(self, ctx: RunContext, step: Step) -> dict[str, Any]:
        child = self.child_of(ctx, step)
        if child is not None:
            if child.status in RESUMABLE:
                refuse_going_back(self.app, self.cluster.name, child)
            done = self._continue(ctx, step, child, "upgrade")
            if done is not None:
                return done
        found = self._interrupted_upgrade(step)
        if found is not None and found.status in RESUMABLE:
            refuse_going_back(self.app, self.cluster.name, found)
            self._record_child(ctx, step, found.id, "upgrade")
            done = self._continue(ctx, step, found, "upgrade")
            assert done is not None
            return done
        version = args(step).get("version")
        if not version:
            said = f"run {found.id} is {found.status.value}" if found is not None else "no upgrade run stopped half way"
            raise StepError(f"nothing to level: {said}; with --param version=vX.Y.Z a plan to that version levels "
                            "a half-done hop first")
        return self._level_by_plan(ctx, step, str(version))

    def _level_by_plan(self, ctx: RunContext, step: Step, version: str) -> dict[str, Any]:
        from upgrader.services import apply, plans
        from upgrader.services.run_options import run_options

        made = plans.make_plan(self.app, plans.PlanRequest(cluster=self.cluster.name, target=version, state=None,
                                                           catalog=None))
        if made.plan_id is None:
            return {"status": "nothing to do", "target": version}
        result = apply.apply(self.app, made.plan_id, run_options(auto_rollback=False), lease_token=ctx.token,
                             report=self._reporting(ctx, step, "upgrade"), stop=ctx.stop)
        return self._judge(result, "upgrade") | {"plan": made.plan_id}

    def _describe_level(self, ctx: RunContext, step: Step) -> list[str]:
        found = self._interrupted_upgrade(step)
        if found is not None and found.status in RESUMABLE:
            done = [s for s in found.steps if s.status.value == "succeeded"]
            stopped = next((s for s in found.steps if s.status.value in ("running", "failed")), None)
            lines = [f"resume upgrade run {found.id} ({found.status.value}, {len(done)}/{len(found.steps)} steps "
                     "done) under this runbook's lease, without asking again"]
            if stopped is not None:
                lines.append(f"its step {stopped.n} ({stopped.action} {stopped.node or ''}) was "
                             f"{stopped.status.value}: it is observed first (did it take effect?) and run again "
                             "if not; kubeadm upgrade apply/node is idempotent")
            return lines
        version = args(step).get("version")
        if version:
            return [f"plan {self.cluster.name} to {version} (a half-done hop is leveled first, no new kubeadm "
                    "apply for it) and apply that plan under this runbook's lease"]
        return ["no upgrade run of this cluster stopped half way: the step will fail, changing nothing"]

