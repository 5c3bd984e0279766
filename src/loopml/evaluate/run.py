"""``evaluate_dataset()``: evaluate predictions stored in a dataset version, store the result with lineage.

The thin I/O edge around :func:`loopml.evaluate.evaluate_predictions` and
:func:`loopml.evaluate.render_report`: it reads the target, prediction and
score columns of a version, stores the JSON result and the HTML report as
content-addressed artifacts, records ``dataset_version --evaluated_by-->
evaluation:<sha>`` and ``evaluation:<sha> --rendered_as-->
evaluation_report:<sha>`` in the lineage and emits an ``evaluation.created``
event, all in one transaction; with a tracking run it logs the metrics there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from loopml._report import write_atomic
from loopml.data.catalog import Catalog, DatasetVersionInfo
from loopml.errors import InvalidInput, NotFound
from loopml.evaluate.business import BusinessCosts
from loopml.evaluate.custom import MetricRegistry
from loopml.evaluate.report import render_report
from loopml.evaluate.result import EvaluationResult, StoredEvaluation, Task, evaluate_predictions
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.track import Run
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

EVALUATION_CREATED = "evaluation.created"
EVALUATION_KIND = "evaluation"
REPORT_KIND = "evaluation_report"
EVALUATED_BY = "evaluated_by"
RENDERED_AS = "rendered_as"
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
    if out is not None and Path(out).expanduser().is_dir():
        raise InvalidInput(f"--out {str(out)!r} is a folder; give a file name such as report.html")
    c = BusinessCosts.coerce(costs)
    cat = Catalog(ws)
    info = ref if isinstance(ref, DatasetVersionInfo) else cat.get(ref)
    scores = [score] if isinstance(score, str) else list(score or [])
    if prediction is None and not scores:
        raise InvalidInput("give the prediction column (--prediction) or the score column(s) (--score)")
    _column(info, "target", target)
    _column(info, "prediction", prediction)
    for col in scores:
        _column(info, "score", col)
    _column(info, "group", group)
    baseline_col = c.baseline if c is not None and not c.baseline_is_rule else None
    if baseline_col is not None and baseline_col not in info.columns:
        raise InvalidInput(
            f"the costs' baseline {baseline_col!r} is neither always-negative, always-positive nor a column "
            f"of {info.ref}; its columns are {info.columns}"
        )
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
    if info.row_count == 0:
        raise InvalidInput(f"{info.ref} has no rows; nothing to evaluate")

    step("reading " + info.ref)
    columns = list(dict.fromkeys([*used, *feats]))
    df = cat.read_arrow(info, columns=columns).to_pandas()
    complete = df.notna().all(axis=1)
    dropped = int((~complete).sum())
    if dropped:
        df = df[complete]
    if df.empty:
        raise InvalidInput(f"every row of {info.ref} misses one of {columns}; nothing to evaluate")

    step("computing metrics")
    y_score: Any = None
    if scores:
        y_score = df[scores[0]].to_numpy() if len(scores) == 1 else df[scores].to_numpy(dtype=float)
    result = evaluate_predictions(
        df[target].to_numpy() if target is not None else None,
        df[prediction].to_numpy() if prediction is not None else None,
        y_score,
        task=task, labels=labels, pos_label=pos_label, threshold=threshold, threshold_by=threshold_by,
        costs=c, baseline_pred=df[baseline_col].to_numpy() if baseline_col is not None else None,
        latency=latency, X=df[feats].to_numpy(dtype=float) if feats else None, k=k,
        group=df[group].to_numpy() if group is not None else None, seasonality=seasonality,
        registry=registry, seed=seed,
    )
    if dropped:
        result = replace(result, warnings=[
            f"left out {dropped} of {info.row_count} rows with a missing value in {columns}", *result.warnings])
    run_ref = _run_id_of(run_id)
    result = result.with_source(
        dataset=info.ref, dataset_id=info.id, content_hash=info.content_hash, target=target,
        prediction=prediction, score=scores or None, group=group, features=feats or None,
        rows_left_out=dropped, **({"run_id": run_ref} if run_ref else {}),
    )

    step("writing the report")
    html = render_report(result, title=f"Evaluation: {info.ref}").encode()
    result_ref = ws.artifacts.put_bytes(result.to_json().encode())
    html_ref = ws.artifacts.put_bytes(html)
    entity = EntityRef(EVALUATION_KIND, result_ref.sha256)
    with ws.meta.session(write=True) as s:
        ws.lineage.add(info.entity, entity, EVALUATED_BY, session=s)
        ws.lineage.add(entity, EntityRef(REPORT_KIND, html_ref.sha256), RENDERED_AS, session=s)
        ws.events.emit(EVALUATION_CREATED, entity, {
            "dataset": info.ref, "dataset_version_id": info.id, "task": result.task,
            "metrics": {k_: (v if v is None or np.isfinite(v) else None) for k_, v in result.headline.items()},
            "report_sha256": html_ref.sha256, "run_id": run_ref,
        }, session=s)
    logged_to = None
    if run_id is not None:
        step("logging to the run")
        logged_to = _log_to_run(ws, run_id, result, info, result_ref.sha256, html)
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
    """The metrics logged on a tracking run: ``eval.<metric>`` and ``eval.business.<figure>``.

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
    return out


def _log_to_run(ws: Workspace, run: str | Run, result: EvaluationResult, info: DatasetVersionInfo,
                result_sha: str, html: bytes) -> str:
    """Record the evaluation on a tracking run; return the id of the run that holds it."""
    try:
        from loopml.track import Run, Tracker
    except ImportError as e:  # pragma: no cover - track ships with loopml
        raise InvalidInput("run_id needs experiment tracking (loopml.track), which is not installed") from e

    def record(r: Run) -> None:
        r.log_metrics(run_metrics(result))
        r.set_tags({"loopml.evaluation": result_sha, "loopml.evaluation.dataset": info.ref,
                    "loopml.evaluation.task": result.task})
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
        with tracker.start_run(parent_run_id=parent.id, name=f"evaluate {info.ref}") as child:
            record(child)
        return str(child.id)
    finally:
        tracker.close()


def evaluations(ws: Workspace, ref: str | DatasetVersionInfo) -> list[tuple[str, str | None]]:
    """Stored evaluations of a dataset version, oldest first: ``(result sha256, report sha256)`` pairs."""
    info = ref if isinstance(ref, DatasetVersionInfo) else Catalog(ws).get(ref)
    out: list[tuple[str, str | None]] = []
    for result in ws.lineage.targets(info.entity, EVALUATED_BY, EVALUATION_KIND):
        html = ws.lineage.targets(result, RENDERED_AS, REPORT_KIND)
        out.append((result.id, html[-1].id if html else None))
    return out


def load_evaluation(ws: Workspace, sha256: str) -> EvaluationResult:
    """Read a stored evaluation back (hash-verified) by its artifact sha256."""
    try:
        return EvaluationResult.from_json(ws.artifacts.get_bytes(sha256))
    except NotFound as e:
        raise NotFound(f"no stored evaluation {sha256}; see `loopml data show NAME` for its evaluations") from e
