"""``loopml models readiness``: the production-readiness checklist of a model version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Column, Table

from loopml.cli._app import JsonOpt, console, open_workspace, print_json
from loopml.cli.models import models_app

if TYPE_CHECKING:
    from loopml.monitor.readiness import ReadinessReport


def print_readiness(report: ReadinessReport) -> None:
    """Render a readiness report as a checklist table with a one-line verdict."""
    table = Table(Column("", width=2), Column("item", no_wrap=True), Column("evidence", overflow="fold"),
                  title=f"production readiness of {escape(report.model)}"
                        + (f" on endpoint {escape(report.endpoint)}" if report.endpoint else ""),
                  title_justify="left", show_lines=False)
    for item in report.items:
        mark = "[green]✓[/]" if item.passed else "[red]✗[/]"
        table.add_row(mark, escape(item.title), escape(item.evidence))
    console.print(table)
    ok = sum(i.passed for i in report.items)
    if report.passed:
        console.print(f"[green]ready[/]: {ok}/{len(report.items)} items pass")
    else:
        names = ", ".join(i.key for i in report.failed)
        console.print(f"[yellow]not ready[/]: {ok}/{len(report.items)} items pass; failing: {escape(names)}")


@models_app.command("readiness")
def readiness_cmd(
    ref: str = typer.Argument(..., help="The model version: NAME:VERSION, NAME@ALIAS or NAME."),
    endpoint: str = typer.Option(None, "--endpoint", "-e",
                                 help="The endpoint that serves it (default: the one serving the version)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any item fails (for CI gates)."),
    as_json: bool = JsonOpt,
) -> None:
    """Check whether a model version is ready for production, item by item, with evidence.

    Items: approved, evaluated on a holdout, latency benchmark, monitoring baseline,
    monitors, alarms, rollback version, endpoint authentication, artifact hashes.
    Exits 0 unless --strict and an item fails.
    """
    from loopml.monitor.readiness import readiness

    with open_workspace() as ws:
        report = readiness(ws, ref, endpoint=endpoint)
    if as_json:
        print_json(report.to_dict())
    else:
        print_readiness(report)
    if strict and not report.passed:
        raise typer.Exit(1)
