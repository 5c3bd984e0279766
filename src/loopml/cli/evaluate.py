"""``loopml evaluate``: metrics, threshold, business table and an HTML report for stored predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

_TASKS = "auto, classification, binary, multiclass, regression, forecasting, clustering, ranking"


@app.command("evaluate")
def evaluate_cmd(
    model_or_run: str = typer.Argument(None, metavar="MODEL_OR_RUN", show_default=False, help="A model or run to evaluate (arrives with the training stage; for now pass --prediction)."),
    data: str = typer.Option(None, "--data", "-d", help="Dataset NAME or NAME:VERSION holding the predictions (latest if no version)."),
    target: str = typer.Option(None, "--target", "-t", help="Column of true labels, values or relevances."),
    prediction: str = typer.Option(None, "--prediction", "-p", help="Column of predicted labels or values (cluster labels for clustering)."),
    score: list[str] = typer.Option([], "--score", "-s", help="Score column: the positive-class score (binary, ranking) or one per class in sorted class order (multiclass; repeat it)."),
    costs: Path = typer.Option(None, "--costs", help="Costs YAML file: cost_fp, cost_fn, benefit_tp, benefit_tn, price_per_prediction, price_per_compute_second, predictions_per_day or users_per_day, development_cost, baseline."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the HTML report to this file."),
    task: str = typer.Option("auto", "--task", help=f"One of {_TASKS}."),
    k: list[int] = typer.Option([10], "--k", help="Ranking cut-off (repeatable)."),
    group: str = typer.Option(None, "--group", help="Ranking: the query or user column."),
    labels: list[str] = typer.Option([], "--label", help="Classes in the order of the --score columns (repeatable)."),
    pos_label: str = typer.Option(None, "--pos-label", help="Positive class of a binary task (default: the last sorted class)."),
    threshold: float = typer.Option(None, "--threshold", help="Cut-off on binary scores when there is no --prediction (default 0.5)."),
    threshold_by: str = typer.Option("auto", "--threshold-by", help="Select a threshold by 'f1', 'cost' or 'auto' (cost when the costs price errors); 'none' to skip."),
    latency_p50: float = typer.Option(None, "--latency-p50-ms", min=0, help="Measured median inference latency, for the alignment table and compute cost."),
    latency_p99: float = typer.Option(None, "--latency-p99-ms", min=0, help="Measured 99th-percentile inference latency."),
    seasonality: int = typer.Option(1, "--seasonality", min=1, help="Forecasting: season length in steps for the MASE scale."),
    run: str = typer.Option(None, "--run", help="Tracking run to record the metrics on (as a nested evaluation run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate the predictions stored in a dataset: metrics, curves, threshold, business metrics.

    Prints the metrics and the business table, and stores the JSON result and
    a self-contained HTML report with the dataset version (see
    `loopml data show NAME`).
    """
    from loopml.errors import InvalidInput
    from loopml.evaluate import evaluate_dataset

    if model_or_run is not None:
        raise InvalidInput(
            f"model evaluation arrives with the training stage; to evaluate stored predictions, drop "
            f"{model_or_run!r} and pass --data NAME --target COL --prediction COL"
        )
    if data is None:
        raise click.UsageError("Missing option '--data' / '-d'.")
    by = None if threshold_by.lower() == "none" else threshold_by.lower()
    latency = None
    if latency_p50 is not None or latency_p99 is not None:
        latency = {"p50_ms": latency_p50, "p99_ms": latency_p99}
    with open_workspace() as ws, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        job = progress.add_task(f"evaluating {data}", total=None)
        res = evaluate_dataset(
            ws, data, target, prediction, score or None, costs=costs, out=out, run_id=run,
            task=task, labels=labels or None, pos_label=pos_label, threshold=threshold,
            threshold_by=by, k=k, group=group, latency=latency, seasonality=seasonality,
            progress=lambda stage: progress.update(job, description=f"evaluating {data}: {stage}"),
        )
    if as_json:
        print_json(res.to_dict())
        return
    _print(res)


def _print(res: Any) -> None:
    from loopml.evaluate import BUSINESS_ROWS, format_number, metric_label

    src = res.source
    what = f"{src.get('dataset')}: {res.n_rows:,} rows, {res.task}" + (" (inferred)" if res.info.get("task_inferred") else "")
    if res.pos_label is not None:
        what += f", positive class {escape(str(res.pos_label))}"
    console.print(f"[green]Evaluated {escape(what)}[/]")
    for w in res.warnings:
        console.print(f"  [yellow]![/] {escape(w)}")
    t = Table("metric", "value", title="metrics")
    for name, v in res.metrics.items():
        custom = " (custom)" if name in res.custom else ""
        t.add_row(escape(metric_label(name) + custom), format_number(v))
    console.print(t)
    th = res.threshold
    if th is not None:
        m = th.metrics
        extra = f", expected net cost {format_number(m['expected_cost'])}" if "expected_cost" in m else ""
        console.print(
            f"Threshold {format_number(th.threshold)} (best {'F1' if th.by == 'f1' else 'expected cost'}): "
            f"precision {format_number(m['precision'])}, recall {format_number(m['recall'])}, "
            f"F1 {format_number(m['f1'])}{extra}"
        )
    b = res.business
    if b:
        cur = b.get("currency") or ""
        if b["scenarios"]:
            bt = Table(cur or "amount", *(escape(s["name"]) for s in b["scenarios"]), title="business")
            for key, label, _kind in BUSINESS_ROWS:
                values = [s.get(key) for s in b["scenarios"]]
                if all(v is None for v in values):
                    continue
                bt.add_row(escape(label), *(format_number(v) for v in values))
            console.print(bt)
        metrics: list[str] = []
        for a in b["alignment"]:
            metrics.extend(m for m in a["metrics"] if m not in metrics)
        at = Table("predictions", *(escape(metric_label(m)) for m in metrics), "p50 ms", "p99 ms",
                   "cost/pred.", "value/day", title="model–business alignment")
        for a in b["alignment"]:
            at.add_row(escape(a["name"]), *(format_number(a["metrics"].get(m)) for m in metrics),
                       format_number(a["latency_p50_ms"]), format_number(a["latency_p99_ms"]),
                       format_number(a["cost_per_prediction"]), format_number(a["value_per_day"]))
        console.print(at)
        for n in b.get("notes", []):
            console.print(f"  [blue]·[/] {escape(n)}")
    st = res.stored
    if st is not None:
        console.print(f"Report: {escape(st.out or st.report_path or 'artifact ' + st.report_sha256)}")
        if st.run_id:
            console.print(f"Logged to run {escape(st.run_id)}")
