"""``loopml scheduler``: run alarms, monitoring schedules and triggers until stopped (or once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from loopml.cli._app import JsonOpt, app, console, open_workspace, print_json

if TYPE_CHECKING:
    from loopml.triggers import TickReport


def _print_tick(r: TickReport) -> None:
    stamp = r.at.strftime("%H:%M:%S")
    for c in r.alarm_changes:
        console.print(f"{stamp} alarm {escape(c)}")
    for m in r.monitor_runs:
        console.print(f"{stamp} monitoring run {escape(m)}")
    for f in r.firings:
        console.print(f"{stamp} fired {escape(f)}")
    for e in r.errors:
        console.print(f"{stamp} [red]error[/] {escape(e)}")


@app.command("scheduler")
def scheduler_cmd(
    once: bool = typer.Option(False, "--once", help="Run until nothing more is due (work awaited), then exit."),
    interval: float = typer.Option(5.0, "--interval", help="Seconds between ticks."),
    workers: int = typer.Option(2, "--workers", "-w", help="Pipelines and monitors running at once."),
    grace: float = typer.Option(30.0, "--grace", help="On stop, seconds running work may take to finish."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the scheduler: alarms, monitoring schedules, event and schedule triggers (Ctrl-C or SIGTERM stops it)."""
    from loopml.triggers import run_scheduler

    with open_workspace() as ws:
        if not as_json:
            mode = "once" if once else f"every {interval:g}s, Ctrl-C to stop"
            console.print(f"scheduler on {escape(str(ws.root))} ({mode})")
        stats = run_scheduler(ws, once=once, poll_s=interval, max_workers=workers, grace_s=grace,
                              on_tick=None if as_json else _print_tick)
    if as_json:
        print_json(stats.to_dict())
        return
    why = f" ({stats.stopped_by})" if stats.stopped_by else ""
    console.print(f"scheduler stopped{why}: {stats.ticks} tick(s), {stats.firings} firing(s), "
                  f"{stats.monitor_runs} monitoring run(s), {stats.alarm_changes} alarm change(s)"
                  + (f", {stats.recovered} taken over" if stats.recovered else "")
                  + (f", [red]{stats.errors} error(s)[/]" if stats.errors else ""))
