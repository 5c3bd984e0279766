"""``evaluate_dataset()`` and ``evaluate_model()``: evaluate, store the result with lineage.

The thin I/O edge around :func:`loopml.evaluate.evaluate_predictions` and
:func:`loopml.evaluate.render_report`. :func:`evaluate_dataset` reads the
target, prediction and score columns of a version; :func:`evaluate_model`
loads a trained model (registry ref, run or package id), lets it predict the
rows of a version and measures its inference latency. Both then store the
JSON result and the HTML report as content-addressed artifacts, record
``dataset_version --evaluated_by--> evaluation:<sha>`` (and, for a model,
``model_version``/``run`` and ``model_package --evaluated_by-->``) and
``evaluation:<sha> --rendered_as--> evaluation_report:<sha>`` in the lineage
and emit an ``evaluation.created`` event, all in one transaction; with a
tracking run they log the metrics there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from loopml._report import RENDERED_AS, stored_results, write_atomic
from loopml.data.catalog import Catalog, DatasetVersionInfo
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.evaluate.business import BusinessCosts
from loopml.evaluate.custom import MetricRegistry
from loopml.evaluate.report import render_report
from loopml.evaluate.result import EvaluationResult, StoredEvaluation, Task, evaluate_predictions
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    import pandas as pd

    from loopml.track import Run
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

EVALUATION_CREATED = "evaluation.created"
EVALUATION_KIND = "evaluation"
REPORT_KIND = "evaluation_report"
EVALUATED_BY = "evaluated_by"
#: prefix of the metrics logged on a tracking run (keeps them apart from training metrics)
RUN_METRIC_PREFIX = "eval."


def _column(info: DatasetVersionInfo, role: str, name: str | None) -> str | None:
    if name is not None and name not in info.columns:
        raise InvalidInput(f"{role} column {name!r} is not in {info.ref}; its columns are {info.columns}")
    return name


def evaluate_dataset(
    ws: Workspace,
    ref: str | DatasetVersionInfo,
    target: str | None,
    prediction: str | None = None,
    score: str | Sequence[str] | None = None,
    *,
    costs: BusinessCosts | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    run_id: str | Run | None = None,
    task: Task = "auto",
    labels: Sequence[Any] | None = None,
    pos_label: Any = None,
    threshold: float | None = None,
    threshold_by: Literal["auto", "f1", "cost"] | None = "auto",
    k: int | Sequence[int] = 10,
    group: str | None = None,
    features: Sequence[str] | None = None,
    latency: Mapping[str, Any] | None = None,
    seasonality: int = 1,
    registry: MetricRegistry | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate the predictions stored in a dataset version; store the result and report with lineage.

    Parameters
    ----------
    ws
        The workspace.
    ref
        ``NAME[:VERSION]`` (latest if no version) or a version from the catalog.
    target
        The column of true labels, values or relevances (None for clustering).
    prediction
        The column of predicted labels or values (cluster labels for clustering).
    score
        Score column(s): one for binary (the positive class) or ranking, one per
        class for multiclass (in the order of ``labels``, sorted classes by default).
    costs
        A costs YAML path, mapping or :class:`BusinessCosts`. A ``baseline``
        that is not ``always-negative``/``always-positive`` names a column of
        this version holding the baseline's predictions.
    out
        Also write the HTML report to this path (atomically).
    run_id
        A tracking run to record the evaluation on: an open :class:`loopml.track.Run`
        gets the metrics (prefixed ``eval.``), the JSON result and the report
        directly; a run id gets them on a nested ``evaluate`` run under it
        (a finished run takes no more logging).
    task, labels, pos_label, threshold, threshold_by, k, latency, seasonality, registry, seed
        As for :func:`loopml.evaluate.evaluate_predictions`.
    group
        Ranking: the query or user column.
    features
        Clustering: the feature columns (default: every numeric column not otherwise used).
    progress
        Called with the name of each stage as it starts.

    Returns
    -------
    EvaluationResult
        With ``stored`` set: the artifact hashes, the report path and ``out``.

    Raises
    ------
    NotFound
        The dataset, version or run does not exist.
    InvalidInput
        A column is missing, the version has no usable rows, or the inputs do not fit the task.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.data import Catalog
    >>> from loopml.evaluate import evaluate_dataset
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> df = pd.DataFrame({"y": [0, 1, 1, 0], "p": [0.2, 0.7, 0.4, 0.1]})
    >>> _ = Catalog(ws).write("scored", df)
    >>> res = evaluate_dataset(ws, "scored", "y", score="p")
    >>> res.task, res.metrics["roc_auc"], res.source["dataset"]
    ('binary', 1.0, 'scored:1')
    >>> ws.close()
    """
    step = progress or (lambda _stage: None)
    cat, info, c = _open(ws, ref, out, costs)
    scores = [score] if isinstance(score, str) else list(score or [])
    if prediction is None and not scores:
        raise InvalidInput("give the prediction column (--prediction) or the score column(s) (--score)")
    _column(info, "target", target)
    _column(info, "prediction", prediction)
    for col in scores:
        _column(info, "score", col)
    _column(info, "group", group)
    baseline_col = _baseline_column(info, c)
    used = [x for x in (target, prediction, *scores, group, baseline_col) if x is not None]
    is_clustering = task == "clustering" or (task == "auto" and target is None)
    feats: list[str] = []
    if is_clustering:
        if features is not None:
            feats = [_column(info, "feature", f) or f for f in features]
        else:
            feats = [col["name"] for col in info.schema if col["name"] not in used and _numeric(col["type"])]
        if not feats:
            raise InvalidInput(f"clustering needs numeric feature columns; {info.ref} has none besides {used}")
    elif target is None:
        raise InvalidInput("give the target column (--target): the true labels or values")

    step("reading " + info.ref)
    columns = list(dict.fromkeys([*used, *feats]))
    df = _read(cat, info, columns)
    complete = df.notna().all(axis=1)
    dropped = int((~complete).sum())
    if dropped:
        df = df[complete]
    if df.empty:
        raise InvalidInput(f"every row of {info.ref} misses one of {columns}; nothing to evaluate")

    y_score: Any = None
    if scores:
        y_score = df[scores[0]].to_numpy() if len(scores) == 1 else df[scores].to_numpy(dtype=float)
    return _evaluate_and_store(
        ws, info,
        inputs=dict(
            y_true=df[target].to_numpy() if target is not None else None,
            y_pred=df[prediction].to_numpy() if prediction is not None else None,
            y_score=y_score, X=df[feats].to_numpy(dtype=float) if feats else None,
            group=df[group].to_numpy() if group is not None else None,
            baseline_pred=df[baseline_col].to_numpy() if baseline_col is not None else None,
        ),
        settings=dict(task=task, labels=labels, pos_label=pos_label, threshold=threshold,
                      threshold_by=threshold_by, costs=c, latency=latency, k=k, seasonality=seasonality,
                      registry=registry, seed=seed),
        notes=[f"left out {dropped} of {info.row_count} rows with a missing value in {columns}"] if dropped else [],
        source=dict(target=target, prediction=prediction, score=scores or None, group=group,
                    features=feats or None, rows_left_out=dropped),
        title=f"Evaluation: {info.ref}", run_id=run_id, run_name=f"evaluate {info.ref}", out=out, step=step,
    )


def evaluate_model(
    ws: Workspace,
    model: str,
    data: str | DatasetVersionInfo,
    target: str | None = None,
    *,
    costs: BusinessCosts | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    run_id: str | Run | None = None,
    pos_label: Any = None,
    threshold: float | None = None,
    threshold_by: Literal["auto", "f1", "cost"] | None = "auto",
    k: int | Sequence[int] = 10,
    seasonality: int = 1,
    latency_rows: int = 200,
    registry: MetricRegistry | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Evaluate a trained model on a dataset version: it predicts, its latency is measured, the result is stored.

    The model predicts every row of the version (labels, and class
    probabilities in class order for classifiers); ``predict_one``, the
    serving path, is timed on up to ``latency_rows`` sample records (as JSON
    carries them) and the p50/p99 latency goes into the model–business
    alignment table (and, with ``price_per_compute_second``, into the
    operating cost). Then the evaluation runs and is stored exactly as by
    :func:`evaluate_dataset`, linked ``--evaluated_by-->`` from the dataset
    version, from the model version or run the reference named, and from the
    model package.

    Parameters
    ----------
    ws
        The workspace.
    model
        What to evaluate, tried in this order: a registered model
        (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``), a tracking run id (or
        unique prefix) of a training run, a model package id (sha256).
    data
        ``NAME[:VERSION]`` (latest if no version) or a version from the catalog:
        the model's input columns and the target.
    target
        The column of true labels or values (default: the column the model was trained on).
    costs
        A costs YAML path, mapping or :class:`BusinessCosts`; a ``baseline``
        that is not a rule names a column of ``data`` with the baseline's
        predictions, or another registered model as ``model:NAME[:VERSION|@ALIAS]``
        (e.g. ``model:churn@production``: the challenger against the champion,
        on the same rows; the baseline model's labels are its most probable class).
    out
        Also write the HTML report to this path (atomically).
    run_id
        The tracking run to record the evaluation on (see :func:`evaluate_dataset`);
        default: the model's training run, when known, as a nested ``evaluate`` run.
    pos_label, threshold_by, k, seasonality, registry, seed
        As for :func:`loopml.evaluate.evaluate_predictions`.
    threshold
        Binary: label rows whose positive-class probability is at least this
        (default: the model's own labels, the most probable class).
    latency_rows
        How many sample records to time ``predict_one`` on; 0 to skip.
    progress
        Called with the name of each stage as it starts.

    Returns
    -------
    EvaluationResult
        With ``source`` naming the model (``model``, ``model_sha256``,
        ``model_version``, ``training_run_id``) and ``stored`` set.

    Raises
    ------
    NotFound
        The model, run, package or dataset does not exist (the message lists what was tried).
    IntegrityError
        A file of the model package was modified in the artifact store.
    InvalidInput
        The data lack a column the model reads or the target, hold classes the
        model does not know, or the model's kind of output cannot be evaluated.

    Examples
    --------
    >>> from loopml.evaluate import evaluate_model
    >>> res = evaluate_model(ws, "churn@production", "churn_test", costs="costs.yaml")  # doctest: +SKIP
    >>> res.business["latency"]["p50_ms"], res.metrics["roc_auc"]  # doctest: +SKIP
    (0.21, 0.91)
    """
    from loopml.evaluate import _model
    from loopml.evaluate.business import measure_latency

    step = progress or (lambda _stage: None)
    if isinstance(latency_rows, bool) or not isinstance(latency_rows, int) or latency_rows < 0:
        raise InvalidInput(f"latency_rows must be a whole number ≥ 0; got {latency_rows!r}")
    cat, info, c = _open(ws, data, out, costs)
    step("loading the model")
    m, src = _model.resolve_model(ws, model)
    task = _model.TASK_OF.get(m.problem_type)
    if task is None:
        raise InvalidInput(
            f"{src.label} ({m.flavor}) solves {m.problem_type}; evaluate_model takes binary, multiclass, "
            "regression, forecasting, ranking and clustering models; score the data yourself and use "
            "evaluate_dataset (--prediction)"
        )
    target = target if target is not None else m.target
    if target is None and task != "clustering":
        raise InvalidInput("give the target column (--target): the true labels or values")
    _column(info, "target", target)
    inputs, group = _model.columns_for(m, task)
    missing = [col for col in [*inputs, *([group] if group else [])] if col not in info.columns]
    if missing:
        raise InvalidInput(f"{src.label} reads column(s) {missing} that {info.ref} does not have; its columns "
                           f"are {info.columns}")
    baseline_col = _baseline_column(info, c)
    base_model = _baseline_model(ws, info, c, task)
    base_inputs = base_model[1] if base_model is not None else []

    step("reading " + info.ref)
    needed = [x for x in (target, group, baseline_col) if x is not None]
    df = _read(cat, info, list(dict.fromkeys([*inputs, *base_inputs, *needed])))
    notes: list[str] = []
    complete = df[needed].notna().all(axis=1).to_numpy() if needed else np.ones(len(df), dtype=bool)
    if not complete.all():
        notes.append(f"left out {int((~complete).sum())} of {info.row_count} rows with a missing value in {needed}")
        df = df[complete]
    if df.empty:
        raise InvalidInput(f"every row of {info.ref} misses one of {needed}; nothing to evaluate")
    y_true = df[target].to_numpy() if target is not None else None
    if task in ("binary", "multiclass") and y_true is not None:
        known = list(m.classes or [])
        extra = sorted(set(y_true.tolist()) - set(known), key=str)
        if extra:
            raise InvalidInput(f"the target {target!r} of {info.ref} holds class(es) {extra[:5]} that {src.label} "
                               f"was not trained on (its classes: {known[:10]})")

    step(f"predicting with {src.label}")
    pred = _model.predict(m, df, inputs, task=task, threshold=threshold, y_true=y_true)
    unscored = int((~pred.keep).sum())
    if unscored:
        notes.append(f"left out {unscored} rows the model's recipe gave no prediction for")
    if not pred.keep.any():
        raise InvalidInput(f"{src.label} gave no prediction for any row of {info.ref}; nothing to evaluate")
    notes.extend(pred.notes)
    kept = df[pred.keep]
    baseline_pred = kept[baseline_col].to_numpy() if baseline_col is not None else None
    if base_model is not None:
        bm, b_inputs, b_label = base_model
        step(f"predicting with the baseline {b_label}")
        values = np.asarray(bm.predict(kept[b_inputs]), dtype=object)
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in values):
            raise InvalidInput(f"the baseline {b_label} gave no prediction for some rows the model scored; "
                               "a baseline model must score every row")
        baseline_pred = values

    latency: dict[str, Any] | None = None
    if latency_rows:
        step("measuring latency")
        records = _model.latency_sample(kept, inputs, latency_rows, seed)
        try:
            latency = measure_latency(_model.one_record_predict(m), records, rows=len(records), seed=seed)
        except LoopmlError:
            raise
        except Exception as e:
            raise InvalidInput(f"predict_one of {src.label} failed on a sample record of {info.ref}: {e}") from e

    return _evaluate_and_store(
        ws, info,
        inputs=dict(
            y_true=y_true[pred.keep] if y_true is not None else None, y_pred=pred.y_pred, y_score=pred.y_score,
            X=pred.X, group=kept[group].to_numpy() if group is not None else None,
            baseline_pred=baseline_pred,
        ),
        settings=dict(task=task, labels=pred.labels, pos_label=pos_label, threshold=threshold,
                      threshold_by=threshold_by, costs=c, latency=latency, k=k, seasonality=seasonality,
                      registry=registry, seed=seed),
        notes=notes,
        source=dict(target=target, **src.to_source(), group=group,
                    rows_left_out=info.row_count - len(kept)),
        title=f"Evaluation: {src.label} on {info.ref}",
        run_id=run_id if run_id is not None else src.run_id,
        run_name=f"evaluate {src.version or src.sha256[:12]} on {info.ref}",
        out=out, step=step, subjects=src.entities,
        event={"model": src.label, "model_kind": src.kind, "model_sha256": src.sha256},
    )


def _open(
    ws: Workspace, ref: str | DatasetVersionInfo, out: str | os.PathLike[str] | None,
    costs: BusinessCosts | Mapping[str, Any] | str | os.PathLike[str] | None,
) -> tuple[Catalog, DatasetVersionInfo, BusinessCosts | None]:
    """Check ``out`` and the costs, find the dataset version: what both entry points start with."""
    if out is not None and Path(out).expanduser().is_dir():
        raise InvalidInput(f"--out {str(out)!r} is a folder; give a file name such as report.html")
    c = BusinessCosts.coerce(costs)
    cat = Catalog(ws)
    info = ref if isinstance(ref, DatasetVersionInfo) else cat.get(ref)
    return cat, info, c


def _baseline_model(
    ws: Workspace, info: DatasetVersionInfo, costs: BusinessCosts | None, task: str,
) -> tuple[Any, list[str], str] | None:
    """The baseline model the costs name (``model:REF``): the loaded model, its input columns, its label."""
    ref = costs.baseline_model if costs is not None else None
    if ref is None:
        return None
    from loopml.evaluate import _model

    m, src = _model.resolve_model(ws, ref)
    if _model.TASK_OF.get(m.problem_type) != task:
        raise InvalidInput(f"the baseline {src.label} solves {m.problem_type}, not {task} like the model evaluated; "
                           "compare models of the same kind")
    inputs, _ = _model.columns_for(m, task)
    missing = [col for col in inputs if col not in info.columns]
    if missing:
        raise InvalidInput(f"the baseline {src.label} reads column(s) {missing} that {info.ref} does not have")
    return m, inputs, src.label


def _baseline_column(info: DatasetVersionInfo, costs: BusinessCosts | None) -> str | None:
    """The column of baseline predictions the costs name, if any (checked against the version)."""
    col = costs.baseline if costs is not None and not costs.baseline_is_rule and costs.baseline_model is None else None
    if col is not None and col not in info.columns:
        raise InvalidInput(
            f"the costs' baseline {col!r} is neither always-negative, always-positive nor a column "
            f"of {info.ref}; its columns are {info.columns}"
        )
    return col


def _read(cat: Catalog, info: DatasetVersionInfo, columns: list[str]) -> pd.DataFrame:
    if info.row_count == 0:
        raise InvalidInput(f"{info.ref} has no rows; nothing to evaluate")
    return cat.read_arrow(info, columns=columns).to_pandas()


def _evaluate_and_store(
    ws: Workspace,
    info: DatasetVersionInfo,
    *,
    inputs: Mapping[str, Any],
    settings: Mapping[str, Any],
    notes: Sequence[str],
    source: Mapping[str, Any],
    title: str,
    run_id: str | Run | None,
    run_name: str,
    out: str | os.PathLike[str] | None,
    step: Callable[[str], None],
    subjects: Sequence[EntityRef] = (),
    event: Mapping[str, Any] | None = None,
) -> EvaluationResult:
    """Evaluate, then store the JSON result and the HTML report with lineage, an event and the run.

    ``inputs`` and ``settings`` go to :func:`evaluate_predictions`; the
    evaluation is linked ``--evaluated_by-->`` from the dataset version and
    from each of ``subjects`` (a model version, a run, a model package).
    """
    step("computing metrics")
    result = evaluate_predictions(**inputs, **settings)
    if notes:
        result = replace(result, warnings=[*notes, *result.warnings])
    run_ref = _run_id_of(run_id)
    result = result.with_source(dataset=info.ref, dataset_id=info.id, content_hash=info.content_hash, **source,
                                **({"run_id": run_ref} if run_ref else {}))

    step("writing the report")
    html = render_report(result, title=title).encode()
    result_ref = ws.artifacts.put_bytes(result.to_json().encode())
    html_ref = ws.artifacts.put_bytes(html)
    entity = EntityRef(EVALUATION_KIND, result_ref.sha256)
    with ws.meta.session(write=True) as s:
        for src in (info.entity, *subjects):
            ws.lineage.add(src, entity, EVALUATED_BY, session=s)
        ws.lineage.add(entity, EntityRef(REPORT_KIND, html_ref.sha256), RENDERED_AS, session=s)
        ws.events.emit(EVALUATION_CREATED, entity, {
            "dataset": info.ref, "dataset_version_id": info.id, "task": result.task,
            "metrics": {k_: (v if v is None or np.isfinite(v) else None) for k_, v in result.headline.items()},
            "report_sha256": html_ref.sha256, "run_id": run_ref, **dict(event or {}),
        }, session=s)
    logged_to = None
    if run_id is not None:
        step("logging to the run")
        logged_to = _log_to_run(ws, run_id, result, info, result_ref.sha256, html, name=run_name)
    written = write_atomic(out, html) if out is not None else None
    log.info("evaluated %s (%s): result %s, report %s", info.ref, result.task, result_ref.sha256[:12],
             html_ref.sha256[:12])
    return replace(result, stored=StoredEvaluation(
        result_sha256=result_ref.sha256, report_sha256=html_ref.sha256,
        report_path=ws.artifacts.local_path(html_ref.sha256, verify=False), out=written, run_id=logged_to,
    ))


def _numeric(arrow_type: str) -> bool:
    return arrow_type.startswith(("int", "uint", "float", "double", "decimal")) or arrow_type == "halffloat"


def _run_id_of(run: str | Run | None) -> str | None:
    if run is None or isinstance(run, str):
        return run
    return str(run.id)


def run_metrics(result: EvaluationResult) -> dict[str, float]:
    """The metrics logged on a tracking run: ``eval.<metric>``, ``eval.business.<figure>``, ``eval.latency.<p>_ms``.

    Keys use only characters the tracker allows (``precision@10`` becomes
    ``precision_at_10``); undefined values are left out.
    """
    out: dict[str, float] = {}
    for k, v in result.metrics.items():
        if v is not None and np.isfinite(v):
            out[RUN_METRIC_PREFIX + k.replace("@", "_at_")] = float(v)
    if result.threshold is not None:
        out[RUN_METRIC_PREFIX + "threshold"] = result.threshold.threshold
    for k, v in ((result.business or {}).get("summary") or {}).items():
        if v is not None and np.isfinite(v):
            out[f"{RUN_METRIC_PREFIX}business.{k}"] = float(v)
    for k, v in ((result.business or {}).get("latency") or {}).items():
        if k.endswith("_ms") and v is not None and np.isfinite(v):
            out[f"{RUN_METRIC_PREFIX}latency.{k}"] = float(v)
    return out


def _log_to_run(ws: Workspace, run: str | Run, result: EvaluationResult, info: DatasetVersionInfo,
                result_sha: str, html: bytes, *, name: str) -> str:
    """Record the evaluation on a tracking run; return the id of the run that holds it."""
    try:
        from loopml.track import Run, Tracker
    except ImportError as e:  # pragma: no cover - track ships with loopml
        raise InvalidInput("run_id needs experiment tracking (loopml.track), which is not installed") from e

    def record(r: Run) -> None:
        r.log_metrics(run_metrics(result))
        tags = {"loopml.evaluation": result_sha, "loopml.evaluation.dataset": info.ref,
                "loopml.evaluation.task": result.task}
        if result.source.get("model"):
            tags.update({"loopml.evaluation.model": result.source["model"],
                         "loopml.evaluation.model_sha256": result.source["model_sha256"]})
        r.set_tags(tags)
        r.log_bytes("evaluation/result.json", result.to_json().encode())
        r.log_bytes("evaluation/report.html", html)
        r.log_dataset(info, role="evaluation")
        ws.lineage.add(EntityRef("run", r.id), EntityRef(EVALUATION_KIND, result_sha), EVALUATED_BY)

    if isinstance(run, Run):
        record(run)
        return str(run.id)
    # TODO(track): a finished run takes no more logging, and the tracker has no way to reopen one
    # yet; until it does (e.g. a Tracker.resume_run), the evaluation goes on a nested run.
    tracker = Tracker(ws, flush_interval=0)
    try:
        try:
            parent = tracker.get_run(run)
        except NotFound as e:
            raise NotFound(f"no tracking run {run!r}; see `loopml runs list`") from e
        with tracker.start_run(parent_run_id=parent.id, name=name[:200]) as child:
            record(child)
        return str(child.id)
    finally:
        tracker.close()


def evaluations(ws: Workspace, ref: str | DatasetVersionInfo) -> list[tuple[str, str | None]]:
    """Stored evaluations of a dataset version, oldest first: ``(result sha256, report sha256)`` pairs."""
    info = ref if isinstance(ref, DatasetVersionInfo) else Catalog(ws).get(ref)
    return stored_results(ws.lineage, info.entity, EVALUATED_BY, EVALUATION_KIND, REPORT_KIND)


def load_evaluation(ws: Workspace, sha256: str) -> EvaluationResult:
    """Read a stored evaluation back (hash-verified) by its artifact sha256."""
    try:
        return EvaluationResult.from_json(ws.artifacts.get_bytes(sha256))
    except NotFound as e:
        raise NotFound(f"no stored evaluation {sha256}; see `loopml data show NAME` for its evaluations") from e
