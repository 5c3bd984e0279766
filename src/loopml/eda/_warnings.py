"""The warnings summarised at the top of a report, derived from the rest of the profile."""

from __future__ import annotations

from typing import Any

from loopml.eda._config import ProfileConfig

#: warning kinds in the order the report lists them (within a severity)
ORDER = (
    "empty", "constant", "target_missing", "leakage", "imbalance", "duplicates", "id_like",
    "high_correlation", "near_constant", "high_missing", "infinite", "high_cardinality",
    "co_missing", "skewed", "many_zeros", "outliers", "time_gaps",
)
_SEVERITY = {
    "empty": "warning", "constant": "warning", "target_missing": "warning", "leakage": "warning",
    "imbalance": "warning", "duplicates": "warning", "id_like": "warning",
    "high_correlation": "warning", "near_constant": "warning", "high_missing": "warning",
    "infinite": "warning", "high_cardinality": "warning",
}


#: how each association measure is named in messages and the report
METHODS = {"pearson": "Pearson r", "spearman": "Spearman ρ", "cramers_v": "Cramér's V",
           "correlation_ratio": "correlation ratio η"}


def _w(kind: str, message: str, columns: list[str]) -> dict[str, Any]:
    return {"kind": kind, "severity": _SEVERITY.get(kind, "info"), "columns": columns, "message": message}


def _n(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4g}"


def collect_warnings(data: dict[str, Any], cfg: ProfileConfig) -> list[dict[str, Any]]:
    """Every warning and note of a profile, most important first."""
    out: list[dict[str, Any]] = []
    target = (data.get("target") or {}).get("column")
    for c in data["columns"]:
        name, flags, st = c["name"], c["flags"], c["stats"]
        top = c["top"][0] if c["top"] else None
        if "empty" in flags:
            out.append(_w("empty", f"{name} has no values (all {c['missing']:,} rows missing)", [name]))
        if "constant" in flags:
            out.append(_w("constant", f"{name} is constant ({top['value'] if top else '?'!r} in every "
                          "non-missing row); it carries no information", [name]))
        if "near_constant" in flags and top:
            out.append(_w("near_constant", f"{name} is near-constant: {top['value']!r} in "
                          f"{top['pct']:.2f}% of rows", [name]))
        if "id_like" in flags and name != target:
            out.append(_w("id_like", f"{name} looks like an ID ({c['distinct']:,} distinct values in "
                          f"{c['count']:,} rows); leave it out of the features", [name]))
        if "high_cardinality" in flags:
            out.append(_w("high_cardinality", f"{name} has high cardinality ({c['distinct']:,} distinct "
                          "values); consider frequency or target encoding", [name]))
        if "high_missing" in flags:
            out.append(_w("high_missing", f"{name} is missing in {c['missing_pct']:.2f}% of rows", [name]))
        if "infinite" in flags:
            out.append(_w("infinite", f"{name} has {st['infinite']:,} infinite values", [name]))
        if "skewed" in flags:
            out.append(_w("skewed", f"{name} is skewed (skewness {st['skewness']:.2f}); a log or "
                          "Yeo-Johnson transform may help", [name]))
        if "many_zeros" in flags:
            out.append(_w("many_zeros", f"{name} is zero in {st['zeros_pct']:.2f}% of rows", [name]))
        gaps = (c.get("time") or {}).get("empty_buckets")
        if gaps:
            out.append(_w("time_gaps", f"{name} has {gaps:,} empty {c['time']['grain']}(s) between its "
                          "first and last value", [name]))
    dup = data["duplicates"]
    if dup.get("rows"):
        out.append(_w("duplicates", f"{dup['rows']:,} duplicate rows ({dup['pct']:.2f}%) in "
                      f"{dup['groups']:,} group(s) of identical rows", []))
    for p in data["missing"]["pairs"]:
        if p["jaccard"] >= cfg.co_missing:
            out.append(_w("co_missing", f"{p['a']} and {p['b']} are missing together "
                          f"({p['both']:,} rows; overlap {p['jaccard']:.0%})", [p["a"], p["b"]]))
    for o in data["outliers"]["columns"]:
        if o["iqr_pct"] >= 100.0 * cfg.outliers:
            out.append(_w("outliers", f"{o['column']} has {o['iqr_count']:,} IQR outliers "
                          f"({o['iqr_pct']:.2f}%)", [o["column"]]))
    for p in data["correlations"].get("high_pairs", []):
        out.append(_w("high_correlation", f"{p['a']} and {p['b']} are strongly associated "
                      f"({METHODS[p['method']]} {p['value']:.3f})", [p["a"], p["b"]]))
    t = data.get("target")
    if t:
        if t["missing"]:
            out.append(_w("target_missing", f"the target {t['column']} is missing in {t['missing']:,} rows "
                          f"({t['missing_pct']:.2f}%)", [t["column"]]))
        share = t.get("minority_share")
        if share is not None and share < cfg.imbalance:
            out.append(_w("imbalance", f"the target {t['column']} is imbalanced: the rarest class "
                          f"{t['classes'][-1]['value']!r} has {share:.2%} of rows (ratio "
                          f"{_n(t['imbalance_ratio'])}:1)", [t["column"]]))
        for a in t.get("associations", []):
            if (a["strength"] or 0) >= cfg.leakage:
                out.append(_w("leakage", f"{a['feature']} almost determines the target {t['column']} "
                              f"({METHODS[a['method']]} {a['value']:.3f}); check it is known at prediction time",
                              [a["feature"], t["column"]]))
    rank = {k: i for i, k in enumerate(ORDER)}
    out.sort(key=lambda w: (w["severity"] != "warning", rank.get(w["kind"], len(rank)), w["columns"]))
    return out
