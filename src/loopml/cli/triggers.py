"""``loopml triggers``: rules that start pipelines on a schedule or on workspace events."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Column, Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, parse_pairs, print_json

if TYPE_CHECKING:
    from loopml.triggers import FiringInfo

triggers_app = typer.Typer(help="Triggers: start a pipeline on a schedule or on an event (retraining).",
                           no_args_is_help=True)
app.add_typer(triggers_app, name="triggers")

_STYLE = {"Succeeded": "green", "Failed": "red", "Stopped": "red", "Skipped": "dim", "Running": "yellow",
          "Pending": "yellow"}


def status_markup(status: str) -> str:
    """A firing status in its colour."""
    return f"[{_STYLE.get(status, 'white')}]{escape(status)}[/]"


def _when(d: object) -> str:
    from datetime import datetime

    return d.strftime("%Y-%m-%d %H:%M:%S") if isinstance(d, datetime) else ""


def firings_table(firings: list[FiringInfo]) -> Table:
    """A table of firings, newest first (ids are in ``--json``)."""
    t = Table(Column("fired for", no_wrap=True), Column("status", no_wrap=True), Column("execution", no_wrap=True),
              "at (UTC)", "note")
    for f in firings:
        what = f"event {f.event_id}" if f.source == "event" else f.fire_key
        t.add_row(escape(what), status_markup(f.status), escape(f.execution_id or ""), _when(f.created_at),
                  escape(f.error or ""))
    return t


@triggers_app.command("add")
def add_cmd(
    name: str = typer.Argument(..., help="The trigger's name."),
    pipeline: str = typer.Option(..., "--pipeline", "-f",
                                 help="The pipeline: a YAML/Python file, module:NAME or a registered pipeline."),
    cron: str = typer.Option(None, "--cron", help="Fire on this cron schedule (UTC), e.g. '0 * * * *'."),
    every: str = typer.Option(None, "--every", help="Fire every period, e.g. 1h, 30m, 1d."),
    on: str = typer.Option(None, "--on", help="Fire on events of this type, e.g. dataset.version_created."),
    where: list[str] = typer.Option([], "--where", help="Event payload filter FIELD=VALUE (repeatable)."),
    param: list[str] = typer.Option([], "--param", "-p",
                                    help="A pipeline parameter NAME=TEMPLATE, e.g. "
                                         "dataset='${event.payload.dataset}:${event.payload.version}' (repeatable)."),
    cooldown: str = typer.Option("0", "--cooldown", help="Skip firings within this long of the last one (10m, 1h)."),
    executor: str = typer.Option("local", "--executor", "-e", help="Pipeline executor: local, thread, inline, ray."),
    description: str = typer.Option("", "--description", help="What the trigger is for."),
    disabled: bool = typer.Option(False, "--disabled", help="Add it disabled."),
    replace: bool = typer.Option(False, "--replace", help="Update the trigger if it exists."),
    as_json: bool = JsonOpt,
) -> None:
    """Add a trigger: --cron, --every or --on EVENT_TYPE [--where k=v], starting --pipeline with --param values."""
    from loopml.errors import InvalidInput
    from loopml.triggers import add_trigger

    rules = [x for x in (cron, every, on) if x is not None]
    if len(rules) != 1:
        raise InvalidInput("give exactly one of --cron EXPR, --every PERIOD or --on EVENT_TYPE")
    schedule = cron if cron is not None else (f"every {every}" if every is not None else None)
    params = parse_pairs(param, "--param", "dataset=${event.payload.dataset}")
    flt = parse_pairs(where, "--where", "new_state=ALARM")
    with open_workspace() as ws:
        t = add_trigger(ws, name, pipeline=pipeline, params=params, schedule=schedule, event_type=on,
                        event_filter=flt or None, enabled=not disabled, cooldown_s=cooldown, executor=executor,
                        description=description, replace=replace)
    if as_json:
        print_json(t.to_dict())
        return
    state = "" if t.enabled else " [dim](disabled)[/]"
    console.print(f"trigger [bold]{escape(t.name)}[/]: {escape(t.rule)} → pipeline {escape(t.pipeline)}{state}")
    if t.params:
        console.print("  params " + escape(", ".join(f"{k}={v}" for k, v in t.params.items())))
    console.print("  [dim]`loopml scheduler` fires it; `loopml triggers fire " + escape(t.name) + "` by hand[/]")


@triggers_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List the triggers with their rule, pipeline and last firing."""
    from loopml.triggers import list_firings, list_triggers

    with open_workspace() as ws:
        items = list_triggers(ws)
        last: dict[str, FiringInfo | None] = {}
        for t in items:
            recent = list_firings(ws, trigger=t.name, limit=1)
            last[t.name] = recent[0] if recent else None
    if as_json:
        print_json([{**t.to_dict(), "last_firing": f.to_dict() if (f := last[t.name]) else None} for t in items])
        return
    if not items:
        console.print("No triggers. Add one with `loopml triggers add NAME --pipeline FILE --on EVENT_TYPE`.")
        return
    table = Table(Column("trigger", no_wrap=True), "rule", "pipeline", "params", "enabled", "last firing")
    for t in items:
        f = last[t.name]
        table.add_row(escape(t.name), escape(t.rule), escape(t.pipeline),
                      escape(", ".join(f"{k}={v}" for k, v in t.params.items())),
                      "yes" if t.enabled else "[dim]no[/]",
                      f"{status_markup(f.status)} {_when(f.created_at)}" if f else "[dim]never[/]")
    console.print(table)


@triggers_app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="The trigger."),
    limit: int = typer.Option(10, "--limit", "-n", help="How many recent firings to show."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a trigger and its recent firings."""
    from loopml.triggers import get_trigger, list_firings

    with open_workspace() as ws:
        t = get_trigger(ws, name)
        firings = list_firings(ws, trigger=name, limit=max(1, limit))
    if as_json:
        print_json({**t.to_dict(), "firings": [f.to_dict() for f in firings]})
        return
    console.print(f"[bold]{escape(t.name)}[/]  {'enabled' if t.enabled else '[dim]disabled[/]'}")
    if t.description:
        console.print(f"  description  {escape(t.description)}")
    console.print(f"  rule         {escape(t.rule)}")
    console.print(f"  pipeline     {escape(t.pipeline)} ({escape(t.pipeline_source or 'kept definition')}, "
                  f"version {t.pipeline_version[:12]}) on the {escape(t.executor)} executor")
    if t.params:
        console.print("  params       " + escape(", ".join(f"{k}={v}" for k, v in t.params.items())))
    if t.cooldown_s:
        from loopml.triggers.schedules import format_duration

        console.print(f"  cooldown     {format_duration(t.cooldown_s)}")
    if firings:
        console.print(firings_table(firings))
    else:
        console.print("  [dim]never fired[/]")


@triggers_app.command("remove")
def remove_cmd(name: str = typer.Argument(..., help="The trigger.")) -> None:
    """Remove a trigger and its firing records (executions stay)."""
    from loopml.triggers import remove_trigger

    with open_workspace() as ws:
        remove_trigger(ws, name)
    console.print(f"removed trigger {escape(name)}")


@triggers_app.command("enable")
def enable_cmd(name: str = typer.Argument(..., help="The trigger.")) -> None:
    """Enable a trigger (what happened while it was disabled does not fire it)."""
    from loopml.triggers import enable_trigger

    with open_workspace() as ws:
        enable_trigger(ws, name)
    console.print(f"enabled trigger {escape(name)}")


@triggers_app.command("disable")
def disable_cmd(name: str = typer.Argument(..., help="The trigger.")) -> None:
    """Disable a trigger."""
    from loopml.triggers import disable_trigger

    with open_workspace() as ws:
        disable_trigger(ws, name)
    console.print(f"disabled trigger {escape(name)}")


@triggers_app.command("fire")
def fire_cmd(
    name: str = typer.Argument(..., help="The trigger."),
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter value NAME=VALUE that replaces its "
                                                               "template (repeatable)."),
    event: int = typer.Option(None, "--event", help="Fire for this event id, as the scheduler would."),
    key: str = typer.Option(None, "--key", help="An idempotency key: firing again with it does nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Fire a trigger now and wait for its pipeline; exit 1 unless the execution succeeds."""
    from loopml.triggers import fire_trigger

    params = parse_pairs(param, "--param", "dataset=churn:3")
    with open_workspace() as ws:
        f = fire_trigger(ws, name, params=params or None, event_id=event, key=key)
    if as_json:
        print_json(f.to_dict())
    else:
        console.print(f"trigger [bold]{escape(name)}[/] fired ({escape(f.fire_key)}): {status_markup(f.status)}"
                      + (f", execution {escape(f.execution_id)}" if f.execution_id else ""))
        if f.params:
            console.print("  params " + escape(", ".join(f"{k}={v!r}" for k, v in f.params.items())))
        if f.error:
            console.print(f"  [red]{escape(f.error)}[/]")
        if f.execution_id:
            console.print(f"  [dim]details: loopml pipelines show {escape(f.execution_id)}[/]")
    if f.status != "Succeeded":
        raise typer.Exit(1)
