"""`upgrader playbook show|validate`: the upgrade procedure each role's nodes go through, and checking a copy."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Optional

import typer

from upgrader.cli.output import OUTPUT_OPTION, Output, emit_json

app = typer.Typer(
    help="The upgrade playbooks: each role's procedure (first control-plane node, other control-plane nodes, "
    "workers) as the planner expands it. Copy the shipped folder, add `command` or `check` steps between the "
    "built-in ones (a pre-drain hook, a custom health check, a post-upgrade script), check the copy with "
    "`playbook validate DIR`, then plan with `upgrader plan ... --playbooks DIR` or `cluster set --playbooks DIR`.",
    no_args_is_help=True,
)


class Manager(StrEnum):
    APT = "apt"
    DNF = "dnf"


class RoleName(StrEnum):
    FIRST_CONTROL_PLANE = "first-control-plane"
    CONTROL_PLANE = "control-plane"
    WORKER = "worker"


@app.command("show")
def show(
    ctx: typer.Context,
    role: Optional[RoleName] = typer.Argument(None, help="Only this role (default: all three)."),  # noqa: UP045
    playbooks: Optional[str] = typer.Option(  # noqa: UP045
        None, "--playbooks", metavar="DIR", help="A playbook copy (roles it lacks come from the shipped ones)."),
    cluster: Optional[str] = typer.Option(  # noqa: UP045
        None, "--cluster", help="The playbooks this cluster's plans expand (`cluster set --playbooks`)."),
    manager: Manager = typer.Option(Manager.APT, "--manager", help="Show the package commands of apt or dnf nodes."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Show the effective upgrade procedure: every step, what it runs, how it is undone, which file it came from.

    {node}, {version} (v1.31.4), {minor} (v1.31) and {build} (the repository's build of that version)
    stand for what each plan fills in. Steps marked + were added by a playbook copy.

    Exit codes: 0 shown, 2 bad input (an invalid playbook is named with its file, step and field)."""
    from upgrader.services import playbooks as service

    directory = _directory(ctx, playbooks, cluster)
    doc = service.effective(directory, manager=str(manager))
    if role is not None:
        doc["roles"] = {str(role): doc["roles"][str(role)]}
    if output is Output.JSON:
        emit_json(doc)
        return
    typer.echo("\n\n".join(_render_role(name, body) for name, body in doc["roles"].items()))


def _directory(ctx: typer.Context, given: str | None, cluster: str | None) -> Path | None:
    from upgrader.services import playbooks as service

    if given is not None and cluster is not None:
        raise typer.BadParameter("give --playbooks or --cluster, not both")
    if given is not None:
        return service.playbook_dir(given)
    if cluster is None:
        return None
    from upgrader.services import clusters

    record = clusters.show_cluster(ctx.obj, name=cluster)
    return service.playbook_dir(record.playbooks_dir) if record.playbooks_dir else None


def _render_role(name: str, body: dict[str, Any]) -> str:
    lines = [f"{name}: {body['description']}".rstrip(": "), f"  from {body['file']}"]
    for phase, steps in body["phases"].items():
        lines.append(f"  phase {phase}:")
        for n, step in enumerate(steps, 1):
            mark = "+" if step["custom"] else " "
            undo = step["reversibility"]
            lines.append(f"   {mark}{n:>2}. {step['name']} ({step['action']}; undo: {undo})")
            lines += [f"         {line}" for line in step["runs"]]
    return "\n".join(lines)


@app.command("validate")
def validate(
    directory: str = typer.Argument(..., metavar="DIR", help="A playbook copy: ROLE.yaml files, or a copy of the "
                                    "whole playbooks/ folder (its upgrade/ is read)."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Check a playbook copy strictly, as a plan would read it.

    Refused, with the file, the step and the field named in one line: an unknown action or field, a
    missing field, a `command` whose argv is a shell string instead of a list, a placeholder other than a
    whole "{node}", "{version}" or "{minor}", a built-in step removed, repeated or moved (the engine runs
    them in one order: add steps between them), two steps with one name.

    Exit codes: 0 valid, 2 invalid (the one-line error says where)."""
    from upgrader.services import playbooks as service

    result = service.validate_dir(directory)
    added = {str(role): [s.name for steps in p.phases.values() for s in steps if s.custom]
             for role, p in result.playbooks.by_role.items()}
    if output is Output.JSON:
        emit_json({"valid": True, "directory": str(result.directory), "files": list(result.files),
                   "added_steps": added})
        return
    typer.echo(f"valid: {', '.join(result.files)}")
    for role, names in added.items():
        if names:
            typer.echo(f"  {role}: adds {', '.join(names)}")
