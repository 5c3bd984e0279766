"""``loopml evaluate``: metrics, threshold, business table and an HTML report for a model or stored predictions."""

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
    model_or_run: str = typer.Argument(None, metavar="MODEL_OR_RUN", show_default=False, help="The model to evaluate: NAME, NAME:VERSION or NAME@ALIAS from the registry, a training run id (or prefix), or a model package id. It predicts --data; without it, --data holds the predictions."),
    data: str = typer.Option(None, "--data", "-d", help="Dataset NAME or NAME:VERSION holding the model's inputs, or the predictions (latest if no version)."),
    target: str = typer.Option(None, "--target", "-t", help="Column of true labels, values or relevances (with MODEL_OR_RUN, default: the model's target)."),
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
    latency_rows: int = typer.Option(None, "--latency-rows", min=0, show_default=False, help="With MODEL_OR_RUN: time predict_one on this many sample records (default 200; 0 to skip)."),
    run: str = typer.Option(None, "--run", help="Tracking run to record the metrics on, as a nested evaluation run (with MODEL_OR_RUN, default: the model's training run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate a model, or the predictions stored in a dataset: metrics, curves, threshold, business metrics.

    With MODEL_OR_RUN the model predicts every row of --data and its
    predict_one latency is measured (p50/p99, in the model–business alignment
    table); without it, --prediction / --score name the columns of stored
    predictions. Prints the metrics and the business table, and stores the
    JSON result and a self-contained HTML report with the dataset version
    (see `loopml data show NAME`).
    """
    from loopml.evaluate import evaluate_dataset, evaluate_model

    if data is None:
        raise click.UsageError("Missing option '--data' / '-d'.")
    by: Any = None if threshold_by.lower() == "none" else threshold_by.lower()
    if model_or_run is not None:
        given = [flag for flag, value in (
            ("--prediction", prediction is not None), ("--score", bool(score)), ("--label", bool(labels)),
            ("--group", group is not None), ("--task", task != "auto"),
            ("--latency-p50-ms", latency_p50 is not None), ("--latency-p99-ms", latency_p99 is not None),
        ) if value]
        if given:
            raise click.UsageError(
                f"{' and '.join(given)} {'does' if len(given) == 1 else 'do'} not apply when evaluating the model "
                f"{model_or_run!r}: it predicts --data itself (classes, groups and task come from the model, "
                "latency is measured); drop MODEL_OR_RUN to evaluate stored predictions"
            )
    elif latency_rows is not None:
        raise click.UsageError("--latency-rows applies to MODEL_OR_RUN: stored predictions have no model to time")
    latency = None
    if latency_p50 is not None or latency_p99 is not None:
        latency = {"p50_ms": latency_p50, "p99_ms": latency_p99}
    with open_workspace() as ws, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        what = f"{model_or_run} on {data}" if model_or_run is not None else data
        job = progress.add_task(f"evaluating {what}", total=None)

        def stage(name: str) -> None:
            progress.update(job, description=f"evaluating {what}: {name}")

        if model_or_run is not None:
            res = evaluate_model(
                ws, model_or_run, data, target, costs=costs, out=out, run_id=run, pos_label=pos_label,
                threshold=threshold, threshold_by=by, k=k, seasonality=seasonality,
                latency_rows=200 if latency_rows is None else latency_rows, progress=stage,
            )
        else:
            res = evaluate_dataset(
                ws, data, target, prediction, score or None, costs=costs, out=out, run_id=run,
                task=task, labels=labels or None, pos_label=pos_label, threshold=threshold,
                threshold_by=by, k=k, group=group, latency=latency, seasonality=seasonality, progress=stage,
            )
    if as_json:
        print_json(res.to_dict())
        return
    _print(res)


def _print(res: Any) -> None:
    from loopml.evaluate import BUSINESS_ROWS, format_number, metric_label

    src = res.source
    subject = f"{src['model']} on {src.get('dataset')}" if src.get("model") else str(src.get("dataset"))
    what = f"{subject}: {res.n_rows:,} rows, {res.task}" + (" (inferred)" if res.info.get("task_inferred") else "")
    if res.pos_label is not None:
        what += f", positive class {escape(str(res.pos_label))}"
    console.print(f"[green]Evaluated {escape(what)}[/]")
    for w in res.warnings:
        console.print(f"  [yellow]![/] {escape(w)}")
    lat = (res.business or {}).get("latency") or {}
    if lat.get("source") == "measured":
        console.print(f"Latency of predict_one over {lat['rows']:,} records: p50 {format_number(lat['p50_ms'])} ms, "
                      f"p99 {format_number(lat['p99_ms'])} ms, mean {format_number(lat['mean_ms'])} ms")
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
