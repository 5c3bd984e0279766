"""``loopml monitor``: baselines, data-quality and drift runs, and the results of every monitor.

Other monitors (model quality, bias, attribution) add their commands to
``monitor_app`` from their own modules.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Column, Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, print_json

if TYPE_CHECKING:
    from loopml.monitor import MonitoringResult

monitor_app = typer.Typer(
    help="Model monitoring: baselines, data quality and drift, model quality, bias, attribution.",
    no_args_is_help=True,
)
app.add_typer(monitor_app, name="monitor")

_STATUS_STYLE = {"Completed": "green", "CompletedWithViolations": "yellow", "Failed": "red", "NoData": "blue"}


def status_markup(status: str) -> str:
    """A monitoring status in its colour, for rich output."""
    return f"[{_STATUS_STYLE.get(status, 'white')}]{escape(status)}[/]"


def parse_time(text: str | None, what: str) -> datetime | None:
    """Read ``--since``/``--until``: ISO 8601 (UTC if no zone), ``now``, or an age (``30m``, ``2h``, ``7d``).

    Examples
    --------
    >>> parse_time("2026-01-02T03:04:05", "--since").isoformat()
    '2026-01-02T03:04:05+00:00'
    >>> parse_time(None, "--since") is None
    True
    """
    from loopml.errors import InvalidInput
    from loopml.metrics import parse_time as _parse

    if text is None:
        return None
    try:
        return _parse(text)
    except InvalidInput as e:
        raise InvalidInput(f"{what}: {e}") from None


def _columns(*names: str) -> list[Column]:
    """Table columns that wrap rather than cut (ids and statuses must stay readable in narrow terminals)."""
    return [Column(n, overflow="fold") for n in names]


def _when(d: datetime | None) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S") if d else ""


def print_result(res: MonitoringResult, *, verbose: bool = True) -> None:
    """Print a monitoring result: headline, window, violations and where the report is."""
    window = ""
    if res.since or res.until:
        window = f" over {_when(res.since) or '…'} → {_when(res.until) or '…'}"
    console.print(f"[bold]{escape(res.id)}[/]  {escape(res.kind)} on {escape(str(res.target))}{escape(window)}: "
                  f"{status_markup(res.status)}, {res.violation_count} violation(s)")
    s = res.summary
    if s.get("message"):
        console.print(f"  {escape(str(s['message']))}")
    if verbose and isinstance(s.get("violations"), list):
        for v in s["violations"][:20]:
            console.print(f"  [yellow]![/] {escape(str(v.get('feature_name', '')))}: "
                          f"{escape(str(v.get('constraint_check_type', '')))} — {escape(str(v.get('description', '')))}")
        if len(s["violations"]) > 20:
            console.print(f"  … and {len(s['violations']) - 20} more")
    if res.report_path:
        console.print(f"Report: {escape(res.report_path)}")


@monitor_app.command("results")
def results_cmd(
    target: str = typer.Option(None, "--target", "-t", help="Only this endpoint, or dataset NAME:VERSION."),
    kind: str = typer.Option(None, "--kind", "-k", help="Only this monitor: data_quality, model_quality, bias, attribution."),
    status: str = typer.Option(None, "--status", help="Only this status: Completed, CompletedWithViolations, Failed, NoData."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """List recorded monitoring executions, newest first."""
    from loopml.monitor import list_results

    with open_workspace() as ws:
        rows = list_results(ws, kind=kind, target=target, status=status, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        console.print("No monitoring results yet; run `loopml monitor run EP` (or --data NAME:VER).")
        return
    windows = any(r.since or r.until for r in rows)
    table = Table(*_columns("id", "monitor", "target", "status", "violations", *(["window"] if windows else []),
                            "created"))
    for r in rows:
        window = [f"{_when(r.since)} → {_when(r.until)}" if (r.since or r.until) else ""] if windows else []
        table.add_row(escape(r.id), escape(r.kind), escape(str(r.target)), status_markup(r.status),
                      str(r.violation_count), *window, _when(r.created_at))
    console.print(table)


@monitor_app.command("show")
def show_cmd(
    result_id: str = typer.Argument(..., help="The result id (or a unique prefix), see `loopml monitor results`."),
    as_json: bool = JsonOpt,
) -> None:
    """Show one monitoring execution: status, window, violations, outputs."""
    from loopml.monitor import get_result

    with open_workspace() as ws:
        res = get_result(ws, result_id)
    if as_json:
        print_json(res.to_dict())
        return
    print_result(res)
    for name, sha in res.outputs.items():
        console.print(f"  {escape(name)}: {sha}")


@monitor_app.command("baselines")
def baselines_cmd(
    kind: str = typer.Option(None, "--kind", "-k", help="Only baselines of this monitor."),
    as_json: bool = JsonOpt,
) -> None:
    """List stored baselines, newest first."""
    from loopml.monitor import list_baselines

    with open_workspace() as ws:
        rows = list_baselines(ws, kind=kind)
    if as_json:
        print_json([b.to_dict() for b in rows])
        return
    if not rows:
        console.print("No baselines yet; create one with `loopml monitor baseline NAME[:VER]`.")
        return
    table = Table(*_columns("id", "name", "monitor", "dataset", "model", "features", "rows", "created"))
    for b in rows:
        table.add_row(escape(b.id), escape(b.name), escape(b.kind), escape(b.dataset_ref or ""),
                      escape(b.model_ref or ""), str(len(b.details.get("features", [])) or ""),
                      f"{b.details['item_count']:,}" if "item_count" in b.details else "", _when(b.created_at))
    console.print(table)


@monitor_app.command("baseline")
def baseline_cmd(
    data: str = typer.Argument(None, help="Dataset NAME or NAME:VERSION (default with --model: its training data)."),
    model: str = typer.Option(None, "--model", "-m", help="A registered model M:V (or M@alias): baseline its training data and link it."),
    name: str = typer.Option(None, "--name", "-n", help="The baseline's name (default: DATASET-VERSION)."),
    feature: list[str] = typer.Option(None, "--feature", "-f", help="Only this column (repeat; default: the model's inputs, else all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Compute a data-quality baseline: statistics.json and suggested constraints.json."""
    from loopml.monitor import baseline

    with open_workspace() as ws:
        b = baseline(ws, data, model=model, name=name, features=feature or None)
        paths = {k: ws.artifacts.local_path(v, verify=False) for k, v in b.outputs.items()}
    if as_json:
        print_json({**b.to_dict(), "paths": paths})
        return
    src = b.dataset_ref or "a DataFrame"
    via = f" (training data of {b.model_ref})" if b.model_ref else ""
    console.print(f"[green]Baseline {escape(b.name)}[/] ({b.id}) from {escape(src)}{escape(via)}: "
                  f"{b.details.get('item_count', 0):,} rows, {len(b.details.get('features', []))} features")
    types: dict[str, int] = {}
    for f in b.details.get("features", []):
        types[f["inferred_type"]] = types.get(f["inferred_type"], 0) + 1
    console.print("  " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
    for k, p in paths.items():
        console.print(f"  {escape(k)}: {escape(p or b.outputs[k])}")
    console.print("Edit a copy of constraints.json and pass it to `loopml monitor run --constraints FILE` to change checks.")


@monitor_app.command("run")
def run_cmd(
    endpoint: str = typer.Argument(None, help="The endpoint whose captured inputs to check."),
    data: str = typer.Option(None, "--data", "-d", help="Check dataset NAME[:VERSION] instead of an endpoint."),
    since: str = typer.Option(None, "--since", help="Window start: ISO time (UTC) or an age such as 1h, 7d."),
    until: str = typer.Option(None, "--until", help="Window end: ISO time (UTC) or an age; default now."),
    baseline_ref: str = typer.Option(None, "--baseline", "-b", help="Baseline name or id (default: the newest for the endpoint's model or the dataset)."),
    constraints: Path = typer.Option(None, "--constraints", "-c", help="An edited constraints.json to check against instead of the baseline's."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the HTML report to this file."),
    as_json: bool = JsonOpt,
) -> None:
    """Data quality and drift: check captured inputs (or a dataset) against a baseline.

    Writes constraint_violations.json, statistics.json and an HTML report,
    and the metrics feature_baseline_drift_<f>, feature_non_null_<f>,
    dataset_drift_share and violations. A window without captured data ends
    as NoData (no metrics), not as an error.
    """
    from loopml.errors import InvalidInput
    from loopml.monitor import run_data_quality

    if (endpoint is None) == (data is None):
        raise InvalidInput("give an endpoint (loopml monitor run EP) or --data NAME[:VER], not both")
    t0, t1 = parse_time(since, "--since"), parse_time(until, "--until")
    with open_workspace() as ws:
        res = run_data_quality(ws, endpoint=endpoint, dataset=data, baseline=baseline_ref, since=t0, until=t1,
                               constraints=constraints, out=out)
    if as_json:
        print_json({**res.to_dict(), "out": str(out) if out else None})
        return
    print_result(res)
    s = res.summary
    if res.status != "NoData":
        drifted = s.get("drifted_features") or []
        console.print(f"  {s.get('item_count', 0):,} rows checked against {escape(str(s.get('baseline')))}; "
                      f"drift in {len(drifted)} of {len(s.get('scores') or {})} features "
                      f"({100 * float(s.get('drift_share') or 0):.1f}%)"
                      + (": " + escape(", ".join(drifted)) if drifted else ""))
    if out:
        console.print(f"Report copy: {escape(str(out))}")


__all__ = ["monitor_app", "parse_time", "print_result", "status_markup"]
