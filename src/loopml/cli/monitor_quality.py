"""``loopml monitor ground-truth | quality | bias | attribution-baseline | attribution``.

Model quality over captured predictions and their ground truth, Clarify-style
bias metrics, and feature attributions with their drift; added to the
``monitor`` command group of :mod:`loopml.cli.monitor`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, console, open_workspace, print_json
from loopml.cli.monitor import monitor_app, parse_time, print_result

if TYPE_CHECKING:
    from loopml.monitor import MonitoringResult

SinceOpt = typer.Option(None, "--since", help="Window start: ISO 8601 time (UTC if no zone) or a duration ago (30m, 2h, 7d).")
UntilOpt = typer.Option(None, "--until", help="Window end: ISO 8601 time or a duration ago.")

_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>|=)\s*([-+0-9.eE]+)\s*$")


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.4g}" if isinstance(v, float) else escape(str(v))


def parse_constraints(items: list[str]) -> dict[str, Any]:
    """``--threshold`` values: ``METRIC=TOLERANCE`` (from the baseline) or ``METRIC<X`` (an explicit constraint).

    ``METRIC<X`` is a violation when the metric is below X (``LessThanThreshold``); ``>``, ``<=``, ``>=`` likewise.

    Examples
    --------
    >>> parse_constraints(["auc=0.1", "rmse>3.5"])
    {'auc': 0.1, 'rmse': {'threshold': 3.5, 'comparison_operator': 'GreaterThanThreshold'}}
    """
    from loopml.errors import InvalidInput
    from loopml.monitor.quality import comparison

    out: dict[str, Any] = {}
    for item in items:
        m = _CONSTRAINT.match(item)
        if m is None:
            raise InvalidInput(f"--threshold {item!r} must look like METRIC=TOLERANCE (e.g. auc=0.05) or "
                               "METRIC<VALUE (e.g. auc<0.8, rmse>3.5)")
        name, op, text = m.groups()
        try:
            value = float(text)
        except ValueError:
            raise InvalidInput(f"--threshold {item!r}: {text!r} is not a number") from None
        out[name] = value if op == "=" else {"threshold": value, "comparison_operator": comparison(op)}
    return out


def _floats(items: list[str], flag: str) -> dict[str, float]:
    from loopml.errors import InvalidInput

    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            out[key.strip()] = float(value)
        except ValueError:
            raise InvalidInput(f"{flag} {item!r} must look like NAME=NUMBER, e.g. {flag} auc=0.91") from None
    return out


def _violations(res: MonitoringResult) -> None:
    for v in res.summary.get("violations") or []:
        what = v.get("metric_name") or v.get("feature_name") or v.get("facet") or ""
        console.print(f"  [yellow]![/] {escape(str(what))}: {escape(str(v.get('description', '')))}")


# -- ground truth -----------------------------------------------------------------------------------
@monitor_app.command("ground-truth")
def ground_truth_cmd(
    endpoint: str = typer.Argument(..., help="The endpoint whose captured predictions the labels belong to."),
    file: Path = typer.Argument(..., help="JSON lines in SageMaker's ground-truth format, or CSV/JSON lines with inference_id and label."),
    as_json: bool = JsonOpt,
) -> None:
    """Upload ground truth (inference id + true label) for an endpoint's captured predictions."""
    from loopml.monitor.ground_truth import ingest_ground_truth

    with open_workspace() as ws:
        up = ingest_ground_truth(ws, endpoint, file)
    if as_json:
        print_json(up.to_dict())
        return
    console.print(f"[green]Stored {up.rows} label(s)[/] for {escape(endpoint)}: {up.matched} match captured "
                  f"requests, {up.unknown} unknown" + (f", {up.duplicates} duplicate line(s) dropped (last wins)"
                                                       if up.duplicates else ""))
    if up.unknown:
        console.print(f"  unknown ids (first {len(up.unknown_ids)}): {escape(', '.join(up.unknown_ids))}")


# -- model quality --------------------------------------------------------------------------------------
@monitor_app.command("quality")
def quality_cmd(
    endpoint: str = typer.Argument(..., help="The endpoint to score."),
    since: str = SinceOpt,
    until: str = UntilOpt,
    variant: str = typer.Option(None, "--variant", help="Only this variant's requests."),
    threshold: list[str] = typer.Option([], "--threshold", help="METRIC=TOLERANCE (allowed drop from the baseline) or METRIC<VALUE / METRIC>VALUE (repeatable)."),
    baseline_metric: list[str] = typer.Option([], "--baseline-metric", help="METRIC=VALUE to compare with instead of the model's evaluation (repeatable)."),
    as_json: bool = JsonOpt,
) -> None:
    """Score captured predictions against their ground truth; compare with the model's baseline metrics."""
    from loopml.monitor.quality import run_model_quality

    t0, t1 = parse_time(since, "--since"), parse_time(until, "--until")
    constraints = parse_constraints(threshold)
    base = _floats(baseline_metric, "--baseline-metric") or None
    with open_workspace() as ws:
        res = run_model_quality(ws, endpoint, since=t0, until=t1, variant=variant, baseline_metrics=base,
                                thresholds=constraints)
    if as_json:
        print_json(res.to_dict())
        return
    print_result(res, verbose=False)
    s = res.summary
    if res.status == "NoData":
        return
    rows = s.get("rows", {})
    console.print(f"  {escape(str(s.get('model')))} ({s.get('problem_type')}): {rows.get('labelled')} of "
                  f"{rows.get('captured')} captured predictions have ground truth; baseline: "
                  f"{escape(str(s.get('baseline', {}).get('source')))}")
    base_m = s.get("baseline", {}).get("metrics", {})
    table = Table("metric", "value", "baseline", "best constant")
    for k, v in s.get("metrics", {}).items():
        if k.endswith("_best_constant_classifier"):
            continue
        table.add_row(escape(k), _num(v), _num(base_m.get(k)), _num(s["metrics"].get(f"{k}_best_constant_classifier")))
    console.print(table)
    for note in s.get("notes", []):
        console.print(f"  note: {escape(note)}")
    _violations(res)


# -- bias ---------------------------------------------------------------------------------------------
@monitor_app.command("bias")
def bias_cmd(
    endpoint: str = typer.Argument(None, help="An endpoint: its captured predictions joined with ground truth (instead of --data)."),
    data: str = typer.Option(None, "--data", "-d", help="Dataset NAME[:VERSION] (latest if no version)."),
    label: str = typer.Option(None, "--label", help="The observed label column of --data."),
    positive: list[str] = typer.Option(..., "--positive", help="The favourable label value (repeatable)."),
    facet: str = typer.Option(..., "--facet", help="The sensitive column."),
    facet_value: list[str] = typer.Option([], "--facet-value", help="Value(s) of --facet forming the sensitive group d (repeatable)."),
    facet_threshold: float = typer.Option(None, "--facet-threshold", help="For a numeric facet: rows above it form group d."),
    group: str = typer.Option(None, "--group", help="Subgroup column for conditional demographic disparity (CDDL, CDDPL)."),
    model: str = typer.Option(None, "--model", "-m", help="A registered model M:V that predicts --data (post-training metrics)."),
    predicted: str = typer.Option(None, "--predicted", help="A column of --data holding predictions (post-training metrics without a model)."),
    feature: list[str] = typer.Option([], "--feature", help="Numeric column for the flip test's nearest neighbours (repeatable)."),
    threshold: list[str] = typer.Option([], "--threshold", help="METRIC=LIMIT: a violation when the metric is further than LIMIT from its ideal (repeatable)."),
    since: str = SinceOpt,
    until: str = UntilOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Clarify-style bias metrics: pre-training on a dataset, post-training on a model's or an endpoint's predictions."""
    from loopml.errors import InvalidInput
    from loopml.monitor.bias import DESCRIPTIONS, run_bias

    if not facet_value and facet_threshold is None:
        raise InvalidInput("give --facet-value V (repeatable) or --facet-threshold X")
    if facet_value and facet_threshold is not None:
        raise InvalidInput("give either --facet-value or --facet-threshold, not both")
    if (endpoint is None) == (data is None):
        raise InvalidInput("give either an endpoint or --data NAME[:VERSION]")
    limits = _floats(threshold, "--threshold")
    with open_workspace() as ws:
        res = run_bias(ws, label=label, positive_label=positive if len(positive) > 1 else positive[0], facet=facet,
                       facet_value=(facet_value if len(facet_value) > 1 else facet_value[0]) if facet_value else None,
                       facet_threshold=facet_threshold, group=group, data=data, endpoint=endpoint, model=model,
                       predicted=predicted, features=feature or None,
                       since=parse_time(since, "--since"), until=parse_time(until, "--until"), thresholds=limits)
    if as_json:
        print_json(res.to_dict())
        return
    print_result(res, verbose=False)
    s = res.summary
    if res.status == "NoData":
        return
    counts = s.get("counts", {})
    console.print(f"  facet {escape(str(s['facet']))} = {escape(str(s['value_or_threshold']))}: "
                  f"n_d = {counts.get('n_d')}, n_a = {counts.get('n_a')}")
    table = Table("stage", "metric", "value", "description")
    for stage in ("pre_training", "post_training"):
        for k, v in (s.get(stage) or {}).items():
            table.add_row(stage.replace("_", "-"), k, _num(v), escape(DESCRIPTIONS[k]))
    console.print(table)
    for note in s.get("notes", []):
        console.print(f"  note: {escape(note)}")
    _violations(res)


# -- attribution ---------------------------------------------------------------------------------------
@monitor_app.command("attribution-baseline")
def attribution_baseline_cmd(
    model: str = typer.Argument(..., help="The registered model: NAME:VERSION, NAME@ALIAS or NAME."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset NAME[:VERSION] with the model's inputs (often its training data)."),
    name: str = typer.Option(None, "--name", help="Baseline name (default: MODEL-VERSION-attribution)."),
    method: str = typer.Option("auto", "--method", help="auto, tree, exact or permutation."),
    agg: str = typer.Option("mean_abs", "--agg", help="Global aggregation: mean_abs, median or mean_sq."),
    rows: int = typer.Option(None, "--rows", min=1, help="Explain a seeded sample of this many rows."),
    as_json: bool = JsonOpt,
) -> None:
    """Compute and store a model's global feature attributions (SHAP) on a dataset: the attribution baseline."""
    from loopml.monitor.attribution import attribution_baseline

    with open_workspace() as ws:
        bl = attribution_baseline(ws, model, data, name=name, method=method, agg=agg, max_rows=rows)
    if as_json:
        print_json(bl.to_dict())
        return
    d = bl.details
    console.print(f"[green]Stored attribution baseline {escape(bl.name)}[/] ({bl.id}) of {escape(str(bl.model_ref))} "
                  f"on {escape(str(bl.dataset_ref))}: {d['method']}, {d['item_count']} rows, {d['agg']}")
    table = Table("rank", "feature", "importance")
    for i, f in enumerate(d["ranking"], 1):
        table.add_row(str(i), escape(f), _num(d["importance"][f]))
    console.print(table)


@monitor_app.command("attribution")
def attribution_cmd(
    endpoint: str = typer.Argument(None, help="An endpoint: its captured inputs in the window (instead of --data)."),
    data: str = typer.Option(None, "--data", "-d", help="Dataset NAME[:VERSION] to compare instead of an endpoint."),
    baseline: str = typer.Option(None, "--baseline", "-b", help="Attribution baseline name or id (default for an endpoint: the newest of its model)."),
    threshold: float = typer.Option(0.9, "--threshold", min=0.0, max=1.0, help="NDCG below this is a violation."),
    rows: int = typer.Option(None, "--rows", min=1, help="Explain a seeded sample of this many rows."),
    since: str = SinceOpt,
    until: str = UntilOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Attribution drift: NDCG of the live feature-importance ranking against the baseline's."""
    from loopml.errors import InvalidInput
    from loopml.monitor.attribution import run_attribution_drift
    from loopml.monitor.results import Target

    if (endpoint is None) == (data is None):
        raise InvalidInput("give either an endpoint or --data NAME[:VERSION]")
    target = Target("endpoint", endpoint) if endpoint is not None else Target("dataset", data)
    with open_workspace() as ws:
        res = run_attribution_drift(ws, target, baseline, since=parse_time(since, "--since"),
                                    until=parse_time(until, "--until"), threshold=threshold, max_rows=rows)
    if as_json:
        print_json(res.to_dict())
        return
    print_result(res, verbose=False)
    s = res.summary
    if res.status == "NoData":
        return
    console.print(f"  {escape(str(s['model']))} vs baseline {escape(str(s['baseline']))}: NDCG {s['ndcg']:.4f} "
                  f"(threshold {s['threshold']:g}), {s['rows']} rows, {s['method']}")
    table = Table("feature", "baseline rank", "live rank", "baseline", "live")
    for r in s["features"]:
        moved = r["rank_change"]
        arrow = "" if moved == 0 else (f" [red]↓{moved}[/]" if moved > 0 else f" [green]↑{-moved}[/]")
        table.add_row(escape(r["feature"]), str(r["baseline_rank"]), f"{r['live_rank']}{arrow}",
                      _num(r["baseline_value"]), _num(r["live_value"]))
    console.print(table)
    _violations(res)


__all__ = ["parse_constraints"]
