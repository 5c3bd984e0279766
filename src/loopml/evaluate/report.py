"""``render_report()``: one self-contained, offline HTML page from an :class:`EvaluationResult`.

The figures are plain plotly.js specs built from the result's curve data,
drawn in the shared report shell of :mod:`loopml._report` (plotly.js inline,
no CDN), with the same chart layout and number formatting as the EDA report.
"""

from __future__ import annotations

from typing import Any

from loopml._report import (
    COLORS,
    GREY,
    SEQUENTIAL,
    bin_centres,
    chart_layout,
    figure,
    format_number,
    render_page,
)
from loopml.evaluate.business import BUSINESS_ROWS
from loopml.evaluate.result import EvaluationResult

_LABELS = {
    "roc_auc": "AUC-ROC", "roc_auc_weighted": "AUC-ROC (weighted)", "pr_auc": "PR-AUC (average precision)",
    "f1": "F1", "f1_macro": "F1 (macro)", "f1_weighted": "F1 (weighted)", "precision_macro": "precision (macro)",
    "precision_weighted": "precision (weighted)", "recall_macro": "recall (macro)",
    "recall_weighted": "recall (weighted)", "balanced_accuracy": "balanced accuracy", "mcc": "Matthews corr.",
    "log_loss": "log loss", "brier": "Brier score", "calibration_error": "expected calibration error",
    "mse": "MSE", "rmse": "RMSE", "mae": "MAE", "median_ae": "median absolute error", "r2": "R²",
    "mape": "MAPE", "smape": "sMAPE", "mase": "MASE", "silhouette": "silhouette",
    "davies_bouldin": "Davies-Bouldin", "calinski_harabasz": "Calinski-Harabasz", "n_clusters": "clusters",
    "adjusted_rand": "adjusted Rand index", "nmi": "normalised mutual information",
    "positive_rate": "positive rate", "expected_cost": "expected net cost per prediction",
}
_NOT_APPLICABLE = {
    "curves": {
        "classification": "ROC and precision-recall curves need scores or probabilities (y_score, --score).",
        "other": "ROC and precision-recall curves apply to classification.",
    },
    "calibration": {
        "classification": "The calibration plot needs predicted probabilities (scores in [0, 1]; --score).",
        "other": "Calibration applies to classification with predicted probabilities.",
    },
    "confusion": {"other": "The confusion matrix applies to classification."},
    "residuals": {"other": "Residual plots apply to regression and forecasting."},
}


def metric_label(name: str) -> str:
    """Display name of a metric (``roc_auc`` → ``AUC-ROC``)."""
    return _LABELS.get(name, name.replace("_", " "))


def _money(v: Any, currency: str = "") -> str:
    if v is None:
        return "—"
    return f"{format_number(float(v))} {currency}".strip()


def _line(x: list[float], y: list[float], name: str, color: str, **extra: Any) -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": x, "y": y, "name": name, "line": {"color": color, "width": 2},
            **extra}


def _diagonal(name: str = "chance") -> dict[str, Any]:
    return {"type": "scatter", "mode": "lines", "x": [0, 1], "y": [0, 1], "name": name, "hoverinfo": "skip",
            "line": {"color": GREY, "dash": "dash", "width": 1}}


def _unit_axes(x: str, y: str) -> dict[str, Any]:
    return {"xaxis": {"title": {"text": x}, "range": [0, 1.005]},
            "yaxis": {"title": {"text": y}, "range": [0, 1.02]}}


def _figures(r: EvaluationResult) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    c = r.curves
    if c.get("roc"):
        traces = [_line(s["fpr"], s["tpr"], f"{s['label']} (AUC {s['auc']:.3f})", COLORS[i % len(COLORS)])
                  for i, s in enumerate(c["roc"])]
        figs["roc"] = figure([*traces, _diagonal()], chart_layout("ROC curve", height=360, **_unit_axes(
            "false-positive rate", "true-positive rate")))
        traces = [_line(s["recall"], s["precision"], f"{s['label']} (AP {s['ap']:.3f})", COLORS[i % len(COLORS)])
                  for i, s in enumerate(c["pr"])]
        if len(c["pr"]) == 1:
            prev = c["pr"][0]["prevalence"]
            traces.append({"type": "scatter", "mode": "lines", "x": [0, 1], "y": [prev, prev], "name": "share of positives",
                           "hoverinfo": "skip", "line": {"color": GREY, "dash": "dot", "width": 1}})
        figs["pr"] = figure(traces, chart_layout("Precision-recall curve", height=360, **_unit_axes("recall", "precision")))
    if c.get("calibration"):
        traces = [{**_line(s["mean_predicted"], s["fraction_positive"], str(s["label"]), COLORS[i % len(COLORS)]),
                   "mode": "lines+markers", "customdata": s["count"],
                   "hovertemplate": "predicted %{x:.3f}, observed %{y:.3f} (%{customdata} rows)<extra></extra>"}
                  for i, s in enumerate(c["calibration"])]
        figs["calibration"] = figure([*traces, _diagonal("perfectly calibrated")], chart_layout(
            "Reliability diagram", height=360, **_unit_axes("mean predicted probability", "fraction positive")))
        h = c["score_histogram"]
        figs["score_hist"] = figure(
            [{"type": "bar", "x": bin_centres(h["edges"]), "y": h["counts"], "width": h["edges"][1] - h["edges"][0],
              "marker": {"color": COLORS[0]}, "hovertemplate": "%{x:.2f}: %{y:,} rows<extra></extra>"}],
            chart_layout(f"Distribution of the {h['of']}", height=360, xaxis={"range": [0, 1]}))
    if c.get("at_k"):
        a = c["at_k"]
        many = len(a["k"]) > 1
        traces = [{"type": "scatter" if many else "bar", "x": [str(k) for k in a["k"]] if not many else a["k"],
                   "y": a[m], "name": m, "marker": {"color": COLORS[i]},
                   **({"mode": "lines+markers"} if many else {})}
                  for i, m in enumerate(("precision", "recall", "ndcg", "map"))]
        figs["at_k"] = figure(traces, chart_layout("Ranking metrics at k", height=360, barmode="group",
                                            xaxis={"title": {"text": "k"}}, yaxis={"range": [0, 1.02]}))
    if c.get("cluster_sizes"):
        s = c["cluster_sizes"]
        figs["cluster_sizes"] = figure(
            [{"type": "bar", "x": [str(v) for v in s["labels"]], "y": s["counts"], "marker": {"color": COLORS[0]}}],
            chart_layout("Rows per cluster", height=300, xaxis={"type": "category"}))
    if r.confusion_matrix is not None and r.labels is not None:
        names = [str(v) for v in r.labels]
        z = r.confusion_matrix
        text = []
        for row in z:
            total = sum(row) or 1
            text.append([f"{v:,}<br>{100 * v / total:.1f}%" for v in row])
        big = len(names) <= 20
        figs["confusion"] = figure(
            [{"type": "heatmap", "x": names, "y": names, "z": z, "colorscale": SEQUENTIAL, "xgap": 1, "ygap": 1,
              **({"text": text, "texttemplate": "%{text}"} if big else {}),
              "hovertemplate": "true %{y}, predicted %{x}: %{z:,}<extra></extra>"}],
            chart_layout("Confusion matrix (count, % of the true class)", height=460,
                    xaxis={"type": "category", "title": {"text": "predicted"}},
                    yaxis={"type": "category", "autorange": "reversed", "title": {"text": "true"}}))
    if c.get("residuals"):
        rs = c["residuals"]
        kind = "scattergl" if len(rs["predicted"]) > 2000 else "scatter"
        marker = {"size": 4, "opacity": 0.5, "color": COLORS[0]}
        figs["resid_scatter"] = figure(
            [{"type": kind, "mode": "markers", "x": rs["predicted"], "y": rs["residual"], "marker": marker,
              "hovertemplate": "predicted %{x:.4g}, residual %{y:.4g}<extra></extra>"}],
            chart_layout("Residual vs predicted", height=360, xaxis={"title": {"text": "predicted"}},
                    yaxis={"title": {"text": "actual − predicted", }, "zeroline": True, "zerolinecolor": GREY}))
        h = rs["histogram"]
        figs["resid_hist"] = figure(
            [{"type": "bar", "x": bin_centres(h["edges"]), "y": h["counts"], "marker": {"color": COLORS[0]},
              "hovertemplate": "%{x:.4g}: %{y:,} rows<extra></extra>"}],
            chart_layout("Residual distribution", height=360, bargap=0.02, xaxis={"title": {"text": "actual − predicted"}}))
        lo = min(min(rs["actual"]), min(rs["predicted"]))
        hi = max(max(rs["actual"]), max(rs["predicted"]))
        figs["pred_actual"] = figure(
            [{"type": kind, "mode": "markers", "x": rs["predicted"], "y": rs["actual"], "marker": marker,
              "name": "rows", "hovertemplate": "predicted %{x:.4g}, actual %{y:.4g}<extra></extra>"},
             {"type": "scatter", "mode": "lines", "x": [lo, hi], "y": [lo, hi], "name": "actual = predicted",
              "hoverinfo": "skip", "line": {"color": GREY, "dash": "dash", "width": 1}}],
            chart_layout("Actual vs predicted", height=360, showlegend=False,
                    xaxis={"title": {"text": "predicted"}}, yaxis={"title": {"text": "actual"}}))
    b = r.business
    if b and b.get("scenarios") and all(s.get("value_per_day") is not None for s in b["scenarios"]):
        cur = b.get("currency") or ""
        vals = [s["value_per_day"] for s in b["scenarios"]]
        figs["value_per_day"] = figure(
            [{"type": "bar", "x": [s["name"] for s in b["scenarios"]], "y": vals,
              "marker": {"color": [COLORS[3] if v < 0 else COLORS[2] for v in vals]},
              "hovertemplate": "%{x}: %{y:,.2f}<extra></extra>"}],
            chart_layout(f"Expected value per day{' (' + cur + ')' if cur else ''}", height=300,
                    xaxis={"type": "category"}))
    return figs


def render_report(result: EvaluationResult, *, title: str | None = None) -> str:
    """Render an evaluation as one self-contained HTML page (plotly.js inline, works offline).

    The page has sections with stable ids: ``metrics``, ``curves``,
    ``calibration``, ``confusion``, ``residuals`` and ``business``; a section
    that does not apply to the task says so.

    Parameters
    ----------
    result
        From :func:`loopml.evaluate.evaluate_predictions` or ``evaluate_dataset``.
    title
        Page title (default: "Evaluation").

    Returns
    -------
    str
        The HTML text.

    Examples
    --------
    >>> from loopml.evaluate import evaluate_predictions, render_report
    >>> html = render_report(evaluate_predictions([0, 1, 1, 0], y_score=[0.1, 0.8, 0.6, 0.3]))
    >>> 'id="curves"' in html and 'id="business"' in html
    True
    """
    from loopml.evaluate._template import TEMPLATE

    cur = (result.business or {}).get("currency") or ""
    family = "classification" if result.task in ("binary", "multiclass") else "other"
    na = {sec: msgs.get(family, msgs.get("other", "")) for sec, msgs in _NOT_APPLICABLE.items()}
    direction = {k: ("—" if k == "n_clusters" else "higher" if result.greater_is_better(k) else "lower")
                 for k in result.metrics}
    align_metrics: list[str] = []
    for a in (result.business or {}).get("alignment", []):
        align_metrics.extend(m for m in a["metrics"] if m not in align_metrics)
    return render_page(
        TEMPLATE, title=title or "Evaluation", source=result.source.get("dataset") or "",
        figs=_figures(result),
        filters={"label": metric_label, "money": _money,
                 "fmt": lambda v, kind: _money(v, cur) if kind == "money" else format_number(v)},
        r=result.to_dict(), headline=result.headline, direction=direction, rows=BUSINESS_ROWS, cur=cur,
        align_metrics=align_metrics, na=na,
    )
