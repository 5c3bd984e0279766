"""The training job: ``python -m loopml.train._job --events FD [--control FD] [--preload MODULE ...]``.

The caller (:class:`loopml.train.Estimator`) starts this process, which
imports the algorithm's library while the caller prepares, then reads one
JSON spec line on stdin, trains, writes a model package into the spec's
``output_dir`` and exits (with ``--loop``: reads the next spec). Logs go to
stdout/stderr (the caller streams them); structured events go as JSON lines
to the file descriptor ``FD``:

- ``{"event": "started"}``: the job read its spec (its libraries are imported)
- ``{"event": "metrics", "points": [[3, {"validation:auc": 0.91}], ...]}``: per-iteration
  metrics, in batches at most every 25 ms (:class:`MetricBatches`; a
  single ``{"event": "metric", "step": 3, "metrics": {...}}`` is understood too)
- ``{"event": "result", "metrics": {...}, "package_sha256": ..., ...}``
- ``{"event": "error", "type": "InvalidInput", "message": ...}``
- ``{"event": "stopped", "step": 12}``: the caller asked the job to stop

Stop requests come on the ``--control`` pipe: the number of the job (1 for
the process's first spec, 2 for its second, ...) on a line. The job checks
the pipe after each training iteration and stops there, so the process stays
alive for the next job (a tuner prunes a trial without losing its warm
process).

With ``"cv": {"folds": k, "refit": bool}`` in the spec, the job
cross-validates: k models train one after another on k splits of the
training data (stratified for classification), and their iterations are
reported on one step scale (:class:`FoldReports`: fold 2's first iteration
follows fold 1's last; the value is the mean over the folds so far), so a
tuner prunes per iteration and can stop a trial in its first fold. The final
``validation:*`` metrics are the means over the folds; with ``refit`` a model
is then trained on all the rows and packaged.

The job never touches the metadata database: the caller resolved dataset
versions to artifact hashes and owns the run. :func:`run_job` is the whole
job as a function, callable in-process for debugging.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, LoopmlError
from loopml.train._worker import JOB_END

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from loopml.prep import FittedRecipe, Recipe
    from loopml.train.algorithms._base import Algorithm, MetricCallback

log = logging.getLogger("loopml.train.job")

Emit = Callable[[dict[str, Any]], None]
#: returns True once the caller asked the running job to stop
StopCheck = Callable[[], bool]

#: problem types a job can cross-validate, and how it splits the rows
CV_SPLITS = {"binary": "stratified", "multiclass": "stratified", "regression": "shuffled",
             "ranking": "by group"}


class TrainingStopped(BaseException):  # a request, like KeyboardInterrupt, not an error
    """Raised at a training iteration when the caller asked the job to stop.

    A BaseException, so an algorithm's own ``except Exception`` cannot swallow it.
    """

    def __init__(self, step: int) -> None:
        super().__init__(f"stopped at iteration {step}")
        self.step = step


def _describe(source: Mapping[str, Any]) -> str:
    return str(source.get("ref") or source.get("description") or source.get("kind"))


def check_cv(cv: Any) -> dict[str, Any] | None:
    """The job spec's ``cv`` part from ``folds`` (an int >= 2) or a mapping; None for no CV."""
    if cv is None or cv is False:
        return None
    if isinstance(cv, Mapping):
        folds, refit = cv.get("folds"), bool(cv.get("refit", True))
    else:
        folds, refit = cv, True
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InvalidInput(f"cross-validation folds must be an integer >= 2, got {folds!r}")
    return {"folds": folds, "refit": refit}


def cv_splits(
    problem_type: str, y: np.ndarray | None, n_rows: int, folds: int, seed: int, groups: np.ndarray | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row positions ``(train, validation)`` of each fold.

    Stratified by class for classification (shuffled with ``seed``, as
    ``StratifiedKFold(folds, shuffle=True, random_state=seed)``), shuffled for
    regression, and by group for ranking (a group's rows stay together).
    """
    import numpy as np
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    how = CV_SPLITS.get(problem_type)
    if how is None:
        raise InvalidInput(f"cross-validation is for {', '.join(CV_SPLITS)} problems, not {problem_type}; "
                           "give validation data instead")
    if n_rows < folds:
        raise InvalidInput(f"{folds}-fold cross-validation needs at least {folds} rows; the training data has {n_rows}")
    X = np.zeros((n_rows, 1))
    if how == "stratified":
        assert y is not None
        _, counts = np.unique(y, return_counts=True)
        if counts.min() < folds:
            raise InvalidInput(f"{folds}-fold cross-validation needs at least {folds} rows of every class; the "
                               f"smallest class has {int(counts.min())}; use fewer folds or more data")
        split = StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y)
    elif how == "by group":
        assert groups is not None
        if len(np.unique(groups)) < folds:
            raise InvalidInput(f"{folds}-fold cross-validation by group needs at least {folds} groups")
        split = GroupKFold(folds).split(X, y, groups)
    else:
        split = KFold(folds, shuffle=True, random_state=seed).split(X)
    return [(np.asarray(tr), np.asarray(va)) for tr, va in split]


class FoldReports:
    """Per-iteration reports of folds trained one after another, on one step scale.

    Fold *k*'s iteration *r* is reported as step ``offset_k + r``, where
    ``offset_k`` is the number of iterations the folds before it ran (with
    every fold running the same iterations: ``(k - 1) * rounds + r``), and its
    value is the mean, over folds 1..k, of each fold's metrics at iteration
    *r* (a fold that stopped earlier counts with its last values). So the
    steps of different trials line up, the value at a step means the same for
    every trial, and a pruner can stop a trial during its first fold, saving
    the folds after it; at the last fold's last iteration the value is the
    mean over all folds.

    Examples
    --------
    >>> seen = []
    >>> rep = FoldReports(lambda step, m: seen.append((step, m["validation:auc"])))
    >>> for fold, aucs in enumerate([(0.6, 0.7), (0.8, 0.9)]):
    ...     for r, auc in enumerate(aucs, 1):
    ...         rep.callback(fold)(r, {"validation:auc": auc})
    >>> [(s, round(v, 3)) for s, v in seen]
    [(1, 0.6), (2, 0.7), (3, 0.7), (4, 0.8)]
    """

    def __init__(self, report: MetricCallback) -> None:
        self.report = report
        self._curves: list[dict[int, dict[str, float]]] = []
        self._offsets: list[int] = []

    def callback(self, fold: int) -> MetricCallback:
        """The metric callback of fold ``fold`` (from 0; folds in order)."""
        while len(self._curves) <= fold:
            self._offsets.append(sum(max(c, default=0) for c in self._curves))
            self._curves.append({})
        offset = self._offsets[fold]
        curves = self._curves[: fold + 1]

        def on_metric(step: int, metrics: Mapping[str, float]) -> None:
            step = int(step)
            curves[fold][step] = {k: float(v) for k, v in metrics.items()}
            rows = [c[step] if step in c else c[max(c)] for c in curves if c]
            self.report(offset + step, _mean(rows))

        return on_metric


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    out: dict[str, float] = {}
    for k in keys:
        vals = [float(r[k]) for r in rows if k in r and r[k] is not None and math.isfinite(float(r[k]))]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


class PreparedData:
    """The prepared data of a job, kept by a job process for its next job on the same data.

    A tuning job's trials train one after another in one warm process on the
    same rows with the same recipe: only the hyperparameters change. The
    recipe's output (per fold, with cross-validation) is kept, keyed by what
    determines it, and handed out as shallow copies. One key at a time.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self.items: dict[Any, Any] = {}
        #: the inputs as read, by content (an Arrow file's sha256, a catalog version's parts)
        self.frames: dict[str, pd.DataFrame] = {}

    def read(self, sources: Sequence[Mapping[str, Any] | None], artifact_root: str | None,
             ) -> list[pd.DataFrame | None]:
        """Read the job's inputs, reusing the frames of the previous job where the content is the same.

        Handed out as shallow copies (the job adds and drops columns, never edits values in place).
        """
        from loopml.train._prepare import read_source

        out: list[pd.DataFrame | None] = []
        keep: dict[str, pd.DataFrame] = {}
        for src in sources:
            if src is None:
                out.append(None)
                continue
            key = _content_key(src)
            df = self.frames.get(key) if key is not None else None
            if df is None:
                df = read_source(src, artifact_root)
            if key is not None:
                keep[key] = df
            out.append(df.copy(deep=False))
        self.frames = keep
        return out

    def use(self, key: str | None) -> None:
        """Start a job whose data have ``key`` (None: not reusable); drop what another key kept."""
        if key != self.key:
            self.key, self.items = key, {}


def _content_key(src: Mapping[str, Any]) -> str | None:
    """What identifies an input's content (a catalog version's parts, an Arrow file's sha256), or None."""
    if src.get("kind") == "catalog" and src.get("parts") is not None:
        return "catalog:" + ",".join(src["parts"])
    if src.get("kind") == "file" and src.get("sha256"):
        return "file:" + str(src["sha256"])
    return None


def _prepared_key(spec: Mapping[str, Any], cls: type[Any], problem_type: str) -> str | None:
    """What the prepared data depend on (not the hyperparameters); None when the inputs' content is unknown."""
    import hashlib

    train, validation = spec.get("train"), spec.get("validation")
    parts = [_content_key(train) if train else None, _content_key(validation) if validation else None]
    if (train and parts[0] is None) or (validation and parts[1] is None):
        return None  # an input without a content hash: do not reuse
    rspec = spec.get("recipe")
    recipe: Any = rspec
    if isinstance(rspec, Mapping) and rspec.get("kind") == "fitted":
        recipe = hashlib.sha256(Path(rspec["path"]).read_bytes()).hexdigest()
    elif isinstance(rspec, Mapping):
        recipe = rspec.get("spec")
    return json.dumps([parts, spec.get("target"), spec.get("roles"), problem_type, spec.get("algorithm_class"),
                       getattr(cls, "categorical_encoding", None), recipe, spec.get("cv"), spec.get("seed")],
                      sort_keys=True, default=str)


def run_job(spec: Mapping[str, Any], emit: Emit, should_stop: StopCheck | None = None,
            prepared: PreparedData | None = None) -> dict[str, Any]:
    """Train as ``spec`` says; report metrics through ``emit``; return the result.

    Parameters
    ----------
    spec
        The job spec written by the Estimator (algorithm, hyperparameters,
        target, roles, data sources, recipe, output folder, ``cv``).
    emit
        Receives ``{"event": "metric", ...}`` dicts during training.
    should_stop
        Checked after each training iteration; when it returns True the job
        raises :class:`TrainingStopped`.
    prepared
        Where the job process keeps prepared data between jobs (reused when
        the next job has the same data, recipe and folds).

    Returns
    -------
    dict
        ``metrics``, ``package_sha256`` (None for cross-validation without
        refit), ``problem_type``, ``classes``, row counts, ``folds`` (per-fold
        metrics of cross-validation) and timings.
    """
    import numpy as np

    from loopml.train._metrics import prefixed
    from loopml.train._prepare import (
        default_recipe,
        encode_target,
        encode_with,
        infer_problem_type,
        input_schema,
        output_schema,
        read_source,
    )
    from loopml.train.algorithms import resolve_algorithm
    from loopml.train.algorithms._base import CLASSIFICATION, SUPERVISED, TabularAlgorithm
    from loopml.train.package import Signature, save_model_package

    started = time.monotonic()
    cls = resolve_algorithm(spec["algorithm"], spec.get("algorithm_class"))
    params = cls.check_hyperparameters(spec.get("hyperparameters"))
    target: str | None = spec.get("target")
    roles: dict[str, str] = dict(spec.get("roles") or {})
    seed = int(spec.get("seed") or 0)
    root = spec.get("artifact_root")
    cv = check_cv(spec.get("cv"))
    if cv is not None and spec.get("validation"):
        raise InvalidInput("cross-validation holds out parts of the training data itself; give no validation data")

    t0 = time.monotonic()
    if prepared is not None:  # a warm process: the previous job's frames if the content is the same
        train_read, val_df = prepared.read([spec["train"], spec.get("validation")], root)
        assert train_read is not None
        train_df = train_read
    else:
        train_df = read_source(spec["train"], root)
        val_df = read_source(spec["validation"], root) if spec.get("validation") else None
    timings = {"read_s": time.monotonic() - t0}
    log.info("train data %s: %d rows x %d columns", _describe(spec["train"]), len(train_df), train_df.shape[1])
    if val_df is not None:
        log.info("validation data %s: %d rows", _describe(spec["validation"]), len(val_df))

    for what, df in (("training", train_df), ("validation", val_df)):
        if df is None:
            continue
        needed = [c for c in [target, *roles.values()] if c]
        for col in needed:
            if col not in df.columns:
                label = "target" if col == target else "role"
                raise InvalidInput(
                    f"the {what} data has no {label} column {col!r}; columns: {', '.join(map(str, df.columns))}"
                )

    y_raw = train_df[target] if target else None
    problem_type, reason = infer_problem_type(cls, y_raw, spec.get("problem_type"), roles)
    log.info("algorithm %s, problem type %s (%s)", cls.name, problem_type, reason)
    for role in cls.required_roles.get(problem_type, ()):
        if role not in roles:
            raise InvalidInput(
                f"{cls.name} {problem_type} needs a {role!r} column: pass roles={{'{role}': COLUMN}} "
                f"(--role {role}=COLUMN)"
            )
    supervised = problem_type in SUPERVISED
    if supervised and target is None:
        raise InvalidInput(f"{cls.name} {problem_type} needs a target column; pass target=COLUMN (--target)")

    # rows without a target teach nothing
    if target is not None and supervised:
        for name, df in (("training", train_df), ("validation", val_df)):
            if df is None:
                continue
            missing = int(df[target].isna().sum())
            if missing:
                log.info("dropping %d %s rows with a missing target", missing, name)
        train_df = train_df[train_df[target].notna()]
        if val_df is not None:
            val_df = val_df[val_df[target].notna()]
        if not len(train_df):
            raise InvalidInput(f"the training data has no rows with a value in the target {target!r}")

    classes: list[Any] | None = None
    codes = codes_val = None
    if target is not None:
        codes, classes = encode_target(train_df[target], problem_type, target)
        if val_df is not None:
            if classes is not None:
                codes_val = encode_with(val_df[target], classes, target, "validation")
            else:
                codes_val, _ = encode_target(val_df[target], problem_type, target, "validation")
        if classes is not None:
            log.info("%d classes: %s", len(classes), ", ".join(map(repr, classes[:10])))

    # the recipe: fitted here, given fitted, or the default encoding of text/date columns
    from loopml.prep import FittedRecipe, Recipe

    rspec = spec.get("recipe")
    recipe_doc: dict[str, Any] = {}
    given: FittedRecipe | None = None
    recipe: Recipe | None = None
    exclude = [c for c in [target, *roles.values()] if c]
    if rspec is None:
        recipe = default_recipe(train_df, exclude, cls.categorical_encoding)
        if recipe is not None:
            recipe_doc = {"auto": True}
            log.info("no recipe given: encoding %s", "; ".join(
                f"{s.kind} {', '.join(getattr(s, 'columns', []))}" for s in recipe.steps))
    elif rspec["kind"] == "spec":
        recipe = Recipe.from_dict(rspec["spec"])
        recipe_doc = {"fitted_in_job": True, **({"source": rspec["source"]} if rspec.get("source") else {})}
    else:
        given = FittedRecipe.from_bytes(Path(rspec["path"]).read_bytes())
        recipe_doc = {k: rspec[k] for k in ("ref", "id") if rspec.get(k)}

    cache = prepared if prepared is not None else PreparedData()
    cache.use(_prepared_key(spec, cls, problem_type) if prepared is not None else None)

    def prepare(part: Any, tr_df: pd.DataFrame, tr_codes: Any, va_df: pd.DataFrame | None, va_codes: Any,
                quiet: bool = False) -> tuple[FittedRecipe | None, Any, Any, Any, Any]:
        """The recipe's output for a part of the data (kept for the next job on the same data)."""
        out = cache.items.get(part) if cache.key is not None else None
        if out is None:
            out = fit_recipe(tr_df, tr_codes, va_df, va_codes, quiet)
            if cache.key is not None:
                cache.items[part] = out
        elif not quiet:
            log.info("reusing the recipe fitted by the previous job on the same data and recipe")
        fitted, X, y, X_val, y_val = out
        return (fitted, X.copy(deep=False), None if y is None else y.copy(),
                None if X_val is None else X_val.copy(deep=False), None if y_val is None else y_val.copy())

    def scratch(part: Any) -> dict[str, Any] | None:
        """Where a model may keep what it derives from this part's prepared data, for the next job."""
        return cache.items.setdefault(("scratch", part), {}) if cache.key is not None else None

    def fit_recipe(tr_df: pd.DataFrame, tr_codes: Any, va_df: pd.DataFrame | None, va_codes: Any, quiet: bool,
                   ) -> tuple[FittedRecipe | None, Any, Any, Any, Any]:
        """Fit (or apply) the recipe; the feature frames and encoded targets of training and validation."""
        fitted = given
        if recipe is not None:
            fitted, Xt = recipe.fit_transform(tr_df, target=target if supervised else None)
            if not quiet:
                log.info("fitted the recipe (%d steps) on %d rows -> %d columns", len(fitted.steps), len(tr_df),
                         Xt.shape[1])
        elif fitted is not None:
            Xt = fitted.transform(tr_df)
            if not quiet:
                log.info("applied recipe %s -> %d columns", recipe_doc.get("ref", ""), Xt.shape[1])
        else:
            Xt = tr_df
        Xv = fitted.transform(va_df) if (fitted is not None and va_df is not None) else va_df
        X, y = _split(Xt, tr_df, tr_codes, target)
        X_val, y_val = _split(Xv, va_df, va_codes, target)
        if problem_type in CLASSIFICATION and y is not None and len(np.unique(y)) < 2:
            raise InvalidInput(f"after the recipe the target {target!r} has one class left in the training data")
        return fitted, X, y, X_val, y_val

    last_log = [0.0]

    def on_metric(step: int, metrics: Mapping[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items()}
        emit({"event": "metric", "step": int(step), "metrics": clean})
        now = time.monotonic()
        if step == 1 or now - last_log[0] >= 1.0:
            last_log[0] = now
            log.info("[%d] %s", step, "  ".join(f"{k}={v:.6g}" for k, v in clean.items()))
        if should_stop is not None and should_stop():
            raise TrainingStopped(step)

    listened = spec.get("iteration_metrics")

    def new_model() -> Any:
        model = cls(params, problem_type=problem_type, seed=seed, roles=roles,
                    n_classes=len(classes) if classes is not None else None)
        if listened is not None:
            model.listened = frozenset(str(m).split(":", 1)[-1] for m in listened)
        return model

    cv_metrics: dict[str, float] = {}
    folds_out: list[dict[str, float]] = []
    if cv is not None:
        t0 = time.monotonic()
        groups = train_df[roles["group"]].to_numpy() if problem_type == "ranking" and "group" in roles else None
        splits = cache.items.get("splits")
        if splits is None:
            splits = cv_splits(problem_type, codes, len(train_df), cv["folds"], seed, groups)
            if cache.key is not None:
                cache.items["splits"] = splits
        log.info("%d-fold cross-validation (%s) of %s on %d rows", cv["folds"], CV_SPLITS[problem_type], cls.name,
                 len(train_df))

        reports = FoldReports(on_metric)
        for i, (tr, va) in enumerate(splits):
            _, X, y, X_val, y_val = prepare(("fold", i), train_df.iloc[tr], codes[tr] if codes is not None else None,
                                            train_df.iloc[va], codes[va] if codes is not None else None, quiet=True)
            model = new_model()
            model.scratch = scratch(("fold", i))
            model.fit(X, y, X_val, y_val, callback=reports.callback(i))
            folds_out.append(prefixed("validation", model.score(X_val, y_val)))
            log.info("fold %d: %s", i + 1, "  ".join(f"{k}={v:.6g}" for k, v in sorted(folds_out[-1].items())))
        cv_metrics = _mean(folds_out)
        timings["cv_s"] = time.monotonic() - t0
        log.info("cross-validated in %.2f s: %s", timings["cv_s"],
                 "  ".join(f"{k}={v:.6g}" for k, v in sorted(cv_metrics.items())))
        if not cv["refit"]:
            timings["job_s"] = time.monotonic() - started
            return {
                "metrics": cv_metrics, "package_sha256": None, "problem_type": problem_type, "classes": classes,
                "train_rows": len(train_df), "validation_rows": 0, "folds": folds_out, "timings": timings,
            }

    t0 = time.monotonic()
    fitted, X, y, X_val, y_val = prepare("all", train_df, codes, val_df, codes_val)
    timings["recipe_s"] = time.monotonic() - t0

    algo = new_model()
    algo.scratch = scratch("all")
    log.info("training %s on %d rows x %d features", cls.name, len(X), X.shape[1] - len(
        [c for c in roles.values() if c in X.columns]))
    t0 = time.monotonic()
    algo.fit(X, y, X_val, y_val, callback=on_metric)
    timings["fit_s"] = time.monotonic() - t0
    log.info("trained in %.2f s", timings["fit_s"])

    t0 = time.monotonic()
    metrics = prefixed("train", algo.score(X, y))
    if X_val is not None:
        metrics.update(prefixed("validation", algo.score(X_val, y_val)))
    metrics.update(cv_metrics)
    timings["score_s"] = time.monotonic() - t0
    for k, v in sorted(metrics.items()):
        log.info("%s = %.6g", k, v)

    # the signature: what callers send (before the recipe) and what they get back
    drop = {target, *(c for r, c in roles.items() if r not in cls.predict_roles)}
    inputs = [str(c) for c in train_df.columns if c not in drop]
    label_type = None
    if classes is not None and target is not None:
        import pyarrow as pa

        label_type = str(pa.Schema.from_pandas(train_df[[target]], preserve_index=False).field(0).type)
    signature = Signature(
        inputs=input_schema(train_df, inputs, cls.handles_missing),
        outputs=output_schema(problem_type, classes, label_type),
        features=list(algo.features_) if isinstance(algo, TabularAlgorithm) else [],
        classes=classes,
    )
    data_doc: dict[str, Any] = {"train": spec["train"].get("ref") or _describe(spec["train"]), "train_rows": len(X)}
    if spec.get("validation"):
        data_doc.update(validation=spec["validation"].get("ref") or _describe(spec["validation"]),
                        validation_rows=len(X_val))
    if cv is not None:
        data_doc["cross_validation"] = {"folds": cv["folds"], "split": CV_SPLITS[problem_type], "seed": seed}
    t0 = time.monotonic()
    sha = save_model_package(
        spec["output_dir"], algo, signature=signature, target=target, recipe=fitted,
        recipe_ref=recipe_doc, metrics=metrics,
        extra={"run_id": spec.get("run_id"), "training": data_doc,
               "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
    timings["save_s"] = time.monotonic() - t0
    timings["job_s"] = time.monotonic() - started
    log.info("wrote model package %s", sha[:12])
    return {
        "metrics": metrics, "package_sha256": sha, "problem_type": problem_type, "classes": classes,
        "train_rows": len(X), "validation_rows": len(X_val) if X_val is not None else 0,
        "features": signature.features, "recipe": recipe_doc if fitted is not None else None,
        "folds": folds_out, "timings": timings,
    }


def _split(X: Any, source: Any, y_codes: Any, target: str | None) -> tuple[Any, Any]:
    """Features without the target, and the encoded target matched to the rows the recipe kept."""
    if X is None:
        return None, None
    y_out = None
    if y_codes is not None:
        import pandas as pd

        y_out = pd.Series(y_codes, index=source.index).loc[X.index].to_numpy()
    if target is not None and target in X.columns:
        X = X.drop(columns=[target])
    return X, y_out


def _emitter(fd: int) -> Emit:
    def emit(event: dict[str, Any]) -> None:
        data = (json.dumps(event, default=str, allow_nan=True) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    return emit


class _Control:
    """Stop requests from the caller: job numbers, one per line, read without blocking."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self.buf = b""
        self.asked = 0

    def asked_up_to(self) -> int:
        """The highest job number the caller asked to stop."""
        while True:
            try:
                chunk = os.read(self.fd, 4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                return self.asked
            if not chunk:
                break
            self.buf += chunk
        if b"\n" in self.buf:
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                if line.strip().isdigit():
                    self.asked = max(self.asked, int(line))
        return self.asked


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("loopml", "loopml.train.job"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)




class MetricBatches:
    """Per-iteration metric events, sent in batches at most every :attr:`INTERVAL_S` seconds.

    A boosting job reports every round (thousands a second on small data).
    One event per round wakes the caller's threads each time, and on a
    machine with as many cores as training threads every wake-up preempts an
    OpenMP thread that its team then waits for. Batches
    (``{"event": "metrics", "points": [[step, {...}], ...]}``) keep every
    point; any other event sends the pending batch first, so the caller sees
    the points in order and before the job's result.
    """

    INTERVAL_S = 0.025

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._points: list[list[Any]] = []
        self._sent = 0.0

    def emit(self, event: dict[str, Any]) -> None:
        """Send ``event``: metric events join the batch, others flush it and go at once."""
        if event.get("event") == "metric":
            self._points.append([event["step"], event["metrics"]])
            now = time.monotonic()
            if now - self._sent >= self.INTERVAL_S:
                self._sent = now
                self.flush()
            return
        self.flush()
        self._emit(event)

    def flush(self) -> None:
        """Send the pending points, if any."""
        if self._points:
            points, self._points = self._points, []
            self._emit({"event": "metrics", "points": points})


def _run_one(line: str, raw_emit: Emit, should_stop: StopCheck | None = None,
             prepared: PreparedData | None = None) -> int:
    """Run the job of one spec line; report its result or error as an event; return the exit code."""
    emit = MetricBatches(raw_emit).emit
    try:
        spec = json.loads(line)
        emit({"event": "started"})  # the caller's timeout counts from here, not from the interpreter's start
        result = run_job(spec, emit, should_stop, prepared)
        sys.stdout.flush()
        emit({"event": "result", **result})
        return 0
    except TrainingStopped as e:
        log.info("stopped at iteration %d: the caller asked", e.step)
        sys.stdout.flush()
        emit({"event": "stopped", "step": e.step})
        return 0
    except LoopmlError as e:
        log.error("error: %s", e)
        emit({"event": "error", "type": type(e).__name__, "message": str(e)})
        return 2
    except MemoryError:
        traceback.print_exc()
        emit({"event": "error", "type": "TrainingError", "exception": "MemoryError",
              "message": "the training job ran out of memory (MemoryError); use fewer rows or a smaller model"})
        return 1
    except Exception as e:
        traceback.print_exc()
        message = " ".join(str(e).split()) or type(e).__name__
        emit({"event": "error", "type": "TrainingError", "exception": type(e).__name__,
              "message": f"{type(e).__name__}: {message}"})
        return 1
    finally:
        sys.stderr.flush()
        print(JOB_END, flush=True)


# -- start-up -------------------------------------------------------------------------------------------
#: a preload entry with this prefix is imported by :func:`import_without_sklearn`
WITHOUT_SKLEARN = "without-sklearn:"


def preload_modules(cls: type[Algorithm], *, cv: bool = False) -> list[str]:
    """The modules a job process for ``cls`` imports while its caller prepares, in order.

    With ``cv``, also scikit-learn's fold splitters (about a second, so only when they are needed).
    """
    return list(dict.fromkeys([
        *(WITHOUT_SKLEARN + m for m in cls.imports_without_sklearn), cls.__module__, *cls.imports,
        "loopml.prep.recipe", "loopml.train._prepare", "loopml.store.artifacts", "pyarrow.parquet",
        "loopml.train.package", *(["sklearn.model_selection"] if cv else []),
    ]))


class _HideSklearn:
    """A meta-path finder under which scikit-learn looks uninstalled."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden while importing a library)", name=name)


def import_without_sklearn(module: str) -> None:
    """Import ``module`` (XGBoost, LightGBM) as if scikit-learn were not installed.

    Both libraries import scikit-learn, and through it scipy.stats, only for
    their optional scikit-learn estimator classes (``XGBClassifier``,
    ``LGBMClassifier``); the built-in algorithms train through the native API.
    Importing them without it takes about 0.5 s instead of 1.2 s on the
    benchmark machine, most of a job process's start-up. Only a job process
    does this (it runs nothing but the algorithm it was started for); once
    the import is done scikit-learn imports normally again, for the
    cross-validation splits or a metric that needs it. A process that already
    loaded scikit-learn imports the module normally.
    """
    if "sklearn" in sys.modules or module in sys.modules:
        importlib.import_module(module)
        return
    finder = _HideSklearn()
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)


def _preload(modules: Sequence[str], algo: str | None) -> None:
    """Import what the job will need (errors are left for the spec's own imports to report)."""
    if algo is not None:
        try:
            from loopml.train.algorithms import get_algorithm

            modules = [*modules, *preload_modules(get_algorithm(algo))]
        except Exception as e:
            log.debug("preload of algorithm %s failed: %s", algo, e)
    for mod in modules:
        try:
            if mod.startswith(WITHOUT_SKLEARN):
                import_without_sklearn(mod.removeprefix(WITHOUT_SKLEARN))
            else:
                importlib.import_module(mod)
        except Exception as e:
            log.debug("preload %s failed: %s", mod, e)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m loopml.train._job")
    parser.add_argument("--events", type=int, required=True, help="file descriptor for JSON events")
    parser.add_argument("--control", type=int, help="file descriptor the caller writes stop requests to")
    parser.add_argument("--preload", action="append", default=[], help="module to import while waiting")
    parser.add_argument("--preload-algo", help="import what a job of this built-in algorithm needs while waiting")
    parser.add_argument("--loop", action="store_true", help="run one job per stdin line until stdin closes")
    args = parser.parse_args(argv)
    _setup_logging()
    emit = _emitter(args.events)
    control = _Control(args.control) if args.control is not None else None

    def stop_check(n: int) -> StopCheck | None:
        if control is None:
            return None
        return lambda: control.asked_up_to() >= n

    _preload(args.preload, args.preload_algo)  # overlaps the caller's preparation
    rc = 3  # the caller went away before sending a spec
    job = 0
    prepared = PreparedData() if args.loop else None
    while True:
        line = sys.stdin.readline()
        if not line.strip():
            return rc
        job += 1
        rc = _run_one(line, emit, stop_check(job), prepared)
        if not args.loop:
            return rc


if __name__ == "__main__":
    sys.exit(main())
