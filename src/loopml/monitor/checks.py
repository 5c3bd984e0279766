"""The data-quality checks: current statistics against a baseline's statistics and constraints.

:func:`check_data` produces ``constraint_violations.json``: the reference's
``violations`` (check types ``data_type_check``, ``completeness_check``,
``baseline_drift_check``, ``missing_column_check``, ``extra_column_check``,
``categorical_values_check``, plus loopml's ``non_negative_check``) and
loopml's ``drift`` block with every method's score, threshold and verdict per
feature and the dataset's drift share. A pure function of three JSON
documents.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import stats

from loopml.monitor.constraints import feature_config
from loopml.monitor.drift import categorical_feature_scores, numeric_scores, sketch_cdf
from loopml.monitor.statistics import (
    FRACTIONAL,
    INTEGRAL,
    NUMERIC_TYPES,
    STRING,
    category_counts,
    common,
    feature_map,
    sketch_of,
)

#: the check types, in the order violations are listed
CHECK_TYPES = (
    "missing_column_check", "extra_column_check", "data_type_check", "completeness_check",
    "non_negative_check", "categorical_values_check", "baseline_drift_check",
)


def _pct(x: float) -> str:
    return f"{100 * x:.4g}%"


def _type_share(feature: Mapping[str, Any], itype: str) -> float | None:
    """Share of a feature's present values that are of type ``itype`` (None when none are present)."""
    tc = feature.get("type_counts") or {}
    present = sum(int(tc.get(k, 0)) for k in ("integral", "fractional", "string"))
    if present == 0:
        return None
    if itype == INTEGRAL:
        ok = int(tc.get("integral", 0))
    elif itype == FRACTIONAL:
        ok = int(tc.get("integral", 0)) + int(tc.get("fractional", 0))
    else:
        ok = present
    return ok / present


def _violation(feature: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": feature, "constraint_check_type": check, "description": description}


def check_data(
    baseline_statistics: Mapping[str, Any],
    constraints: Mapping[str, Any],
    current_statistics: Mapping[str, Any],
    *,
    current_columns: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Compare current statistics with a baseline; return ``constraint_violations.json``.

    Parameters
    ----------
    baseline_statistics, constraints
        The baseline's statistics.json and (possibly edited, already checked)
        constraints.json.
    current_statistics
        statistics.json of the current data, computed with the constraints'
        inferred types (see :func:`loopml.monitor.statistics.compute_statistics`).
    current_columns
        Every column of the current data (default: the features of
        ``current_statistics``); those the constraints do not know are extra columns.

    Returns
    -------
    dict
        ``{"violations": [...], "drift": {...}}``.
    """
    cfg = constraints["monitoring_config"]
    evaluate = cfg.get("evaluate_constraints", "Enabled") == "Enabled"
    global_compare = cfg["distribution_constraints"].get("perform_comparison", "Enabled") == "Enabled"
    alpha = float(cfg.get("robust_alpha", 0.001))
    robust_default = cfg["distribution_constraints"].get("comparison_method", "Robust") == "Robust"
    base = feature_map(baseline_statistics)
    cur = feature_map(current_statistics)
    n_cur = int(current_statistics.get("dataset", {}).get("item_count") or 0)
    n_base = int(baseline_statistics.get("dataset", {}).get("item_count") or 0)
    cols = list(current_columns) if current_columns is not None else list(cur)
    known = {f["name"] for f in constraints["features"]}
    violations: list[dict[str, str]] = []
    drift_features: dict[str, Any] = {}

    for col in cols:
        if col not in known:
            violations.append(_violation(col, "extra_column_check",
                                         f"Extra column: {col!r} is in the current data but not in the baseline"))
    present_cols = set(cols)
    for c in constraints["features"]:
        name, itype = c["name"], c["inferred_type"]
        if name not in present_cols or name not in cur:
            violations.append(_violation(name, "missing_column_check",
                                         f"Missing column: {name!r} is in the baseline but not in the current data"))
            continue
        cf = cur[name]
        bf = base.get(name, {})
        cc = common(cf)
        # data type
        share = _type_share(cf, itype)
        base_share = _type_share(bf, itype) if bf else 1.0
        want = (1.0 if base_share is None else base_share) * float(cfg.get("datatype_check_threshold", 1.0))
        if itype in NUMERIC_TYPES and share is not None and share < want - 1e-12:
            violations.append(_violation(name, "data_type_check", (
                f"Data type match requirement is not met. Expected data type: {itype}, expected match: "
                f"{_pct(want)}. Observed: only {_pct(share)} of the values are {itype}")))
        # completeness
        if "completeness" in c and n_cur > 0:
            c0 = float(c["completeness"])
            seen = cc["num_present"] / n_cur
            tol = float(cfg.get("completeness_tolerance", 0.01))
            if robust_default and n_base > 0:
                noise = float(stats.norm.isf(alpha)) * math.sqrt(max(c0 * (1 - c0), 0.0) * (1 / n_cur + 1 / n_base))
                tol = max(tol, noise)
            if seen < c0 - tol - 1e-12:
                violations.append(_violation(name, "completeness_check", (
                    f"Data completeness requirement is not met. Expected completeness: {_pct(c0)} "
                    f"(tolerance {_pct(tol)}). Observed: {_pct(seen)}")))
        # non-negative numbers
        nc = c.get("num_constraints") or {}
        num = cf.get("numerical_statistics") or {}
        if nc.get("is_non_negative") and num.get("min") is not None and num["min"] < 0:
            sk = sketch_of(cf)
            neg = float(sketch_cdf(sk[0], np.array([0.0]), left=True)[0]) if sk else 1.0
            limit = float(cfg.get("non_negative_tolerance", 0.001))
            if neg > limit:
                violations.append(_violation(name, "non_negative_check", (
                    f"Non-negativity requirement is not met: about {_pct(neg)} of the values are negative "
                    f"(minimum {num['min']:.6g}; at most {_pct(limit)} allowed)")))
        # categorical domain
        domain = (c.get("string_constraints") or {}).get("domains")
        counts = category_counts(cf)
        if domain is not None and counts:
            total = sum(counts.values())
            allowed = set(domain)
            outside = {k: v for k, v in counts.items() if k not in allowed}
            known_share = 1.0 - sum(outside.values()) / total if total else 1.0
            want = float(cfg.get("domain_content_threshold", 1.0))
            if known_share < want - 1e-12:
                examples = ", ".join(repr(k) for k in sorted(outside, key=lambda k: -outside[k])[:5])
                violations.append(_violation(name, "categorical_values_check", (
                    f"Categorical value requirement is not met: {_pct(1 - known_share)} of the values are "
                    f"outside the baseline domain ({examples}); expected at least {_pct(want)} inside it")))
        # distribution drift
        fc = feature_config(constraints, c)
        if not (global_compare and fc.perform_comparison) or not bf:
            continue
        if itype in NUMERIC_TYPES and "numerical_statistics" in bf:
            res = numeric_scores(bf, cf, fc)
        elif itype == STRING and domain is not None and "string_statistics" in bf:
            res = categorical_feature_scores(bf, cf, fc)
        else:
            continue
        drift_features[name] = res
        if res.get("drift"):
            main = res["primary_methods"][0] if res["primary_methods"] else ""
            flagged = [m for m in res["primary_methods"] if res["methods"][m]["drift"]]
            m = res["methods"][flagged[0] if flagged else main]
            bound = max(m["threshold"], m["critical"] or 0.0)
            violations.append(_violation(name, "baseline_drift_check", (
                f"Baseline drift distance: {m['distance']:.4g} exceeds threshold: {bound:.4g} "
                f"({m['method']}, {res['comparison_method']})")))

    compared = [n for n, r in drift_features.items() if r.get("compared")]
    drifted = [n for n in compared if drift_features[n]["drift"]]
    share_threshold = float(cfg["distribution_constraints"].get("dataset_drift_share_threshold", 0.5))
    share = len(drifted) / len(compared) if compared else 0.0
    if not evaluate:
        violations = []
    order = {t: i for i, t in enumerate(CHECK_TYPES)}
    violations.sort(key=lambda v: order.get(v["constraint_check_type"], len(order)))
    return {
        "violations": violations,
        "drift": {
            "features": drift_features,
            "compared_features": len(compared),
            "drifted_features": drifted,
            "drift_share": share,
            "dataset_drift_share_threshold": share_threshold,
            "dataset_drift": bool(compared) and share >= share_threshold,
        },
    }


__all__ = ["CHECK_TYPES", "check_data"]
