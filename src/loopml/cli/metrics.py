"""``loopml metrics``: the workspace's time series — list names, query points or statistics."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, parse_pairs, print_json

metrics_app = typer.Typer(help="Time series written by endpoints and monitors (the CloudWatch role).",
                          no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")

DimOpt = typer.Option([], "--dimension", "-d", help="Match points with this dimension (NAME=VALUE, repeatable).")
SinceOpt = typer.Option(None, "--since", help="From this time: ISO-8601 or an age such as 15m, 2h, 1d.")
UntilOpt = typer.Option(None, "--until", help="Up to this time (exclusive): ISO-8601 or an age.")


def _when(t: datetime | None) -> str:
    return "" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def _times(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    from loopml.metrics import parse_time

    return (parse_time(since) if since else None, parse_time(until) if until else None)


@metrics_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List the metric names with their number of series and points."""
    with open_workspace() as ws:
        infos = ws.metrics.list_metrics()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    if not infos:
        console.print("No metrics yet. Endpoints and monitoring jobs write them; "
                      "or add one with `loopml metrics put NAME VALUE`.")
        return
    t = Table("metric", "series", "points", "first (UTC)", "last (UTC)")
    for i in infos:
        t.add_row(escape(i.name), str(i.series), str(i.points), _when(i.first), _when(i.last))
    console.print(t)


@metrics_app.command("query")
def query_cmd(
    name: str = typer.Argument(..., help="The metric, e.g. ModelLatency."),
    dimension: list[str] = DimOpt,
    since: str = SinceOpt,
    until: str = UntilOpt,
    statistic: str = typer.Option(None, "--statistic", "-s",
                                  help="Aggregate per period: Average, Sum, Minimum, Maximum, SampleCount, pNN."),
    period: float = typer.Option(None, "--period", "-p", help="Period of --statistic in seconds (default 60)."),
    limit: int = typer.Option(None, "--limit", "-n", help="Only the newest N points (raw points only)."),
    as_json: bool = JsonOpt,
) -> None:
    """Print the points of metric NAME, or a statistic per period with --statistic/--period."""
    dims = parse_pairs(dimension, "--dimension", "endpoint=churn")
    lo, hi = _times(since, until)
    with open_workspace() as ws:
        if statistic is not None or period is not None:
            stat = statistic or "Average"
            rows = ws.metrics.statistic(name, stat, period_s=period if period is not None else 60,
                                        dimensions=dims, since=lo, until=hi)
            if as_json:
                print_json([{"timestamp": t.isoformat(), "value": v} for t, v in rows])
                return
            if not rows:
                console.print(f"No points of {escape(name)} match.")
                return
            tab = Table("period start (UTC)", escape(stat), title=escape(name))
            for t, v in rows:
                tab.add_row(_when(t), f"{v:.6g}")
            console.print(tab)
            return
        points = ws.metrics.query(name, dimensions=dims, since=lo, until=hi, limit=limit)
    if as_json:
        print_json([p.to_dict() for p in points])
        return
    if not points:
        console.print(f"No points of {escape(name)} match.")
        return
    tab = Table("time (UTC)", "value", "dimensions", title=escape(name))
    for p in points:
        tab.add_row(p.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], f"{p.value:.6g}",
                    escape(", ".join(f"{k}={v}" for k, v in sorted(p.dimensions.items()))))
    console.print(tab)


@metrics_app.command("put")
def put_cmd(
    name: str = typer.Argument(..., help="The metric."),
    value: float = typer.Argument(..., help="The value."),
    dimension: list[str] = DimOpt,
    at: str = typer.Option(None, "--at", help="When it was measured (ISO-8601 or an age; default now)."),
) -> None:
    """Add one point to metric NAME (for scripts, tests and alarm drills)."""
    from loopml.metrics import parse_time

    dims = parse_pairs(dimension, "--dimension", "endpoint=churn")
    with open_workspace() as ws:
        ws.metrics.put(name, value, dimensions=dims, timestamp=parse_time(at) if at else None)
    console.print(f"Added {escape(name)} = {value:g}")


@metrics_app.command("prune")
def prune_cmd(
    older_than: str = typer.Option(..., "--older-than", help="Delete points older than this: an age (14d) or a time."),
) -> None:
    """Delete old points (retention)."""
    from loopml.metrics import parse_time

    with open_workspace() as ws:
        n = ws.metrics.prune(parse_time(older_than))
    console.print(f"Deleted {n} point(s)")
