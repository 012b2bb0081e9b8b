"""The two step kinds an operator adds to a playbook (and a runbook uses): ``command`` and ``check``.

Both read their arguments from ``step.params["with"]``, already validated and substituted when the plan
was made (domain/playbooks.py; a runbook's reader does the same), so the plan document shows the final
argv and nothing here builds a string: the argv goes to the node as a list.

- ``command``: ``with: {node, argv, timeout=300, idempotent=true}``; a non-zero exit fails the step with
  its output recorded (StepCommandError, exit 6). On resume it runs again only when idempotent; a
  non-idempotent command interrupted mid-way stops the resume and asks a person.
- ``check``: ``with: {node, argv}`` or ``with: {http: PATH}`` (a GET on the cluster's API, 2xx passes), plus
  ``timeout=30`` per attempt, ``retries=3`` more attempts after the first and ``interval=5`` seconds
  between them; when no attempt passes the step fails with every attempt recorded (exit 6). A check
  only reads, so on resume it simply runs again.
- ``when: {manager: apt|dnf}`` in the step's params (a playbook step for one package manager): on a node
  of the other manager the step is recorded as skipped there and does nothing.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from upgrader.domain.documents import api_path_problem
from upgrader.domain.plans import Action, Step
from upgrader.engine.context import ResumeNeedsPersonError, RunContext, StepOutputsError, StopRequestedError, last_lines
from upgrader.engine.steps import HANDLERS, Handler, manager
from upgrader.errors import PlaybookError, UpgraderError

COMMAND_TIMEOUT = 300.0
CHECK_TIMEOUT = 30.0
CHECK_RETRIES = 3
CHECK_INTERVAL = 5.0


class CheckFailedError(StepOutputsError):
    """A check step did not pass within its retries; its attempts are recorded with the step (exit 6)."""

    exit_code = 6


def arguments(step: Step) -> Mapping[str, Any]:
    """The step's ``with:`` (empty when it has none)."""
    found = step.params.get("with") if step.params else None
    return found if isinstance(found, Mapping) else {}


def _node(step: Step) -> str:
    node = arguments(step).get("node") or step.node
    if not node:
        raise UpgraderError(f"step {step.n} ({step.action}) names no node to run its argv on")
    return str(node)


def _skipped(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    """Outputs saying the step does nothing on this node (``when: {manager: ...}`` names the other one)."""
    wanted = (step.params.get("when") or {}).get("manager") if step.params else None
    if not wanted:
        return None
    node = _node(step)
    found = manager(ctx, node)
    if (found if found == "apt" else "dnf") == wanted:
        return None
    return {"skipped": f"{node} uses {found}: this step runs on {wanted} nodes only"}


def run_command(ctx: RunContext, step: Step) -> dict[str, Any]:
    skipped = _skipped(ctx, step)
    if skipped is not None:
        return skipped
    args = arguments(step)
    argv = [str(a) for a in args["argv"]]
    result = ctx.run(_node(step), argv, timeout=float(args.get("timeout", COMMAND_TIMEOUT)))
    return {"argv": argv, "exit_code": result.exit_code, "output": _tail(result.stdout, result.stderr)}


def observe_command(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    """None (run it again) for an idempotent command; else stop and ask a person: upgrader cannot tell
    whether the interrupted attempt took effect, and running it twice is not known to be safe."""
    if arguments(step).get("idempotent", True):
        return None
    argv = shlex.join(map(str, arguments(step)["argv"]))
    raise ResumeNeedsPersonError(
        f"step {step.n} ({_name(step)}) was interrupted while running `{argv}` "
        f"on {_node(step)}, which its playbook says is not idempotent: check on the node whether it took effect; "
        "`upgrader resume` then runs it again (make it idempotent in the playbook to resume without asking)")


def run_check(ctx: RunContext, step: Step) -> dict[str, Any]:
    skipped = _skipped(ctx, step) if "argv" in arguments(step) else None
    if skipped is not None:
        return skipped
    args = arguments(step)
    if "http" in args:
        _api_path(step, args["http"])
    retries = int(args.get("retries", CHECK_RETRIES))
    interval = float(args.get("interval", CHECK_INTERVAL))
    attempts: list[dict[str, Any]] = []
    for attempt in range(1, retries + 2):
        if ctx.stop.is_set():
            raise StopRequestedError
        ok, detail = _attempt(ctx, step, args)
        attempts.append({"attempt": attempt, "ok": ok, "output": detail})
        if ok:
            return {"check": _what(step), "attempts": attempts}
        if attempt <= retries:
            ctx.sleep(interval)
    raise CheckFailedError(
        f"check {_name(step)} ({_what(step)}) did not pass in {len(attempts)} attempt(s): "
        f"{detail.splitlines()[-1] if detail else 'no output'}",
        outputs={"check": _what(step), "attempts": attempts}, tail=detail)


def _api_path(step: Step, path: object) -> None:
    """The last guard before a GET with the cluster's credentials: a plan document edited or written by
    an older build must not send the token elsewhere (``@host/x`` joined to the server's URL)."""
    problem = api_path_problem(path)
    if problem is not None:
        raise PlaybookError(f"step {step.n} ({_name(step)}): field with.http: {problem}; nothing was requested")


def _attempt(ctx: RunContext, step: Step, args: Mapping[str, Any]) -> tuple[bool, str]:
    timeout = float(args.get("timeout", CHECK_TIMEOUT))
    try:
        if "http" in args:
            status, body = ctx.api.get_path(str(args["http"]), timeout=timeout)
            return 200 <= status < 300, f"HTTP {status}" + (f"\n{last_lines(body, 5)}" if body.strip() else "")
        result = ctx.run(_node(step), [str(a) for a in args["argv"]], timeout=timeout, check=False)
    except UpgraderError as e:  # an API restarting, a node that did not answer: a failed attempt
        return False, e.message.splitlines()[0][:300] if e.message else type(e).__name__
    out = _tail(result.stdout, result.stderr)
    return result.ok, f"exit {result.exit_code}" + (f"\n{out}" if out else "")


def _tail(stdout: str, stderr: str) -> str:
    return last_lines(stdout + ("\n" if stdout else "") + stderr, 20)


def _name(step: Step) -> str:
    return str((step.params or {}).get("name") or step.action)


def _what(step: Step) -> str:
    args = arguments(step)
    if "http" in args:
        return f"GET {args['http']}"
    return f"{_node(step)}: {shlex.join(map(str, args.get('argv') or []))}"


def describe_command(ctx: RunContext, step: Step) -> list[str]:
    args = arguments(step)
    again = "runs again on resume" if args.get("idempotent", True) else "not idempotent: resume asks a person"
    return [f"{_what(step)} (at most {float(args.get('timeout', COMMAND_TIMEOUT)):g}s; {again})", *_when(step)]


def describe_check(ctx: RunContext, step: Step) -> list[str]:
    args = arguments(step)
    passes = "answers 2xx" if "http" in args else "exits 0"
    return [f"{_what(step)} until it {passes}: {int(args.get('retries', CHECK_RETRIES)) + 1} attempt(s), "
            f"{float(args.get('interval', CHECK_INTERVAL)):g}s apart, {float(args.get('timeout', CHECK_TIMEOUT)):g}s "
            "each", *_when(step)]


def _when(step: Step) -> list[str]:
    wanted = (step.params.get("when") or {}).get("manager") if step.params else None
    return [f"(on {wanted} nodes only)"] if wanted else []


def _again(ctx: RunContext, step: Step) -> dict[str, Any] | None:
    return None  # a check only reads: run it again


HANDLERS[Action.COMMAND] = Handler(run_command, observe_command, describe_command)
HANDLERS[Action.CHECK] = Handler(run_check, _again, describe_check)
