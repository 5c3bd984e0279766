"""``render_html()``: one self-contained, offline HTML report from a :class:`Profile`.

Figures are plain plotly.js figure specs (data + layout) built from the
profile's numbers; the page shell, the inline plotly.js (no CDN: the file works
offline) and the lazy chart drawing are the shared ones of :mod:`loopml._report`.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from loopml._report import (
    COLORS,
    SEQUENTIAL,
    bin_centres,
    chart_layout,
    figure,
    render_page,
    shorten,
)
from loopml.eda._warnings import METHODS
from loopml.eda.profile import Profile

_HEIGHT = 240
_BLUE, _ORANGE = COLORS[0], COLORS[1]
_DIVERGING = [[0.0, "#b2182b"], [0.25, "#ef8a62"], [0.5, "#f7f7f7"], [0.75, "#67a9cf"], [1.0, "#2166ac"]]
_WARN_FLAGS = ("empty", "constant", "near_constant", "id_like", "high_cardinality", "high_missing", "infinite")
_STAT_ROWS: dict[str, list[tuple[str, str]]] = {
    "numeric": [("mean", "mean"), ("std", "std"), ("min", "min"), ("p05", "5%"), ("q1", "25%"),
                ("median", "median"), ("q3", "75%"), ("p95", "95%"), ("max", "max"), ("iqr", "IQR"),
                ("skewness", "skewness"), ("kurtosis", "kurtosis"), ("zeros", "zeros"),
                ("negatives", "negatives"), ("infinite", "infinite")],
    "categorical": [("min_length", "min length"), ("mean_length", "mean length"),
                    ("max_length", "max length"), ("empty", "empty strings")],
    "datetime": [("min", "first"), ("max", "last"), ("span_days", "span (days)")],
    "boolean": [],
    "other": [],
}
_HIDE_ZERO = ("infinite", "empty")
_QUALITY = [("constant", "constant"), ("near-constant", "near_constant"), ("suspected ID", "id_like"),
            ("high cardinality", "high_cardinality"), ("mostly missing", "high_missing"),
            ("empty", "empty"), ("skewed", "skewed"), ("many zeros", "many_zeros"),
            ("infinite values", "infinite")]


def _label(v: Any) -> str:
    return "null" if v is None else shorten(str(v), 40)


# -- figures ---------------------------------------------------------------------------------
def _column_chart(c: dict[str, Any]) -> dict[str, Any] | None:
    kind = c["kind"]
    if kind == "numeric" and c.get("histogram") and c["histogram"]["counts"]:
        e, counts = c["histogram"]["edges"], c["histogram"]["counts"]
        centres = bin_centres(e)
        widths = [b - a for a, b in pairwise(e)]
        return figure([{"type": "bar", "x": centres, "y": counts, "width": widths, "marker": {"color": _BLUE},
                      "hovertemplate": "%{x}: %{y:,}<extra></extra>"}],
                    chart_layout("histogram (all rows)", height=200, bargap=0.02))
    if kind in ("categorical", "boolean") and c["top"]:
        labels = [_label(t["value"]) for t in c["top"]]
        counts = [t["count"] for t in c["top"]]
        if c.get("top_other"):
            labels.append("(other values)")
            counts.append(c["top_other"])
        return figure([{"type": "bar", "orientation": "h", "y": labels[::-1], "x": counts[::-1],
                      "marker": {"color": _BLUE}, "hovertemplate": "%{y}: %{x:,}<extra></extra>"}],
                    chart_layout("most frequent values", height=200, yaxis={"type": "category"}))
    if kind == "datetime" and c.get("time") and c["time"]["labels"]:
        t = c["time"]
        return figure([{"type": "bar", "x": t["labels"], "y": t["counts"], "marker": {"color": _BLUE},
                      "hovertemplate": "%{x}: %{y:,}<extra></extra>"}],
                    chart_layout(f"rows per {t['grain']}", height=200))
    return None


def _heatmap(title: str, x: list[str], y: list[str], z: list[list[float | None]],
             zmin: float, zmax: float) -> dict[str, Any]:
    scale = _DIVERGING if zmin < 0 else SEQUENTIAL
    return figure(
        [{"type": "heatmap", "x": x, "y": y, "z": z, "zmin": zmin, "zmax": zmax, "colorscale": scale,
          "hovertemplate": "%{y} × %{x}: %{z:.3f}<extra></extra>",
          "xgap": 1, "ygap": 1}],
        chart_layout(title, height=460, xaxis={"type": "category", "tickangle": -45},
                yaxis={"type": "category", "autorange": "reversed"}),
    )


def _figures(d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str | None]]:
    figs: dict[str, Any] = {}
    chart_of: dict[str, str | None] = {}
    for i, c in enumerate(d["columns"]):
        f = _column_chart(c)
        chart_of[c["name"]] = f"col_{i}" if f else None
        if f:
            figs[f"col_{i}"] = f
    m = d["missing"]
    if m["columns"]:
        cols = m["columns"][::-1]
        figs["missing_rates"] = figure(
            [{"type": "bar", "orientation": "h", "y": [c["name"] for c in cols], "x": [c["pct"] for c in cols],
              "marker": {"color": _ORANGE}, "hovertemplate": "%{y}: %{x:.2f}%<extra></extra>"}],
            chart_layout("missing values per column (%)", height=420, yaxis={"type": "category"}))
        if m.get("nullity_correlation"):
            names = [c["name"] for c in m["columns"]]
            figs["nullity"] = _heatmap("nullity correlation (1 = always missing together)", names, names,
                                       m["nullity_correlation"], -1, 1)
    o = d["outliers"]
    if o["columns"]:
        x = [r["column"] for r in o["columns"]]
        figs["outlier_rates"] = figure(
            [{"type": "bar", "name": "IQR", "x": x, "y": [r["iqr_pct"] for r in o["columns"]],
              "marker": {"color": _BLUE}},
             {"type": "bar", "name": f"|z| > {o['z_threshold']}", "x": x,
              "y": [r["z_pct"] for r in o["columns"]], "marker": {"color": _ORANGE}}],
            chart_layout("outliers per column (% of rows)", height=_HEIGHT, barmode="group",
                    xaxis={"type": "category"}))
    f = o.get("isolation_forest")
    if f:
        e = f["histogram"]["edges"]
        figs["iforest"] = figure(
            [{"type": "bar", "x": bin_centres(e),
              "y": f["histogram"]["counts"], "marker": {"color": _BLUE},
              "hovertemplate": "score %{x:.3f}: %{y:,} rows<extra></extra>"}],
            chart_layout("anomaly score distribution", height=_HEIGHT, bargap=0.02,
                    shapes=[{"type": "line", "x0": f["threshold"], "x1": f["threshold"], "yref": "paper",
                             "y0": 0, "y1": 1, "line": {"color": "#dc2626", "dash": "dot"}}]))
    cr = d["correlations"]
    nums, cats = cr["numeric_columns"], cr["categorical_columns"]
    if cr.get("pearson"):
        figs["pearson"] = _heatmap("Pearson", nums, nums, cr["pearson"], -1, 1)
        figs["spearman"] = _heatmap("Spearman", nums, nums, cr["spearman"], -1, 1)
    if cr.get("cramers_v"):
        figs["cramers_v"] = _heatmap("Cramér's V", cats, cats, cr["cramers_v"], 0, 1)
    if cr.get("correlation_ratio"):
        figs["correlation_ratio"] = _heatmap("correlation ratio η (category → number)", nums, cats,
                                             cr["correlation_ratio"], 0, 1)
    t = d.get("target")
    if t:
        figs.update(_target_figures(t))
    return figs, chart_of


def _target_figures(t: dict[str, Any]) -> dict[str, Any]:
    figs: dict[str, Any] = {}
    if t["task"] == "classification":
        figs["target_dist"] = figure(
            [{"type": "bar", "x": [_label(k["value"]) for k in t["classes"]], "y": [k["count"] for k in t["classes"]],
              "marker": {"color": _BLUE}, "hovertemplate": "%{x}: %{y:,}<extra></extra>"}],
            chart_layout("class balance (all rows)", height=_HEIGHT, xaxis={"type": "category"}))
    elif t.get("histogram"):
        e, counts = t["histogram"]["edges"], t["histogram"]["counts"]
        figs["target_dist"] = figure(
            [{"type": "bar", "x": bin_centres(e), "y": counts,
              "marker": {"color": _BLUE}}],
            chart_layout("target distribution (all rows)", height=_HEIGHT, bargap=0.02))
    assoc = t.get("associations", [])[:30][::-1]
    figs["target_assoc"] = figure(
        [{"type": "bar", "orientation": "h", "y": [a["feature"] for a in assoc],
          "x": [a["strength"] for a in assoc], "customdata": [_method(a["method"]) for a in assoc],
          "marker": {"color": _BLUE}, "hovertemplate": "%{y}: %{x:.3f} (%{customdata})<extra></extra>"}],
        chart_layout("association with the target (0..1)", height=420, yaxis={"type": "category"},
                xaxis={"range": [0, 1]}))
    for i, pl in enumerate(t.get("plots", [])):
        feat = pl["feature"]
        if pl["type"] == "scatter":
            figs[f"target_plot_{i}"] = figure(
                [{"type": "scattergl" if len(pl["x"]) > 2000 else "scatter", "mode": "markers",
                  "x": pl["x"], "y": pl["y"], "marker": {"size": 4, "opacity": 0.5, "color": _BLUE}}],
                chart_layout(f"{t['column']} vs {feat}", height=_HEIGHT, xaxis={"title": {"text": feat}},
                        yaxis={"title": {"text": t["column"]}}))
        elif pl["type"] == "box":
            b = pl["boxes"]
            x_title = t["column"] if pl["x_is_target"] else feat
            y_title = feat if pl["x_is_target"] else t["column"]
            figs[f"target_plot_{i}"] = figure(
                [{"type": "box", "x": [_label(v["label"]) for v in b],
                  **{k: [v[k] for v in b] for k in ("q1", "median", "q3", "lowerfence", "upperfence", "mean")},
                  "marker": {"color": _BLUE}, "boxpoints": False}],
                chart_layout(f"{feat} by {t['column'] if pl['x_is_target'] else 'category'}", height=_HEIGHT,
                        xaxis={"type": "category", "title": {"text": x_title}},
                        yaxis={"title": {"text": y_title}}))
        else:
            cats = [_label(c) for c in pl["categories"]]
            figs[f"target_plot_{i}"] = figure(
                [{"type": "bar", "name": _label(k["class"]), "x": cats, "y": k["shares"]}
                 for k in pl["classes"]],
                chart_layout(f"{t['column']} share by {feat}", height=_HEIGHT, barmode="stack",
                        xaxis={"type": "category", "title": {"text": feat}}, yaxis={"range": [0, 1]}))
    return figs


# -- formatting filters ------------------------------------------------------------------------
def _method(v: str) -> str:
    return METHODS.get(v, v.replace("_", " "))


def _pct(v: Any) -> str:
    return "—" if v is None else f"{float(v):.2f}%"


def _short(v: Any) -> str:
    return "∅" if v is None else shorten(str(v), 48)


def render_html(profile: Profile, *, title: str | None = None) -> str:
    """Render a profile as one self-contained HTML page (plotly.js inline, works offline).

    The page has sections with stable ids: ``warnings``, ``overview``,
    ``columns``, ``missing``, ``outliers``, ``correlations``, ``target`` and
    ``duplicates``.

    Parameters
    ----------
    profile
        The profile from :func:`loopml.eda.profile`.
    title
        Page title (default: the profile's title).

    Returns
    -------
    str
        The HTML text.

    Examples
    --------
    >>> import pandas as pd
    >>> from loopml.eda import profile, render_html
    >>> html = render_html(profile(pd.DataFrame({"x": [1, 2, 3]})))
    >>> 'id="warnings"' in html and "cdn" not in html.lower()[:2000]
    True
    """
    from loopml.eda._template import TEMPLATE

    d = profile.data
    figs, chart_of = _figures(d)
    page = {**d, "title": title or d.get("title") or "Exploratory data analysis"}
    rows = d.get("rows", {})
    warnings = d.get("warnings", [])
    return render_page(
        TEMPLATE, title=page["title"], source=d["overview"].get("source", {}).get("dataset") or "", figs=figs,
        filters={"pct": _pct, "short": _short, "method": _method},
        p=page, ov=d["overview"], t=d.get("target"), chart_of=chart_of, rows=rows,
        row_list=sorted(((int(k), v) for k, v in rows.items()), key=lambda kv: kv[0]),
        stat_rows=_STAT_ROWS, hide_zero=_HIDE_ZERO, warn_flags=_WARN_FLAGS,
        quality=_QUALITY, n_warn=sum(1 for w in warnings if w["severity"] == "warning"),
        n_info=sum(1 for w in warnings if w["severity"] != "warning"),
    )
