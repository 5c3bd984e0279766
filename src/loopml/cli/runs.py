"""``loopml runs``: list, search, show and compare tracked runs."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, print_json

if TYPE_CHECKING:
    from loopml.track import RunInfo, Tracker

runs_app = typer.Typer(help="Browse experiment runs: search, show, compare.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

_STATUS_STYLE = {"FINISHED": "green", "FAILED": "red", "KILLED": "red", "RUNNING": "yellow"}
#: metric and param columns `runs list` shows at most
_MAX_METRICS = 6
_MAX_PARAMS = 4


@contextmanager
def _tracker() -> Iterator[Tracker]:
    """A read-only tracker (no flusher thread, no git call) over the current workspace."""
    from loopml.track import Tracker

    with open_workspace() as ws:
        tracker = Tracker(ws, flush_interval=0, capture_code_version=False)
        try:
            yield tracker
        finally:
            tracker.close()


def _num(v: float | None) -> str:
    if v is None:
        return ""
    if math.isnan(v):
        return "nan"
    return f"{v:.6g}"


def _status(s: str) -> str:
    return f"[{_STATUS_STYLE.get(s, 'white')}]{s}[/]"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _keys_in(filter: str | None, sort: Sequence[str], entity: str) -> list[str]:
    """Keys of ``entity`` the filter and sort mention (shown first, as columns)."""
    from loopml.track._filter import parse_filter, parse_order_by

    keys = [c.key for c in parse_filter(filter) if c.entity == entity]
    keys += [k.key for k in parse_order_by(list(sort)) if k.entity == entity]
    return list(dict.fromkeys(keys))


@runs_app.command("list")
def list_cmd(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only runs of this experiment."),
    filter: str = typer.Option(None, "--filter", "-f",
                               help="E.g. \"metrics.auc > 0.9 and params.max_depth = 6\"."),
    sort: list[str] = typer.Option([], "--sort", "-s",
                                   help="KEY [ASC|DESC], e.g. \"metrics.auc DESC\" (repeatable)."),
    limit: int = typer.Option(100, "--limit", "-n", help="At most this many runs."),
    as_json: bool = JsonOpt,
) -> None:
    """List runs, newest first, optionally filtered and sorted."""
    with _tracker() as tracker:
        runs = tracker.search_runs(experiment=experiment, filter=filter, order_by=sort,
                                   max_results=limit)
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    if not runs:
        console.print("No runs match." if (filter or experiment) else
                      "No runs yet. Start one with `Tracker(ws).start_run(...)` or `loopml train`.")
        return
    mkeys = _keys_in(filter, sort, "metric")
    mkeys += sorted({k for r in runs for k in r.metrics} - set(mkeys))
    pkeys = _keys_in(filter, sort, "param")
    pkeys += sorted({k for r in runs for k in r.params} - set(pkeys))
    console.print(_runs_table(runs, mkeys[:_MAX_METRICS], pkeys[:_MAX_PARAMS], console.width))
    console.print(f"{len(runs)} run(s)" + (f" (limit {limit})" if len(runs) == limit else "")
                  + "; ids are shortened: `loopml runs show ID` takes any unique prefix")


def _runs_table(runs: list[RunInfo], mkeys: list[str], pkeys: list[str], width: int) -> Table:
    """Compact enough for 80 columns: short ids, and only the metric/param columns that fit."""
    many_experiments = len({r.experiment for r in runs}) > 1
    base = [("run", 12), ("name", max(len(r.name) for r in runs)), ("status", 8),
            ("started", 11), ("took", 6)]
    if many_experiments:
        base.insert(1, ("experiment", max(len(r.experiment) for r in runs)))
    used = sum(w + 2 for _, w in base)
    extra: list[tuple[str, str]] = []
    for kind, key in [*(("m", k) for k in mkeys), *(("p", k) for k in pkeys)]:
        cost = max(len(key), 8) + 2
        if used + cost > width and extra:
            break
        extra.append((kind, key))
        used += cost
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True,
              show_edge=False)
    for name, _ in base:
        t.add_column(name, no_wrap=True)
    for kind, key in extra:
        t.add_column(escape(key) if kind == "m" else f"[dim]{escape(key)}[/]", no_wrap=True,
                     justify="right" if kind == "m" else "left", overflow="ellipsis")
    for r in runs:
        cells = [r.id[:12], escape(r.name), _status(r.status), r.start_time.strftime("%m-%d %H:%M"),
                 _duration(r.duration)]
        if many_experiments:
            cells.insert(1, escape(r.experiment))
        for kind, key in extra:
            cells.append(_num(r.metrics.get(key)) if kind == "m" else escape(r.params.get(key, "")))
        t.add_row(*cells)
    return t


@runs_app.command("show")
def show_cmd(run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
             as_json: bool = JsonOpt) -> None:
    """Show everything recorded for a run."""
    with _tracker() as tracker:
        info = tracker.get_run(run)
        children = tracker.child_runs(info.id)
    if as_json:
        print_json({**info.to_dict(), "child_runs": [c.id for c in children]})
        return
    _print_run(info, [c.id for c in children])


def _print_run(info: RunInfo, children: list[str]) -> None:
    console.print(f"[bold]{escape(info.name)}[/]  {info.id}  {_status(info.status)}")
    rows: list[tuple[str, str]] = [
        ("experiment", info.experiment),
        ("started", f"{info.start_time:%Y-%m-%d %H:%M:%S} UTC"),
        ("duration", _duration(info.duration)),
        ("by", f"{info.user}@{info.host}"),
    ]
    if info.message:
        rows.append(("message", info.message))
    if info.parent_run_id:
        rows.append(("parent", info.parent_run_id))
    if children:
        rows.append(("children", f"{len(children)}: " + ", ".join(children[:5])
                     + (" ..." if len(children) > 5 else "")))
    if info.code_version:
        cv = info.code_version
        rows.append(("code", f"{cv.commit[:12]}{' (dirty)' if cv.dirty else ''} in {cv.repo}"))
    if info.seed is not None:
        rows.append(("seed", str(info.seed)))
    if info.packages:
        rows.append(("packages", ", ".join(f"{k} {v}" for k, v in info.packages.items())))
    for label, value in rows:
        console.print(f"  {label:<10} {escape(value)}")
    for title, values in (("params", info.params), ("tags", info.tags)):
        if values:
            t = Table("key", "value", title=title, title_justify="left")
            for k, v in sorted(values.items()):
                t.add_row(escape(k), escape(v))
            console.print(t)
    if info.metrics:
        t = Table("metric", "latest", title="metrics", title_justify="left")
        for mkey, mvalue in sorted(info.metrics.items()):
            t.add_row(escape(mkey), _num(mvalue))
        console.print(t)
    if info.datasets:
        t = Table("dataset", "role", "id", title="datasets", title_justify="left")
        for d in info.datasets:
            t.add_row(escape(d.ref), escape(d.role), d.id)
        console.print(t)
    if info.artifacts:
        t = Table("artifact", "size", "sha256", title="artifacts", title_justify="left")
        for a in info.artifacts:
            t.add_row(escape(a.name), f"{a.size:,}", a.sha256[:16] + "…")
        console.print(t)


@runs_app.command("compare")
def compare_cmd(
    runs: list[str] = typer.Argument(..., help="Two or more run ids (or unique prefixes)."),
    out: Path = typer.Option(None, "--out", "-o",
                             help="Also write an offline HTML chart of the metric histories."),
    as_json: bool = JsonOpt,
) -> None:
    """Params and metrics of runs side by side; differing params in bold."""
    with _tracker() as tracker:
        cmp = tracker.compare(runs)
        chart = tracker.write_comparison_chart([r.id for r in cmp.runs], out) if out else None
    if as_json:
        data: dict[str, Any] = cmp.to_dict()
        data["chart"] = str(chart) if chart else None
        print_json(data)
        return
    differing = set(cmp.differing_params())
    t = Table("", *(f"{escape(r.name)}\n[dim]{r.id[:12]}[/]" for r in cmp.runs))
    t.add_row("experiment", *(escape(r.experiment) for r in cmp.runs))
    t.add_row("status", *(_status(r.status) for r in cmp.runs))
    t.add_row("duration", *(_duration(r.duration) for r in cmp.runs), end_section=True)
    for k, pvalues in cmp.params.items():
        style = "bold" if k in differing else "dim"
        t.add_row(f"[{style}]{escape(k)}[/]",
                  *(f"[{style}]{escape(v)}[/]" if v is not None else "" for v in pvalues))
    if cmp.params:
        t.rows[-1].end_section = True
    for k, mvalues in cmp.metrics.items():
        t.add_row(f"[cyan]{escape(k)}[/]", *(_num(v) for v in mvalues))
    console.print(t)
    if chart:
        console.print(f"[green]Wrote[/] {chart}")


@runs_app.command("experiments")
def experiments_cmd(as_json: bool = JsonOpt) -> None:
    """List experiments with their run counts."""
    with _tracker() as tracker:
        exps = tracker.list_experiments()
    if as_json:
        print_json([e.to_dict() for e in exps])
        return
    if not exps:
        console.print("No experiments yet.")
        return
    t = Table("experiment", "runs", "last run (UTC)")
    for e in exps:
        t.add_row(escape(e.name), str(e.run_count),
                  e.last_run_at.strftime("%Y-%m-%d %H:%M") if e.last_run_at else "")
    console.print(t)
