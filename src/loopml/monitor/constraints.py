"""``constraints.json``: what the data-quality monitor checks, suggested from a baseline's statistics.

The layout is Model Monitor's: per feature its ``inferred_type``,
``completeness``, ``num_constraints.is_non_negative`` and
``string_constraints.domains``, and a ``monitoring_config`` with the
thresholds. loopml adds keys of its own (documented in ``docs/monitor.md``):

``monitoring_config``
    ``completeness_tolerance`` (how far completeness may fall below the
    baseline's before a ``completeness_check`` violation, default 0.01),
    ``non_negative_tolerance`` (share of negative values allowed in a feature
    constrained non-negative, default 0.001), and ``robust_alpha`` (the
    significance level of the Robust comparison, default 0.001).
``distribution_constraints``
    ``numerical_drift_method`` (``KS`` — the reference's distance —,
    ``Wasserstein`` or ``PSI``, or a list of them), ``method_thresholds`` (a
    threshold for every method, so each gets a verdict), and
    ``dataset_drift_share_threshold`` (the share of drifted features at which
    the dataset counts as drifted, default 0.5). The primary numeric method
    uses ``comparison_threshold``; the primary categorical method
    (``categorical_drift_method``: ``LInfinity``, ``JensenShannon``,
    ``ChiSquare`` or ``PSI``) uses ``categorical_comparison_threshold``.

A feature's ``monitoring_config_overrides`` may set ``comparison_threshold``,
``comparison_method``, ``categorical_comparison_threshold``,
``numerical_drift_method``, ``categorical_drift_method`` and
``perform_comparison`` for that feature alone.

Users may edit the file; :func:`check_constraints` reads an edited one back
with messages that say which key is wrong.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopml.errors import InvalidInput
from loopml.monitor.statistics import INFERRED_TYPES, NUMERIC_TYPES, STRING, common, feature_map

NUMERIC_METHODS = ("KS", "Wasserstein", "PSI")
CATEGORICAL_METHODS = ("LInfinity", "JensenShannon", "ChiSquare", "PSI")
ALL_METHODS = ("KS", "Wasserstein", "PSI", "LInfinity", "JensenShannon", "ChiSquare")

#: the thresholds every method starts with (distances: KS and L-infinity as in the reference;
#: Wasserstein normalised by the baseline's standard deviation; PSI; Jensen-Shannon distance
#: (base 2); ChiSquare as Cramér's V of the 2 x k frequency table)
DEFAULT_THRESHOLDS: dict[str, float] = {
    "KS": 0.1, "Wasserstein": 0.1, "PSI": 0.1, "LInfinity": 0.1, "JensenShannon": 0.1, "ChiSquare": 0.1,
}

#: a string feature gets a domain (and categorical drift) when it has at most this many values ...
MAX_DOMAIN = 1000
#: ... and they are not nearly all distinct (an id column has no useful domain)
MAX_DISTINCT_RATIO = 0.5

_ENABLED = ("Enabled", "Disabled")
_COMPARISON_METHODS = ("Robust", "Simple")


def default_monitoring_config() -> dict[str, Any]:
    """The ``monitoring_config`` block a suggested constraints.json starts with."""
    return {
        "evaluate_constraints": "Enabled",
        "emit_metrics": "Enabled",
        "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "completeness_tolerance": 0.01,
        "non_negative_tolerance": 0.001,
        "robust_alpha": 0.001,
        "distribution_constraints": {
            "perform_comparison": "Enabled",
            "comparison_threshold": DEFAULT_THRESHOLDS["KS"],
            "comparison_method": "Robust",
            "categorical_comparison_threshold": DEFAULT_THRESHOLDS["LInfinity"],
            "categorical_drift_method": "LInfinity",
            "numerical_drift_method": "KS",
            "method_thresholds": dict(DEFAULT_THRESHOLDS),
            "dataset_drift_share_threshold": 0.5,
        },
    }


def has_domain(feature: Mapping[str, Any]) -> bool:
    """True when a string feature's values form a small enough set to be a domain."""
    st = feature.get("string_statistics")
    if not st:
        return False
    distinct = float(st.get("distinct_count") or 0)
    present = float(st["common"]["num_present"])
    cat = st.get("distribution", {}).get("categorical", {})
    return (0 < distinct <= MAX_DOMAIN and not cat.get("other_count")
            and (distinct <= 10 or distinct <= MAX_DISTINCT_RATIO * present))


def suggest_constraints(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """Suggest constraints.json from a baseline's statistics.json.

    Examples
    --------
    >>> import pandas as pd
    >>> from loopml.monitor.statistics import compute_statistics
    >>> st = compute_statistics(pd.DataFrame({"x": [1.5, 2.0, None, 4.0], "c": ["a", "b", "a", "a"]}))
    >>> c = suggest_constraints(st)
    >>> c["features"][0]
    {'name': 'x', 'inferred_type': 'Fractional', 'completeness': 0.75, 'num_constraints': {'is_non_negative': True}}
    >>> c["features"][1]["string_constraints"], c["monitoring_config"]["distribution_constraints"]["comparison_method"]
    ({'domains': ['a', 'b']}, 'Robust')
    """
    items = max(int(statistics.get("dataset", {}).get("item_count") or 0), 1)
    features = []
    for f in statistics.get("features", []):
        c = common(f)
        entry: dict[str, Any] = {"name": f["name"], "inferred_type": f["inferred_type"],
                                 "completeness": c["num_present"] / items}
        num = f.get("numerical_statistics")
        if num is not None:
            entry["num_constraints"] = {"is_non_negative": num.get("min") is not None and num["min"] >= 0}
        elif f["inferred_type"] == STRING and has_domain(f):
            buckets = f["string_statistics"]["distribution"]["categorical"]["buckets"]
            entry["string_constraints"] = {"domains": sorted(str(b["value"]) for b in buckets)}
        features.append(entry)
    return {"version": 0.0, "features": features, "monitoring_config": default_monitoring_config()}


# -- reading an (edited) constraints file -------------------------------------------------------------
def _where(source: str) -> str:
    return f" in {source}" if source else ""


def _number(v: Any, key: str, source: str, lo: float = 0.0, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v or v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise InvalidInput(f"{key} must be a number {bound}, not {v!r}{_where(source)}")
    return float(v)


def _choice(v: Any, key: str, choices: tuple[str, ...], source: str) -> str:
    if v not in choices:
        raise InvalidInput(f"{key} must be one of {', '.join(choices)}, not {v!r}{_where(source)}")
    return str(v)


def _methods(v: Any, key: str, choices: tuple[str, ...], source: str) -> list[str]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise InvalidInput(f"{key} must be a method name or a list of them ({', '.join(choices)}){_where(source)}")
    return [_choice(m, key, choices, source) for m in items]


def _check_config(cfg: Mapping[str, Any], where: str, source: str, *, partial: bool) -> dict[str, Any]:
    """Validate (and fill, unless ``partial``) a monitoring_config or an overrides block."""
    out: dict[str, Any] = {} if partial else default_monitoring_config()
    dist_in = cfg.get("distribution_constraints", {}) if not partial else cfg
    if not isinstance(dist_in, Mapping):
        raise InvalidInput(f"{where}.distribution_constraints must be an object{_where(source)}")
    if not partial:
        for key in ("evaluate_constraints", "emit_metrics"):
            if key in cfg:
                out[key] = _choice(cfg[key], f"{where}.{key}", _ENABLED, source)
        for key, hi in (("datatype_check_threshold", 1.0), ("domain_content_threshold", 1.0),
                        ("completeness_tolerance", 1.0), ("non_negative_tolerance", 1.0),
                        ("robust_alpha", 0.5)):
            if key in cfg:
                out[key] = _number(cfg[key], f"{where}.{key}", source, 0.0, hi)
        dist = out["distribution_constraints"]
        dkey = f"{where}.distribution_constraints"
    else:
        dist = out
        dkey = where
    if "perform_comparison" in dist_in:
        dist["perform_comparison"] = _choice(dist_in["perform_comparison"], f"{dkey}.perform_comparison", _ENABLED, source)
    if "comparison_method" in dist_in:
        dist["comparison_method"] = _choice(dist_in["comparison_method"], f"{dkey}.comparison_method",
                                            _COMPARISON_METHODS, source)
    for key in ("comparison_threshold", "categorical_comparison_threshold"):
        if key in dist_in:
            dist[key] = _number(dist_in[key], f"{dkey}.{key}", source)
    if "numerical_drift_method" in dist_in:
        m = _methods(dist_in["numerical_drift_method"], f"{dkey}.numerical_drift_method", NUMERIC_METHODS, source)
        dist["numerical_drift_method"] = m[0] if len(m) == 1 else m
    if "categorical_drift_method" in dist_in:
        m = _methods(dist_in["categorical_drift_method"], f"{dkey}.categorical_drift_method", CATEGORICAL_METHODS,
                     source)
        dist["categorical_drift_method"] = m[0] if len(m) == 1 else m
    if "method_thresholds" in dist_in:
        mt = dist_in["method_thresholds"]
        if not isinstance(mt, Mapping):
            raise InvalidInput(f"{dkey}.method_thresholds must be an object such as {{\"KS\": 0.1}}{_where(source)}")
        base = dict(dist.get("method_thresholds") or {})
        for k, v in mt.items():
            _choice(k, f"a key of {dkey}.method_thresholds", ALL_METHODS, source)
            base[k] = _number(v, f"{dkey}.method_thresholds.{k}", source)
        dist["method_thresholds"] = base
    if "dataset_drift_share_threshold" in dist_in and not partial:
        dist["dataset_drift_share_threshold"] = _number(
            dist_in["dataset_drift_share_threshold"], f"{dkey}.dataset_drift_share_threshold", source, 0.0, 1.0)
    return out


def check_constraints(doc: Any, *, source: str = "") -> dict[str, Any]:
    """Validate a constraints.json document (perhaps edited by hand) and fill in missing defaults.

    ``source`` names the file in error messages.

    Raises
    ------
    InvalidInput
        A key has the wrong type or an unknown value; the message names it.
    """
    if isinstance(doc, str | bytes):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"constraints{_where(source)} are not valid JSON: {e}") from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("features"), list):
        raise InvalidInput(f"constraints{_where(source)} must be an object with a 'features' list "
                           "(see a baseline's constraints.json)")
    features = []
    seen: set[str] = set()
    for i, f in enumerate(doc["features"]):
        where = f"features[{i}]"
        if not isinstance(f, Mapping) or not isinstance(f.get("name"), str) or not f["name"]:
            raise InvalidInput(f"{where} must be an object with a 'name'{_where(source)}")
        name = f["name"]
        if name in seen:
            raise InvalidInput(f"feature {name!r} appears twice{_where(source)}")
        seen.add(name)
        entry = copy.deepcopy(dict(f))
        entry["inferred_type"] = _choice(f.get("inferred_type"), f"{where}.inferred_type ({name})", INFERRED_TYPES,
                                         source)
        if "completeness" in f:
            entry["completeness"] = _number(f["completeness"], f"{where}.completeness ({name})", source, 0.0, 1.0)
        nc = f.get("num_constraints")
        if nc is not None and (not isinstance(nc, Mapping) or not isinstance(nc.get("is_non_negative", False), bool)):
            raise InvalidInput(f"{where}.num_constraints.is_non_negative ({name}) must be true or false"
                                   f"{_where(source)}")
        sc = f.get("string_constraints")
        if sc is not None:
            dom = sc.get("domains") if isinstance(sc, Mapping) else None
            if not isinstance(dom, list) or not all(isinstance(d, str) for d in dom):
                raise InvalidInput(f"{where}.string_constraints.domains ({name}) must be a list of strings"
                                   f"{_where(source)}")
        ov = f.get("monitoring_config_overrides")
        if ov is not None:
            if not isinstance(ov, Mapping):
                raise InvalidInput(f"{where}.monitoring_config_overrides ({name}) must be an object{_where(source)}")
            entry["monitoring_config_overrides"] = _check_config(
                ov, f"{where}.monitoring_config_overrides", source, partial=True)
        features.append(entry)
    cfg = doc.get("monitoring_config", {})
    if not isinstance(cfg, Mapping):
        raise InvalidInput(f"monitoring_config must be an object{_where(source)}")
    return {"version": doc.get("version", 0.0), "features": features,
            "monitoring_config": _check_config(cfg, "monitoring_config", source, partial=False)}


# -- the settings one feature is compared with -----------------------------------------------------------
@dataclass(frozen=True)
class FeatureConfig:
    """The resolved drift settings of one feature (the global config with its overrides applied)."""

    perform_comparison: bool
    robust: bool
    alpha: float
    #: primary methods: the feature drifts if any of them says so
    primary: tuple[str, ...]
    #: threshold of every method (the primary ones use the comparison thresholds)
    thresholds: dict[str, float]


def feature_config(constraints: Mapping[str, Any], feature: Mapping[str, Any]) -> FeatureConfig:
    """Resolve the drift settings of ``feature`` (an entry of ``constraints["features"]``)."""
    cfg = constraints["monitoring_config"]
    dist = {**cfg["distribution_constraints"], **(feature.get("monitoring_config_overrides") or {})}
    numeric = feature.get("inferred_type") in NUMERIC_TYPES
    key = "numerical_drift_method" if numeric else "categorical_drift_method"
    methods = dist[key]
    primary = tuple([methods] if isinstance(methods, str) else methods)
    thresholds = dict(DEFAULT_THRESHOLDS)
    thresholds.update(dist.get("method_thresholds") or {})
    main = dist["comparison_threshold"] if numeric else dist["categorical_comparison_threshold"]
    for m in primary:
        thresholds[m] = float(main)
    return FeatureConfig(
        perform_comparison=dist.get("perform_comparison", "Enabled") == "Enabled",
        robust=dist.get("comparison_method", "Robust") == "Robust",
        alpha=float(cfg.get("robust_alpha", 0.001)),
        primary=primary,
        thresholds=thresholds,
    )


def constraint_map(constraints: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{feature name: entry}`` of a constraints document."""
    return feature_map(constraints)


__all__ = [
    "ALL_METHODS",
    "CATEGORICAL_METHODS",
    "DEFAULT_THRESHOLDS",
    "NUMERIC_METHODS",
    "FeatureConfig",
    "check_constraints",
    "constraint_map",
    "default_monitoring_config",
    "feature_config",
    "has_domain",
    "suggest_constraints",
]
