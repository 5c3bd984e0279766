"""``loopml apply stack.yaml``: declare endpoints, monitoring schedules, alarms, triggers and pipelines."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Column, Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, print_json

_STYLE = {"create": "green", "update": "yellow", "delete": "red", "unchanged": "dim"}
_MARK = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


@app.command("apply")
def apply_cmd(
    file: str = typer.Argument(..., help="The stack file (YAML)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show the plan."),
    prune: bool = typer.Option(False, "--prune", help="Delete what this stack made and no longer declares."),
    as_json: bool = JsonOpt,
) -> None:
    """Check a stack file, show the plan (create / update / unchanged / delete) and apply it."""
    from loopml.triggers import apply_stack

    with open_workspace() as ws:
        plan = apply_stack(ws, file, dry_run=dry_run, prune=prune)
    if as_json:
        print_json(plan.to_dict())
        return
    table = Table("", "action", "kind", Column("name", no_wrap=True), "changes",
                  title=f"stack {escape(plan.stack)}", title_justify="left")
    for c in plan.changes:
        style = _STYLE[c.action]
        table.add_row(f"[{style}]{_MARK[c.action]}[/]", f"[{style}]{c.action}[/]", escape(c.kind), escape(c.name),
                      escape("; ".join(c.details)))
    if plan.changes:
        console.print(table)
    n = plan.counts
    summary = f"{n['create']} to create, {n['update']} to update, {n['delete']} to delete, {n['unchanged']} unchanged"
    if dry_run:
        console.print(f"plan: {summary} (dry run: nothing applied)")
    elif plan.changed:
        console.print(f"applied: {n['create']} created, {n['update']} updated, {n['delete']} deleted, "
                      f"{n['unchanged']} unchanged")
    else:
        console.print(f"nothing to change ({n['unchanged']} unchanged)")
    if plan.orphans:
        names = ", ".join(f"{c.kind} {c.name}" for c in plan.orphans)
        console.print(f"[dim]no longer declared (kept; --prune deletes them): {escape(names)}[/]")
