"""``loopml alarms``: metric alarms — put, list, describe, evaluate, set-state, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, parse_pairs, print_json

if TYPE_CHECKING:
    from loopml.metrics import StateChange

alarms_app = typer.Typer(help="Metric alarms (CloudWatch semantics): OK, ALARM, INSUFFICIENT_DATA.",
                         no_args_is_help=True)
app.add_typer(alarms_app, name="alarms")

_STYLE = {"OK": "green", "ALARM": "bold red", "INSUFFICIENT_DATA": "yellow"}


def _state(s: str) -> str:
    return f"[{_STYLE.get(s, 'white')}]{s}[/]"


def _print_change(c: StateChange) -> None:
    console.print(f"{escape(c.alarm)}: {_state(c.old_state)} -> {_state(c.new_state)}  {escape(c.reason)}")
    for a in c.actions:
        outcome = "ok" if a.ok else f"[red]failed[/]: {escape(a.error or '')}"
        console.print(f"  action {escape(a.action)}: {outcome}")


@alarms_app.command("list")
def list_cmd(
    state: str = typer.Option(None, "--state", help="Only alarms in this state (OK, ALARM, INSUFFICIENT_DATA)."),
    as_json: bool = JsonOpt,
) -> None:
    """List the alarms with their state and rule."""
    from loopml.metrics import list_alarms

    with open_workspace() as ws:
        items = list_alarms(ws, state=state)
    if as_json:
        print_json([a.to_dict() for a in items])
        return
    if not items:
        console.print("No alarms. Create one with `loopml alarms put NAME --metric M --threshold X --comparison >`.")
        return
    t = Table("alarm", "state", "rule", "dimensions", "since (UTC)")
    for a in items:
        t.add_row(escape(a.name), _state(a.state), escape(a.condition),
                  escape(", ".join(f"{k}={v}" for k, v in sorted(a.dimensions.items()))),
                  a.state_updated_at.strftime("%Y-%m-%d %H:%M:%S"))
    console.print(t)


@alarms_app.command("describe")
def describe_cmd(
    name: str = typer.Argument(..., help="The alarm."),
    history: int = typer.Option(10, "--history", "-n", help="How many recent state changes to show."),
    as_json: bool = JsonOpt,
) -> None:
    """Show an alarm: its configuration, state, and recent state changes."""
    from loopml.metrics import alarm_history, get_alarm

    with open_workspace() as ws:
        a = get_alarm(ws, name)
        changes = alarm_history(ws, name, limit=max(history, 1))[:history]
    if as_json:
        print_json({**a.to_dict(), "history": [c.to_dict() for c in changes]})
        return
    console.print(f"[bold]{escape(a.name)}[/]  {_state(a.state)}  since {a.state_updated_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(f"  reason       {escape(a.state_reason)}")
    if a.description:
        console.print(f"  description  {escape(a.description)}")
    console.print(f"  rule         {escape(a.condition)}")
    console.print(f"  comparison   {a.comparison}; missing data: {a.treat_missing}")
    console.print("  dimensions   " + escape(", ".join(f"{k}={v}" for k, v in sorted(a.dimensions.items())) or "(any)"))
    console.print("  actions      " + escape(", ".join(("event", *[x for x in a.actions if x != "event"]))))
    if changes:
        t = Table("when (UTC)", "from", "to", "reason", "actions", title="history")
        for c in changes:
            acts = ", ".join(("ok" if r.ok else f"failed ({r.error})") for r in c.actions)
            t.add_row(c.timestamp.strftime("%Y-%m-%d %H:%M:%S"), _state(c.old_state), _state(c.new_state),
                      escape(c.reason), escape(acts))
        console.print(t)


@alarms_app.command("put")
def put_cmd(
    name: str = typer.Argument(..., help="The alarm (created, or its configuration replaced)."),
    metric: str = typer.Option(..., "--metric", "-m", help="The metric it watches."),
    threshold: float = typer.Option(..., "--threshold", "-t", help="The threshold."),
    comparison: str = typer.Option(..., "--comparison", "-c",
                                   help="GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold, "
                                        "LessThanOrEqualToThreshold, or > >= < <=."),
    dimension: list[str] = typer.Option([], "--dimension", "-d", help="NAME=VALUE the points must have (repeatable)."),
    statistic: str = typer.Option("Average", "--statistic", "-s",
                                  help="Average, Sum, Minimum, Maximum, SampleCount or pNN."),
    period: int = typer.Option(60, "--period", "-p", help="Period in seconds."),
    evaluation_periods: int = typer.Option(1, "--evaluation-periods", "-e", help="M: periods looked at."),
    datapoints: int = typer.Option(None, "--datapoints", help="N: breaching periods needed for ALARM (default M)."),
    treat_missing: str = typer.Option("missing", "--treat-missing",
                                      help="missing, breaching, notBreaching or ignore."),
    action: list[str] = typer.Option([], "--action", "-a", help="webhook:URL to POST each state change to (repeatable)."),
    description: str = typer.Option("", "--description", help="What the alarm is for."),
    as_json: bool = JsonOpt,
) -> None:
    """Create or update alarm NAME."""
    from loopml.metrics import put_alarm

    dims = parse_pairs(dimension, "--dimension", "endpoint=churn")
    with open_workspace() as ws:
        a = put_alarm(ws, name, metric=metric, threshold=threshold, comparison=comparison, dimensions=dims,
                      statistic=statistic, period_s=period, evaluation_periods=evaluation_periods,
                      datapoints_to_alarm=datapoints, treat_missing=treat_missing, actions=action,
                      description=description)
    if as_json:
        print_json(a.to_dict())
        return
    console.print(f"Alarm [bold]{escape(a.name)}[/] ({_state(a.state)}): {escape(a.condition)}")


@alarms_app.command("delete")
def delete_cmd(name: str = typer.Argument(..., help="The alarm.")) -> None:
    """Delete alarm NAME and its history."""
    from loopml.metrics import delete_alarm

    with open_workspace() as ws:
        delete_alarm(ws, name)
    console.print(f"Deleted alarm {escape(name)}")


@alarms_app.command("evaluate")
def evaluate_cmd(
    names: list[str] = typer.Argument(None, help="Alarms to evaluate (default: all)."),
    now: str = typer.Option(None, "--now", help="Evaluate as of this time (ISO-8601 or an age; default now)."),
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate alarms now; print the state changes (and run their actions)."""
    from loopml.metrics import evaluate_alarms, parse_time

    with open_workspace() as ws:
        changes = evaluate_alarms(ws, names=names or None, now=parse_time(now) if now else None)
    if as_json:
        print_json([c.to_dict() for c in changes])
        return
    if not changes:
        console.print("No state changes.")
    for c in changes:
        _print_change(c)


@alarms_app.command("set-state")
def set_state_cmd(
    name: str = typer.Argument(..., help="The alarm."),
    state: str = typer.Argument(..., help="OK, ALARM or INSUFFICIENT_DATA."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (kept in the history)."),
    as_json: bool = JsonOpt,
) -> None:
    """Set an alarm's state by hand (drills, tests); the next evaluation may change it back."""
    from loopml.metrics import set_alarm_state

    with open_workspace() as ws:
        c = set_alarm_state(ws, name, state, reason)
    if as_json:
        print_json(c.to_dict() if c is not None else None)
        return
    if c is None:
        console.print(f"{escape(name)} already is {_state(state.upper())}")
        return
    _print_change(c)
