"""``loopml monitor schedule | schedules | unschedule``: monitoring jobs the scheduler runs.

Added to the ``monitor`` command group of :mod:`loopml.cli.monitor`.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from loopml.cli._app import JsonOpt, console, open_workspace, parse_pairs, print_json
from loopml.cli.monitor import monitor_app, status_markup


def _value(text: str) -> Any:
    """An option's value: YAML scalars and flow collections (``0.1``, ``true``, ``[a, b]``), else the text."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _when(d: Any) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S") if d is not None else ""


@monitor_app.command("schedule")
def schedule_cmd(
    endpoint: str = typer.Argument(..., help="The endpoint whose captured data is monitored."),
    every: str = typer.Option(None, "--every", help="Run every period, e.g. 1h, 30m, 1d."),
    cron: str = typer.Option(None, "--cron", help="Run on this cron schedule (UTC), e.g. '0 * * * *'."),
    kind: str = typer.Option("data_quality", "--kind", "-k",
                             help="The monitor: data_quality, model_quality, bias or attribution."),
    baseline: str = typer.Option(None, "--baseline", "-b",
                                 help="The baseline (data_quality, attribution; default: the served model's)."),
    window: str = typer.Option(None, "--window", help="Captured data each run looks at (default: one period)."),
    option: list[str] = typer.Option([], "--option", "-o",
                                     help="A further monitor argument NAME=VALUE, e.g. facet=gender (repeatable)."),
    name: str = typer.Option(None, "--name", help="The schedule's name (default ENDPOINT-KIND)."),
    replace: bool = typer.Option(False, "--replace", help="Update the schedule if it exists."),
    as_json: bool = JsonOpt,
) -> None:
    """Register a monitoring job: `loopml scheduler` runs KIND on ENDPOINT --every PERIOD (or --cron)."""
    from loopml.triggers import add_monitor_schedule
    from loopml.triggers.monitoring import describe_window

    options = {k: _value(v) for k, v in parse_pairs(option, "--option", "facet=gender").items()}
    with open_workspace() as ws:
        s = add_monitor_schedule(ws, endpoint, every=every, cron=cron, kind=kind, baseline=baseline, window=window,
                                 options=options, name=name, replace=replace)
    if as_json:
        print_json(s.to_dict())
        return
    console.print(f"monitoring schedule [bold]{escape(s.name)}[/]: {escape(s.kind)} on {escape(s.endpoint)} "
                  f"{escape(s.schedule)}, window {describe_window(s)}"
                  + (f", baseline {escape(s.baseline)}" if s.baseline else ""))
    console.print("  [dim]`loopml scheduler` runs it; `loopml monitor schedules` lists the runs[/]")


@monitor_app.command("schedules")
def schedules_cmd(
    name: str = typer.Argument(None, help="Show this schedule with its recent runs."),
    limit: int = typer.Option(10, "--limit", "-n", help="How many recent runs to show."),
    as_json: bool = JsonOpt,
) -> None:
    """List the monitoring schedules with their last run (or one schedule and its runs)."""
    from loopml.triggers import get_monitor_schedule, list_monitor_runs, list_monitor_schedules
    from loopml.triggers.monitoring import describe_window

    with open_workspace() as ws:
        if name is not None:
            s = get_monitor_schedule(ws, name)
            runs = list_monitor_runs(ws, schedule=name, limit=max(1, limit))
            items = [s]
        else:
            items = list_monitor_schedules(ws)
            runs = [r for s in items for r in list_monitor_runs(ws, schedule=s.name, limit=1)]
    if as_json:
        if name is not None:
            print_json({**items[0].to_dict(), "runs": [r.to_dict() for r in runs]})
        else:
            last = {r.schedule: r.to_dict() for r in runs}
            print_json([{**s.to_dict(), "last_run": last.get(s.name)} for s in items])
        return
    if not items:
        console.print("No monitoring schedules. Add one with `loopml monitor schedule ENDPOINT --every 1h`.")
        return
    if name is not None:
        s = items[0]
        console.print(f"[bold]{escape(s.name)}[/]  {escape(s.kind)} on {escape(s.endpoint)} {escape(s.schedule)}, "
                      f"window {describe_window(s)}" + (f", baseline {escape(s.baseline)}" if s.baseline else "")
                      + ("" if s.enabled else " [dim](disabled)[/]"))
        if s.options:
            console.print("  options " + escape(", ".join(f"{k}={v}" for k, v in s.options.items())))
        t = Table(Column("until (UTC)", no_wrap=True), Column("status", no_wrap=True), "violations",
                  Column("result", no_wrap=True), "note")
        for r in runs:
            t.add_row(_when(r.until), status_markup(r.status),
                      "" if r.violation_count is None else str(r.violation_count), escape(r.result_id or ""),
                      escape(r.error or ""))
        console.print(t if runs else "  [dim]no runs yet[/]")
        return
    last_run = {r.schedule: r for r in runs}
    t = Table(Column("schedule", no_wrap=True), "endpoint", "kind", "every", "window", "last run")
    for s in items:
        r = last_run.get(s.name)
        t.add_row(escape(s.name), escape(s.endpoint), escape(s.kind), escape(s.schedule), describe_window(s),
                  f"{status_markup(r.status)} {_when(r.until)}" if r else "[dim]never[/]")
    console.print(t)


@monitor_app.command("unschedule")
def unschedule_cmd(name: str = typer.Argument(..., help="The monitoring schedule.")) -> None:
    """Remove a monitoring schedule (its results stay)."""
    from loopml.triggers import remove_monitor_schedule

    with open_workspace() as ws:
        remove_monitor_schedule(ws, name)
    console.print(f"removed monitoring schedule {escape(name)}")
