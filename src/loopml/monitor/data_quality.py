"""The data-quality monitor: baselines from datasets or a model's training data, and monitoring runs.

:func:`baseline` profiles a dataset version (``statistics.json``), suggests
``constraints.json`` and stores both, linked to the dataset version and model
version. :func:`run_data_quality` reads an endpoint's captured inputs in a
time window (or a dataset version), computes their statistics with the
baseline's types, runs the checks (:func:`loopml.monitor.checks.check_data`),
stores ``statistics.json``, ``constraint_violations.json`` and an HTML report,
writes the figures to the metrics table and records the execution.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loopml._report import write_atomic
from loopml._util import utcnow
from loopml.errors import InvalidInput, NotFound
from loopml.monitor.checks import check_data
from loopml.monitor.constraints import check_constraints, suggest_constraints
from loopml.monitor.results import (
    COMPLETED,
    COMPLETED_WITH_VIOLATIONS,
    NO_DATA,
    Baseline,
    MonitoringResult,
    Target,
    get_baseline,
    jsonable,
    list_baselines,
    save_baseline,
    save_result,
)
from loopml.monitor.statistics import common, compute_statistics

if TYPE_CHECKING:
    from loopml.data.catalog import DatasetVersionInfo
    from loopml.registry import ModelVersionInfo
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

KIND = "data_quality"
STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
VIOLATIONS = "constraint_violations.json"
REPORT = "report.html"

#: columns of captured data that describe the request, not its inputs
CAPTURE_COLUMNS = ("event_id", "inference_id", "time", "variant", "model", "prediction", "probabilities")

_METRIC_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")


# -- baselines -------------------------------------------------------------------------------------------
def _training_dataset(ws: Workspace, mv: ModelVersionInfo) -> DatasetVersionInfo:
    from loopml.data.catalog import Catalog

    entries = [d for d in mv.datasets if d.get("role") == "train"] or list(mv.datasets)
    if not entries:
        raise NotFound(f"model {mv.ref} has no recorded training dataset; give one: "
                       f"`loopml monitor baseline NAME:VER --model {mv.ref}`")
    d = entries[0]
    cat = Catalog(ws)
    try:
        return cat.get(f"{d['name']}:{d['version']}")
    except NotFound as e:
        raise NotFound(f"the training dataset {d['name']}:{d['version']} of model {mv.ref} is gone ({e}); "
                       f"give another: `loopml monitor baseline NAME:VER --model {mv.ref}`") from None


def _model_inputs(mv: ModelVersionInfo) -> list[str]:
    return [str(c["name"]) for c in (mv.signature.get("inputs") or []) if isinstance(c, Mapping) and "name" in c]


def baseline(
    ws: Workspace,
    data: str | DatasetVersionInfo | pd.DataFrame | None = None,
    *,
    model: str | None = None,
    name: str | None = None,
    features: Sequence[str] | None = None,
) -> Baseline:
    """Compute and store a data-quality baseline: ``statistics.json`` and suggested ``constraints.json``.

    Parameters
    ----------
    ws
        The workspace.
    data
        A dataset ``NAME[:VERSION]`` (latest if no version), a catalog version,
        or a DataFrame. Leave it out with ``model`` to use the model's training data.
    model
        A registered model (``churn:3``, ``churn@production``): its training
        dataset is the default ``data``, its signature's inputs the default
        ``features``, and the baseline is linked to it (monitoring an endpoint
        that serves it finds the baseline by itself).
    name
        The baseline's name (default: the dataset's, e.g. ``churn-2``, or the
        model's).
    features
        Columns to describe (default: the model's inputs, else every column).

    Returns
    -------
    Baseline
        With ``statistics.json`` and ``constraints.json`` stored as artifacts.

    Raises
    ------
    InvalidInput
        The data has no rows, or a feature is not one of its columns.
    NotFound
        An unknown dataset, version or model, or a model without recorded training data.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.data import Catalog
    >>> from loopml.monitor import baseline
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> _ = Catalog(ws).write("people", pd.DataFrame({"age": [31, 42, 27], "plan": ["a", "b", "a"]}))
    >>> b = baseline(ws, "people")
    >>> b.name, b.dataset_ref, b.details["item_count"]
    ('people-1', 'people:1', 3)
    >>> ws.close()
    """
    from loopml.data.catalog import Catalog, DatasetVersionInfo

    mv: ModelVersionInfo | None = None
    if model is not None:
        from loopml.registry import get_model_version

        mv = get_model_version(ws, model)
    info: DatasetVersionInfo | None = None
    if data is None:
        if mv is None:
            raise InvalidInput("give a dataset NAME[:VERSION] or a model (--model M:V) to baseline")
        info = _training_dataset(ws, mv)
    elif isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, DatasetVersionInfo):
        info = data
    elif isinstance(data, str):
        info = Catalog(ws).get(data)
    else:
        raise InvalidInput(f"baseline data must be a dataset NAME[:VERSION] or a DataFrame, not {type(data).__name__}")
    cols: list[str] | None = list(features) if features is not None else (_model_inputs(mv) or None if mv else None)
    if info is not None:
        if info.row_count == 0:
            raise InvalidInput(f"{info.ref} has no rows; a baseline needs data (ingest rows into a new version)")
        if cols is not None:
            _check_columns(cols, info.columns, info.ref)
        frame = Catalog(ws).read_pandas(info, columns=cols)
    if len(frame) == 0:
        raise InvalidInput("the baseline data has no rows; a baseline needs data")
    if cols is not None:
        _check_columns(cols, [str(c) for c in frame.columns], "the baseline data")
    stats_doc = compute_statistics(frame, features=cols)
    constraints = suggest_constraints(stats_doc)
    name = name or (f"{info.name}-{info.version}" if info else (f"{mv.name}-{mv.version}" if mv else "baseline"))
    details = {
        "item_count": stats_doc["dataset"]["item_count"],
        "features": [{"name": f["name"], "inferred_type": f["inferred_type"]} for f in stats_doc["features"]],
    }
    b = save_baseline(
        ws, KIND, name,
        outputs={STATISTICS: _dumps(stats_doc), CONSTRAINTS: _dumps(constraints, indent=2)},
        dataset_version=(info.id, info.ref) if info else None,
        model_version=(mv.id, mv.ref) if mv else None,
        details=details,
    )
    log.info("baseline %s (%s): %d rows, %d features", b.name, b.id, details["item_count"], len(details["features"]))
    return b


def _check_columns(cols: Sequence[str], have: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in set(have)]
    if missing:
        raise InvalidInput(f"{what} has no column(s) {missing}; its columns are {list(have)}")


def _dumps(doc: Any, indent: int | None = None) -> bytes:
    return json.dumps(jsonable(doc), indent=indent, allow_nan=False).encode()


def read_baseline(ws: Workspace, b: Baseline) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics.json, constraints.json) of a stored data-quality baseline."""
    if b.kind != KIND or b.statistics_sha256 is None or b.constraints_sha256 is None:
        raise InvalidInput(f"baseline {b.name} ({b.id}) is a {b.kind} baseline, not a data-quality one; "
                           "see `loopml monitor baselines`")
    st = json.loads(ws.artifacts.get_bytes(b.statistics_sha256))
    cons = check_constraints(ws.artifacts.get_bytes(b.constraints_sha256), source=f"baseline {b.name}")
    return st, cons


def load_constraints(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check an (edited) constraints.json file."""
    p = Path(path).expanduser()
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"constraints file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"constraints file {str(p)!r} is a folder; give the constraints.json file") from None
    return check_constraints(text, source=str(p))


# -- finding the baseline of a run -----------------------------------------------------------------------------
def _endpoint_models(ws: Workspace, endpoint: str, frame: pd.DataFrame | None) -> tuple[set[str], list[str]]:
    """(model version ids, model refs) an endpoint serves (or served, per its captured rows)."""
    ids: set[str] = set()
    refs: list[str] = []
    try:
        from loopml.serve.endpoints import get_endpoint

        cfg = get_endpoint(ws, endpoint).config
        for v in cfg.variants:
            refs.append(v.model)
            if v.model_version_id:
                ids.add(v.model_version_id)
        if cfg.multi_model is not None:
            for t in cfg.multi_model.models.values():
                refs.append(t.model)
                if t.model_version_id:
                    ids.add(t.model_version_id)
    except NotFound:
        pass
    if frame is not None and "model" in frame.columns and len(frame):
        from loopml.registry import get_model_version

        for ref in frame["model"].dropna().astype(str).unique()[:20]:
            try:
                mv = get_model_version(ws, ref)
            except (NotFound, InvalidInput):
                continue
            ids.add(mv.id)
            refs.append(mv.ref)
    return ids, list(dict.fromkeys(refs))


def _default_baseline(ws: Workspace, target: Target, frame: pd.DataFrame | None) -> Baseline:
    candidates = list_baselines(ws, kind=KIND)
    if target.kind == "endpoint":
        ids, refs = _endpoint_models(ws, target.name, frame)
        for b in candidates:
            if b.model_version_id in ids:
                return b
        served = f" (it serves {', '.join(refs)})" if refs else ""
        example = refs[0] if refs else "M:V"
        raise NotFound(f"no data-quality baseline for endpoint {target.name!r}{served}; create one with "
                       f"`loopml monitor baseline --model {example}` or pass --baseline")
    dataset = target.name.partition(":")[0]
    for b in candidates:
        if b.dataset_ref and b.dataset_ref.partition(":")[0] == dataset:
            return b
    raise NotFound(f"no data-quality baseline for dataset {dataset!r}; create one with "
                   f"`loopml monitor baseline {dataset}:VERSION` or pass --baseline")


# -- reading the current data ------------------------------------------------------------------------------------
def _check_endpoint(ws: Workspace, endpoint: str) -> None:
    from loopml.serve.capture import capture_files
    from loopml.serve.endpoints import check_endpoint_name, get_endpoint

    check_endpoint_name(endpoint)
    try:
        get_endpoint(ws, endpoint)
    except NotFound as e:
        if not capture_files(ws, endpoint):
            raise NotFound(f"{e}; nor is there captured data for {endpoint!r} to monitor") from None


def _capture_frame(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    """Captured rows as inputs: request columns dropped, ``input.<name>`` renamed when a feature is called so."""
    wanted = set(features)
    keep: dict[str, str] = {}
    for col in frame.columns:
        c = str(col)
        if c.startswith("input.") and c[len("input."):] in CAPTURE_COLUMNS:
            keep[c] = c[len("input."):]
        elif c in CAPTURE_COLUMNS and c not in wanted:
            continue
        else:
            keep[c] = c
    return frame[list(keep)].rename(columns=keep)


# -- metrics ----------------------------------------------------------------------------------------------------
def metric_name(prefix: str, feature: str) -> str:
    """``prefix + feature`` with characters a metric name cannot hold replaced by ``_``.

    Examples
    --------
    >>> metric_name("feature_baseline_drift_", "monthly charge ($)")
    'feature_baseline_drift_monthly_charge____'
    """
    return (prefix + _METRIC_CHARS.sub("_", feature))[:200]


def _metric_points(target: Target, current: Mapping[str, Any], report: Mapping[str, Any],
                   at: datetime) -> list[Any]:
    from loopml.metrics import MetricPoint

    base = {target.kind: target.name, "monitor": KIND}
    n = int(current["dataset"]["item_count"])
    points = [
        MetricPoint("dataset_drift_share", float(report["drift"]["drift_share"]), dict(base), at),
        MetricPoint("violations", float(len(report["violations"])), dict(base), at),
    ]
    drift = report["drift"]["features"]
    for f in current["features"]:
        dims = {**base, "feature": f["name"]}
        if n > 0:
            points.append(MetricPoint(metric_name("feature_non_null_", f["name"]),
                                      common(f)["num_present"] / n, dims, at))
        d = drift.get(f["name"])
        if d and d.get("compared") and d.get("distance") is not None:
            points.append(MetricPoint(metric_name("feature_baseline_drift_", f["name"]), float(d["distance"]), dims, at))
    return points


# -- the run ----------------------------------------------------------------------------------------------------
def run_data_quality(
    ws: Workspace,
    *,
    endpoint: str | None = None,
    dataset: str | DatasetVersionInfo | None = None,
    baseline: str | Baseline | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    constraints: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    out: str | os.PathLike[str] | None = None,
    emit_metrics: bool = True,
) -> MonitoringResult:
    """Check an endpoint's captured inputs in a window (or a dataset version) against a baseline.

    Parameters
    ----------
    ws
        The workspace.
    endpoint, dataset
        What to check (exactly one): an endpoint's captured data, or a dataset
        ``NAME[:VERSION]``.
    baseline
        A baseline name or id, or a :class:`Baseline`. Default: for an
        endpoint, the newest baseline of a model it serves; for a dataset, the
        newest baseline of that dataset.
    since, until
        The window of captured data (UTC; naive means UTC); open-ended if left out.
    constraints
        Constraints to use instead of the baseline's (an edited constraints.json:
        a path, or the parsed document).
    out
        Also write the HTML report to this file.
    emit_metrics
        Write the figures to the metrics table (also switched off by the
        constraints' ``emit_metrics: Disabled``).

    Returns
    -------
    MonitoringResult
        Status ``Completed``, ``CompletedWithViolations``, or ``NoData`` when
        the window holds no captured rows (then no metrics are written, so
        alarms on them see missing data).

    Raises
    ------
    NotFound
        An unknown endpoint (with no captured data either), dataset or baseline.
    InvalidInput
        Both or neither of ``endpoint`` and ``dataset``; a bad constraints file.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.data import Catalog
    >>> from loopml.monitor import baseline, run_data_quality
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> cat = Catalog(ws)
    >>> _ = cat.write("t", pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 50, "c": ["a", "b"] * 100}))
    >>> b = baseline(ws, "t")
    >>> _ = cat.write("t", pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0] * 50, "c": ["a", "zz"] * 100}))
    >>> r = run_data_quality(ws, dataset="t:2", baseline=b)
    >>> r.status, [v["constraint_check_type"] for v in r.summary["violations"]]
    ('CompletedWithViolations', ['categorical_values_check', 'baseline_drift_check'])
    >>> ws.close()
    """
    from loopml.data.catalog import Catalog, DatasetVersionInfo

    if (endpoint is None) == (dataset is None):
        raise InvalidInput("give exactly one of an endpoint or a dataset (--data NAME[:VER]) to monitor")
    if out is not None and Path(out).expanduser().is_dir():
        raise InvalidInput(f"--out {str(out)!r} is a folder; give a file name such as report.html")
    frame: pd.DataFrame | None = None
    info: DatasetVersionInfo | None = None
    if endpoint is not None:
        _check_endpoint(ws, endpoint)
        target = Target("endpoint", endpoint)
    else:
        info = dataset if isinstance(dataset, DatasetVersionInfo) else Catalog(ws).get(str(dataset))
        target = Target("dataset", info.ref)

    if endpoint is not None:
        from loopml.serve.capture import read_capture

        frame = read_capture(ws, endpoint, since=since, until=until)
    if isinstance(baseline, Baseline):
        b = baseline
    elif baseline is not None:
        b = get_baseline(ws, baseline, kind=KIND)
    else:
        b = _default_baseline(ws, target, frame)
    base_stats, cons = read_baseline(ws, b)
    if constraints is not None:
        cons = (check_constraints(dict(constraints), source="the constraints given")
                if isinstance(constraints, Mapping) else load_constraints(constraints))
    features = [f["name"] for f in cons["features"]]

    if frame is not None:
        if len(frame) == 0:
            window = f"between {since.isoformat() if since else 'the start'} and {until.isoformat() if until else 'now'}"
            msg = f"no captured data for endpoint {endpoint!r} {window}"
            log.info("%s; nothing to check", msg)
            return save_result(ws, KIND, target, status=NO_DATA, since=since, until=until, baseline_id=b.id,
                               summary={"message": msg, "item_count": 0, "baseline": b.name, "violations": []})
        current = _capture_frame(frame, features)
        columns = [str(c) for c in current.columns]
    else:
        assert info is not None
        columns = info.columns
        current = Catalog(ws).read_pandas(info, columns=[c for c in features if c in set(columns)])

    types = {f["name"]: f["inferred_type"] for f in cons["features"]}
    cur_stats = compute_statistics(current, features=[c for c in features if c in current.columns], types=types)
    if info is not None:  # reading no column at all would count no rows
        cur_stats["dataset"]["item_count"] = info.row_count
    report = check_data(base_stats, cons, cur_stats, current_columns=columns)
    violations = report["violations"]
    status = COMPLETED_WITH_VIOLATIONS if violations else COMPLETED
    drift = report["drift"]
    summary = {
        "baseline": b.name, "baseline_dataset": b.dataset_ref, "baseline_model": b.model_ref,
        "item_count": cur_stats["dataset"]["item_count"],
        "baseline_item_count": base_stats.get("dataset", {}).get("item_count"),
        "features": len(features), "violation_count": len(violations), "violations": violations,
        "flagged_features": sorted({v["feature_name"] for v in violations}),
        "drifted_features": drift["drifted_features"], "drift_share": drift["drift_share"],
        "dataset_drift": drift["dataset_drift"],
        "scores": {n: {"distance": d.get("distance"), "drift": d.get("drift"),
                       "method": (d.get("primary_methods") or [None])[0]}
                   for n, d in drift["features"].items() if d.get("compared")},
    }
    from loopml.monitor.report import render_report

    html = render_report(base_stats, cons, cur_stats, report, title=f"Data quality: {target}",
                         subtitle={"target": str(target), "baseline": f"{b.name} ({b.dataset_ref or 'DataFrame'})",
                                   "since": since, "until": until}).encode()
    res = save_result(
        ws, KIND, target, status=status, summary=summary, since=since, until=until, baseline_id=b.id,
        outputs={STATISTICS: _dumps(cur_stats), VIOLATIONS: _dumps(report, indent=2), REPORT: html},
    )
    if emit_metrics and cons["monitoring_config"].get("emit_metrics", "Enabled") == "Enabled":
        at = until or utcnow()
        ws.metrics.put_many(_metric_points(target, cur_stats, report, at))
    if out is not None:
        write_atomic(out, html)
    log.info("data quality of %s against %s: %s, %d violation(s)", target, b.name, status, len(violations))
    return res


__all__ = [
    "CAPTURE_COLUMNS",
    "CONSTRAINTS",
    "KIND",
    "REPORT",
    "STATISTICS",
    "VIOLATIONS",
    "baseline",
    "load_constraints",
    "metric_name",
    "read_baseline",
    "run_data_quality",
]
