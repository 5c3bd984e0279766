"""The Estimator: run a training job in its own process and record it as a run.

:meth:`Estimator.fit` starts ``python -m loopml.train._job`` (so a crash,
``os._exit``, a segfault or running out of memory in the library cannot take
the caller down), streams its log lines to a callback and to logging while
keeping them as the run artifact ``logs/train.log``, records every
per-iteration validation metric as it arrives, kills the job's process group
on timeout, and records the run: params, metrics, dataset versions, recipe,
the model package (as run artifacts) and lineage.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml import errors as _errors
from loopml.errors import InvalidInput, LoopmlError
from loopml.train._worker import JOB_END, Worker, WorkerPool, take_prestarted
from loopml.train.algorithms import algorithm_path, get_algorithm
from loopml.train.algorithms._base import SUPERVISED, Algorithm, MetricCallback

if TYPE_CHECKING:
    from loopml.data.catalog import DatasetVersionInfo
    from loopml.prep import FittedRecipe, Recipe
    from loopml.track import Run, Tracker
    from loopml.train.package import Model
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)
job_log = logging.getLogger("loopml.train.job")

#: seconds between checks of the timeout while the job is quiet
_POLL_S = 0.25
#: seconds a job asked to stop (a callback raised) has to do so before it is killed
STOP_GRACE_S = 10.0
#: seconds a new job process may take to import its libraries, on top of the timeout
START_S = 60.0
_LOG_ARTIFACT = "logs/train.log"


class TrainingError(LoopmlError):
    """A training job failed: the library raised, the process died, or it timed out.

    Attributes
    ----------
    run_id
        The run, marked FAILED, that keeps the job's logs.
    """

    http_status = 500
    code = "TrainingError"

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass
class TrainingResult:
    """What a finished training job produced.

    Attributes
    ----------
    run_id
        The tracking run.
    metrics
        Final metrics (``train:auc``, ``validation:auc``, ...).
    model_sha256
        The model package id: the sha256 of its manifest, stored as the run
        artifact ``model/manifest.json`` (every file of the package is a
        ``model/...`` artifact).
    model_path
        The package folder in the workspace's model cache.
    problem_type
        The problem type the job trained for.
    artifacts
        Run artifact name -> sha256.
    duration_s
        Wall time of :meth:`Estimator.fit`.
    """

    run_id: str
    metrics: dict[str, float]
    model_sha256: str
    model_path: Path
    problem_type: str
    artifacts: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    ws: Workspace | None = field(default=None, repr=False, compare=False)
    _model: Model | None = field(default=None, repr=False, compare=False)

    @property
    def model(self) -> Model:
        """The trained model, loaded (and hash-verified) from its package."""
        if self._model is None:
            from loopml.train.package import load_model_package

            self._model = load_model_package(self.model_path, sha256=self.model_sha256)
        return self._model

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``loopml train --json``)."""
        return {
            "run_id": self.run_id, "metrics": self.metrics, "model_sha256": self.model_sha256,
            "model_path": str(self.model_path), "problem_type": self.problem_type,
            "artifacts": self.artifacts, "duration_s": round(self.duration_s, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass
class CrossValidationResult:
    """What a cross-validation job measured (:meth:`Estimator.cross_validate`; no model is kept).

    Attributes
    ----------
    run_id
        The tracking run: per-iteration ``validation:*`` metrics averaged over
        the folds, the final means, and ``validation:METRIC.fold`` (step = fold
        number) and ``validation:METRIC.std``.
    metrics
        Mean over the folds of each fold's final validation metrics (``validation:auc``, ...).
    folds
        Each fold's final validation metrics, in fold order.
    problem_type
        The problem type the job trained for.
    duration_s
        Wall time of :meth:`Estimator.cross_validate`.
    """

    run_id: str
    metrics: dict[str, float]
    folds: list[dict[str, float]]
    problem_type: str
    duration_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"run_id": self.run_id, "metrics": self.metrics, "folds": self.folds,
                "problem_type": self.problem_type, "duration_s": round(self.duration_s, 3),
                "timings": {k: round(v, 3) for k, v in self.timings.items()}}



class Estimator:
    """Train a built-in (or registered) algorithm as a tracked job in its own process.

    Parameters
    ----------
    algo
        Algorithm name (``loopml algorithms list``).
    hyperparameters
        Values for the algorithm's schema (validated now); the rest take defaults.
    target
        The target column (not needed by unsupervised algorithms).
    recipe
        Applied before the model and stored with it: a :class:`~loopml.prep.Recipe`
        (fitted on the training data inside the job), the path of a recipe
        YAML file, a :class:`~loopml.prep.FittedRecipe`, or ``"NAME[:VER]"`` of a
        fitted recipe in the workspace. Without one, text and date columns
        are encoded by a default recipe.
    experiment
        Tracking experiment of the run.
    timeout
        Seconds the job may run, from when its process has imported its
        libraries and starts on the job (the import itself gets at most
        another minute); then its process group is killed and the run FAILED.
    seed
        Random seed for the algorithm.
    problem_type
        ``binary``, ``multiclass``, ``regression``, ``ranking``, ...; inferred from the target if None.
    roles
        Role -> column, e.g. ``{"group": "query_id"}`` for ranking or
        ``{"time": "day", "series": "store"}`` for forecasting.
    ws
        The workspace (default: :meth:`loopml.Workspace.open`).
    tracker
        A tracker to record the run with (default: a new one on ``ws``).
    reuse_process
        Keep the job process alive between fits (and share it with clones):
        later fits skip its start-up. ``close()`` stops it.
    iteration_metrics
        The per-iteration metrics to compute and report, e.g.
        ``["validation:auc"]`` (default: every one the algorithm reports).
        XGBoost and LightGBM then evaluate only those each round, which
        saves time when nothing else is watched (a tuner watching its
        objective). Final metrics are not affected.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.train import Estimator
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> df = pd.DataFrame({"x": range(40), "y": [i % 2 for i in range(40)]})
    >>> result = Estimator("xgboost", {"num_round": 5}, target="y", ws=ws).fit(df)  # doctest: +SKIP
    >>> result.model.predict_one({"x": 3})["prediction"]  # doctest: +SKIP
    1
    """

    def __init__(
        self,
        algo: str,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        target: str | None = None,
        recipe: Recipe | FittedRecipe | str | os.PathLike[str] | None = None,
        experiment: str = "default",
        timeout: float | None = None,
        seed: int = 0,
        problem_type: str | None = None,
        roles: Mapping[str, str] | None = None,
        ws: Workspace | None = None,
        tracker: Tracker | None = None,
        reuse_process: bool = False,
        iteration_metrics: Sequence[str] | None = None,
    ) -> None:
        self.algorithm: type[Algorithm] = get_algorithm(algo)
        self.algo = algo
        self.hyperparameters = self.algorithm.check_hyperparameters(hyperparameters)
        self.given_hyperparameters = dict(hyperparameters or {})
        if problem_type is not None:
            self.algorithm.check_problem_type(problem_type)
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InvalidInput(f"timeout must be a positive number of seconds, got {timeout!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InvalidInput(f"seed must be an integer, got {seed!r}")
        self.roles = dict(roles or {})
        unknown = [r for r in self.roles if r not in self.algorithm.roles_doc]
        if unknown:
            known = ", ".join(self.algorithm.roles_doc) or "none"
            raise InvalidInput(f"{algo} has no role {unknown[0]!r}; its roles: {known}")
        self.target = target
        self.recipe = recipe
        self.experiment = experiment
        self.timeout = timeout
        self.seed = seed
        self.problem_type = problem_type
        self.ws = ws
        self.tracker = tracker
        self.reuse_process = reuse_process
        if isinstance(iteration_metrics, str):
            raise InvalidInput("iteration_metrics is a list of metric names, e.g. ['validation:auc']")
        self.iteration_metrics = list(iteration_metrics) if iteration_metrics is not None else None
        #: environment variables for the job processes, on top of this process's (e.g. OMP_NUM_THREADS
        #: when a tuner runs several trials at once)
        self.job_env: dict[str, str] = {}
        self._pool = WorkerPool()

    def clone(self, **changes: Any) -> Estimator:
        """A copy with some constructor arguments changed.

        ``hyperparameters`` are merged into the current ones (unless ``algo`` changes).

        Clones share the idle job processes kept by ``reuse_process=True``.
        """
        args: dict[str, Any] = dict(
            hyperparameters=self.given_hyperparameters, target=self.target, recipe=self.recipe,
            experiment=self.experiment, timeout=self.timeout, seed=self.seed,
            problem_type=self.problem_type, roles=self.roles, ws=self.ws, tracker=self.tracker,
            reuse_process=self.reuse_process, iteration_metrics=self.iteration_metrics,
        )
        if changes.get("algo", self.algo) != self.algo:
            args["hyperparameters"] = {}  # another algorithm: another schema
        elif "hyperparameters" in changes:
            changes["hyperparameters"] = {**self.given_hyperparameters, **dict(changes["hyperparameters"] or {})}
        args.update(changes)
        algo = args.pop("algo", self.algo)
        out = Estimator(algo, **args)
        out._pool = self._pool
        out.job_env = dict(self.job_env)
        return out

    def warm_up(self, *, cv: bool = False) -> None:
        """Start the kept-alive job process now (``reuse_process=True``; otherwise nothing happens).

        It imports the algorithm's library (and with ``cv``, what splitting
        folds needs) while the caller goes on (a tuning worker reading its
        data), so the first fit does not wait for it.
        """
        if self.reuse_process and not self._pool.idle_count():
            self._pool.give(Worker(self._preload(cv), True, env=self.job_env))

    def abort(self) -> int:
        """Kill the job processes of the fits running now, of this estimator and its clones.

        Each of those fits then fails at once (its run FAILED, its logs kept),
        in whatever thread it runs: how a tuner stops its running trials on
        Ctrl-C. Returns how many jobs were killed.
        """
        return self._pool.kill_busy()

    def close(self) -> None:
        """Stop the idle job processes kept by ``reuse_process=True``."""
        self._pool.close()

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Estimator({self.algo!r}, {self.given_hyperparameters!r}, target={self.target!r})"

    # -- fit -------------------------------------------------------------------------------------------
    def fit(
        self,
        train: Any,
        validation: Any = None,
        *,
        cv: int | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        on_log: Callable[[str], None] | None = None,
        on_metric: MetricCallback | None = None,
    ) -> TrainingResult:
        """Train in a separate process and record the run.

        Parameters
        ----------
        train, validation
            ``NAME[:VER]`` of a dataset in the catalog, a
            :class:`~loopml.data.catalog.DatasetVersionInfo`, or a pandas DataFrame.
        cv
            Cross-validate first with this many folds (stratified for
            classification; no ``validation`` then): the ``validation:*``
            metrics are the means over the folds (see :meth:`cross_validate`),
            and the model is then trained on all of ``train``.
        run_name
            The run's display name.
        parent_run_id
            Nest the run under another (a tuning job).
        tags
            Extra run tags.
        on_log
            Called with each log line of the job (prefixed with the run name);
            default: the ``loopml.train.job`` logger.
        on_metric
            Called as ``on_metric(step, {"validation:auc": ...})`` for each
            training iteration (with ``cv``: the mean over the folds). If it
            raises, the job stops at its next iteration (its process stays
            usable with ``reuse_process``), the run is marked KILLED and the
            exception propagates: how a tuner prunes a trial.

        Returns
        -------
        TrainingResult

        Raises
        ------
        InvalidInput
            Bad data or settings (the job's message, e.g. a one-class target).
        TrainingError
            The library failed, the job died or timed out; the run is FAILED with its logs.
        """
        from loopml.train._job import check_cv

        cv_spec = check_cv(cv)
        if cv_spec is not None and validation is not None:
            raise InvalidInput("cross-validation (cv=...) holds out parts of the training data itself; "
                               "give no validation data")
        out = self._execute(train, validation, cv_spec, run_name=run_name, parent_run_id=parent_run_id,
                            tags=tags, on_log=on_log, on_metric=on_metric)
        assert isinstance(out, TrainingResult)
        return out

    def cross_validate(
        self,
        train: Any,
        folds: int = 3,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        on_log: Callable[[str], None] | None = None,
        on_metric: MetricCallback | None = None,
    ) -> CrossValidationResult:
        """Measure the estimator by k-fold cross-validation, as a tracked job (no model is kept).

        The training rows are split into ``folds`` parts (stratified by class
        for classification, shuffled with the estimator's seed; by group for
        ranking). Each fold's model trains on the other parts, with the recipe
        fitted on them alone, and is validated on its part. The folds train
        in turns, one iteration each, so ``on_metric`` gets each iteration's
        validation metrics averaged over the folds: a tuner prunes on those.

        Parameters
        ----------
        train
            ``NAME[:VER]`` of a dataset, a DatasetVersionInfo or a pandas DataFrame.
        folds
            Number of folds (at least 2).
        run_name, parent_run_id, tags, on_log, on_metric
            As for :meth:`fit`.

        Returns
        -------
        CrossValidationResult
            ``metrics["validation:auc"]`` is the mean of the folds' AUCs.

        Raises
        ------
        InvalidInput
            Bad settings, or too few rows (of a class) for the folds.
        TrainingError
            The library failed, the job died or timed out.

        Examples
        --------
        >>> import tempfile, pandas as pd, loopml
        >>> from loopml.train import Estimator
        >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
        >>> df = pd.DataFrame({"x": range(60), "y": [i % 2 for i in range(60)]})
        >>> cv = Estimator("xgboost", {"num_round": 5}, target="y", ws=ws).cross_validate(df, 3)  # doctest: +SKIP
        >>> len(cv.folds), "validation:auc" in cv.metrics  # doctest: +SKIP
        (3, True)
        """
        from loopml.train._job import check_cv

        cv_spec = check_cv({"folds": folds, "refit": False})
        out = self._execute(train, None, cv_spec, run_name=run_name, parent_run_id=parent_run_id, tags=tags,
                            on_log=on_log, on_metric=on_metric)
        assert isinstance(out, CrossValidationResult)
        return out

    def _execute(
        self, train: Any, validation: Any, cv: dict[str, Any] | None, *, run_name: str | None,
        parent_run_id: str | None, tags: Mapping[str, Any] | None, on_log: Callable[[str], None] | None,
        on_metric: MetricCallback | None,
    ) -> TrainingResult | CrossValidationResult:
        from loopml.workspace import Workspace

        started = time.monotonic()
        # first: a fresh job process imports its library while we open the workspace and prepare
        worker = ((self._pool.take() if self.reuse_process else take_prestarted(self.algo))
                  or Worker(self._preload(cv is not None), self.reuse_process, env=self.job_env))
        job = _Job(self, worker)
        self._pool.busy(worker)
        own_ws = self.ws is None
        try:
            ws = self.ws or Workspace.open()
            try:
                job.attach(ws)
                return job.run(train, validation, cv, run_name=run_name, parent_run_id=parent_run_id,
                               tags=tags or {}, on_log=on_log, on_metric=on_metric, started=started)
            finally:
                if own_ws:
                    ws.close()
        finally:
            self._pool.done(worker)
            job.cleanup()
            if self.reuse_process and worker.idle:
                self._pool.give(worker)
            else:
                worker.close()

    def _preload(self, cv: bool = False) -> list[str]:
        from loopml.train._job import preload_modules

        return preload_modules(self.algorithm, cv=cv)


# -- the job, seen from the caller ---------------------------------------------------------------------
class _Job:
    """One training job: the run it is recorded in, its private folder, its worker process."""

    def __init__(self, est: Estimator, worker: Worker) -> None:
        self.est = est
        self.worker = worker
        self.ws: Workspace
        self.dir: Path | None = None
        self.last_lines: list[str] = []
        #: the exception a callback raised; the job was asked to stop
        self.stopped_by: Exception | None = None
        self.cv: dict[str, Any] | None = None

    def attach(self, ws: Workspace) -> None:
        """Bind the job to a workspace and make its private folder there."""
        self.ws = ws
        self.dir = ws.home / "jobs" / uuid.uuid4().hex
        self.dir.mkdir(parents=True)
        self.log_file = self.dir / "train.log"

    def kill(self) -> None:
        self.worker.kill()

    def cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.dir.parent.rmdir()  # only when no other job is running

    # -- inputs -------------------------------------------------------------------------------------------
    def _source(self, data: Any, role: str) -> tuple[dict[str, Any], list[str], DatasetVersionInfo | None]:
        from loopml.data.catalog import Catalog, DatasetVersionInfo

        if isinstance(data, str):
            data = Catalog(self.ws).get(data)
        if isinstance(data, DatasetVersionInfo):
            src = {"kind": "catalog", "ref": data.ref, "id": data.id, "parts": [p.sha256 for p in data.parts],
                   "schema": data.schema}
            return src, data.columns, data
        if isinstance(data, StagedInput):
            return dict(data.src), list(data.columns), None
        assert self.dir is not None
        staged = stage_input(data, self.dir / f"{role}.arrow", role)
        return dict(staged.src), list(staged.columns), None

    def _recipe(self) -> tuple[dict[str, Any] | None, str, Any]:
        """The recipe part of the spec, a description, and the catalog recipe version (if any)."""
        r = self.est.recipe
        if r is None:
            return None, "", None
        from loopml.prep import FittedRecipe, Recipe
        from loopml.prep.versions import get_recipe

        if isinstance(r, Recipe):
            return {"kind": "spec", "spec": r.to_dict()}, "given", None
        assert self.dir is not None
        if isinstance(r, FittedRecipe):
            path = self.dir / "recipe.json"
            path.write_bytes(r.to_bytes())
            return {"kind": "fitted", "path": str(path)}, "given fitted", None
        if not isinstance(r, (str, os.PathLike)):
            raise InvalidInput(
                f"recipe must be a Recipe, a FittedRecipe, a YAML path or NAME[:VER], got {type(r).__name__}"
            )
        text = os.fspath(r)
        if text.endswith((".yaml", ".yml")) or Path(text).is_file():
            spec = Recipe.load(text)
            return {"kind": "spec", "spec": spec.to_dict(), "source": text}, text, None
        info = get_recipe(self.ws, text)
        path = self.dir / "recipe.json"
        path.write_bytes(self.ws.artifacts.get_bytes(info.artifact_hash))
        return {"kind": "fitted", "path": str(path), "ref": info.ref, "id": info.id}, info.ref, info

    # -- the run ---------------------------------------------------------------------------------------------
    def run(
        self, train: Any, validation: Any, cv: dict[str, Any] | None, *, run_name: str | None,
        parent_run_id: str | None, tags: Mapping[str, Any], on_log: Callable[[str], None] | None,
        on_metric: MetricCallback | None, started: float,
    ) -> TrainingResult | CrossValidationResult:
        from loopml.track import Tracker

        est = self.est
        self.cv = cv
        t0 = time.monotonic()
        train_src, train_cols, train_info = self._source(train, "train")
        val_src: dict[str, Any] | None = None
        val_cols: list[str] = []
        val_info: DatasetVersionInfo | None = None
        if validation is not None:
            val_src, val_cols, val_info = self._source(validation, "validation")
        where = {"training": (train_src, train_cols), "validation": (val_src, val_cols)}
        for what, (src, cols) in where.items():
            if src is None:
                continue
            name = src.get("ref") or src.get("description")
            if est.target is not None and est.target not in cols:
                raise InvalidInput(
                    f"target column {est.target!r} is not in the {what} data {name}; columns: {', '.join(cols)}"
                )
            for role, col in est.roles.items():
                if col not in cols:
                    raise InvalidInput(f"{role} column {col!r} is not in the {what} data {name}; columns: {', '.join(cols)}")
        if est.target is None and est.problem_type in SUPERVISED:
            raise InvalidInput(f"{est.algo} {est.problem_type} needs a target column; pass target=COLUMN")
        if est.target is None and all(p in SUPERVISED for p in est.algorithm.problem_types):
            raise InvalidInput(f"{est.algo} needs a target column; pass target=COLUMN (--target)")
        recipe_spec, recipe_desc, recipe_info = self._recipe()
        prep_s = time.monotonic() - t0

        tracker = est.tracker or Tracker(self.ws)
        own_tracker = est.tracker is None
        try:
            job_tags: dict[str, Any] = {"job": "training", "algorithm": est.algo}
            if cv is not None:
                job_tags["cv.folds"] = cv["folds"]
            run = tracker.start_run(
                experiment=est.experiment, name=run_name, parent_run_id=parent_run_id,
                tags={**job_tags, **dict(tags)}, seed=est.seed,
            )
            return self._run(run, train_src, val_src, train_info, val_info, recipe_spec, recipe_desc,
                             recipe_info, on_log, on_metric, started, prep_s)
        finally:
            if own_tracker:
                tracker.close()

    def _run(
        self, run: Run, train_src: dict[str, Any], val_src: dict[str, Any] | None,
        train_info: DatasetVersionInfo | None, val_info: DatasetVersionInfo | None,
        recipe_spec: dict[str, Any] | None, recipe_desc: str, recipe_info: Any,
        on_log: Callable[[str], None] | None, on_metric: MetricCallback | None, started: float, prep_s: float,
    ) -> TrainingResult | CrossValidationResult:
        from loopml.store.lineage import EntityRef

        est = self.est
        with run:
            params: dict[str, Any] = {"algorithm": est.algo, **est.hyperparameters}
            for key, value in (("target", est.target), ("problem_type", est.problem_type), ("recipe", recipe_desc)):
                if value and key not in params:
                    params[key] = value
            params.update({f"role.{k}": v for k, v in est.roles.items()})
            run.log_params(params)
            for info, role, src in ((train_info, "train", train_src), (val_info, "validation", val_src)):
                if info is not None:
                    run.log_dataset(info, role=role)
                elif src is not None:
                    run.set_tag(f"data.{role}", src["description"])
            if recipe_info is not None:
                self.ws.lineage.add(recipe_info.entity, EntityRef("run", run.id), "used_by")
            assert self.dir is not None
            out_dir = self.dir / "package"
            spec = {
                "algorithm": est.algo, "algorithm_class": algorithm_path(est.algorithm),
                "hyperparameters": est.hyperparameters, "target": est.target, "roles": est.roles,
                "problem_type": est.problem_type, "seed": est.seed, "train": train_src,
                "validation": val_src, "recipe": recipe_spec, "artifact_root": self.ws.artifacts.url,
                "output_dir": str(out_dir), "run_id": run.id, "cv": self.cv,
                "iteration_metrics": est.iteration_metrics,
            }
            prefix = f"[{run.name}] "
            emit_line = on_log or (lambda line: job_log.info("%s", line))
            with open(self.log_file, "w", encoding="utf-8") as logf:
                self._logf = logf
                try:
                    outcome = self._supervise(run, spec, logf, prefix, emit_line, on_metric)
                except BaseException:  # interrupted, or a bug of ours: the job must not run on
                    self.worker.kill()
                    if not run.ended:
                        self._keep_logs(run)
                    raise
            stopped = self.stopped_by
            if stopped is not None:  # a callback raised: the job stopped (or finished first); so does the run
                self._keep_logs(run)
                run.end("KILLED", f"stopped by the caller: {type(stopped).__name__}: {stopped}")
                raise stopped
            if outcome.get("event") != "result":
                self._fail(run, outcome)
            timings = {"prepare_s": prep_s, **{k: float(v) for k, v in (outcome.get("timings") or {}).items()}}
            result: TrainingResult | CrossValidationResult
            if outcome.get("package_sha256") is None:  # cross-validation only
                result = self._record_cv(run, outcome)
            else:
                result = self._record(run, outcome, out_dir)
            result.duration_s = time.monotonic() - started
            result.timings = {**timings, "total_s": result.duration_s}
            return result

    def _supervise(
        self, run: Run, spec: dict[str, Any], logf: Any, prefix: str, emit_line: Callable[[str], None],
        on_metric: MetricCallback | None,
    ) -> dict[str, Any]:
        """Send the spec, then stream logs and events until the job ends, times out or is stopped.

        When a callback raises, the job is asked to stop at its next training
        iteration (its process stays usable); one that has not stopped within
        :data:`STOP_GRACE_S` is killed. The callback's exception is kept in
        :attr:`stopped_by` for :meth:`_run` to re-raise.
        """
        w = self.worker
        w.send(spec)
        # until the job says it started, a fresh process may still be importing its libraries
        deadline = time.monotonic() + self.est.timeout + START_S if self.est.timeout else None
        grace: float | None = None
        outcome: dict[str, Any] = {}
        open_streams = 2
        ended = False  # the job printed its end marker
        steps: dict[str, int] = {}
        while open_streams and not (ended and outcome):
            now = time.monotonic()
            # checked on every pass: a job streaming metrics never leaves the queue empty
            if deadline is not None and now >= deadline:
                w.kill()
                outcome = {"event": "timeout"}
                deadline = grace = None
            elif grace is not None and now >= grace:
                log.debug("the job did not stop within %s s of the request; killing it", STOP_GRACE_S)
                w.kill()
                outcome = {"event": "stopped", "killed": True}
                grace = None
            wait = min([_POLL_S, *(max(0.0, d - now) for d in (deadline, grace) if d is not None)])
            try:
                kind, payload = w.queue.get(timeout=wait)
            except queue.Empty:
                continue
            if kind == "eof":
                open_streams -= 1
            elif kind == "log":
                if payload == JOB_END:
                    ended = True
                    continue
                logf.write(payload + "\n")
                self.last_lines = [*self.last_lines[-19:], payload]
                if self._call(emit_line, prefix + payload):
                    grace = time.monotonic() + STOP_GRACE_S
            elif payload.get("event") == "started":
                if deadline is not None:  # a fresh process imported its libraries first: that is not the job's time
                    deadline = time.monotonic() + float(self.est.timeout or 0)
            elif payload.get("event") in ("metric", "metrics"):
                points = payload["points"] if payload["event"] == "metrics" else [
                    (payload["step"], payload["metrics"])]
                for raw_step, raw_metrics in points:
                    step, metrics = int(raw_step), dict(raw_metrics)
                    run.log_metrics(metrics, step=step)
                    for k in metrics:
                        steps[k] = step
                    if on_metric is not None and self._call(on_metric, step, metrics):
                        grace = time.monotonic() + STOP_GRACE_S
            elif payload.get("event") in ("result", "error", "stopped") and outcome.get("event") != "timeout":
                outcome = payload
        if open_streams:  # the process lives on, waiting for the next job
            w.idle = outcome.get("event") in ("result", "error", "stopped") and not outcome.get("killed")
            outcome["returncode"] = None
        else:
            outcome["returncode"] = w.proc.wait()
        outcome["steps"] = steps
        return outcome

    def _call(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run a callback; if it raises, ask the job to stop and return True (once).

        The exception is kept in :attr:`stopped_by`; later calls are skipped.
        KeyboardInterrupt and the like propagate at once (the caller kills the job).
        """
        if self.stopped_by is not None:
            return False
        try:
            fn(*args)
        except Exception as e:
            self.stopped_by = e
            self.worker.request_stop()
            return True
        return False

    def _keep_logs(self, run: Run) -> None:
        logf = getattr(self, "_logf", None)
        if logf is not None and not logf.closed:
            logf.flush()
        with contextlib.suppress(OSError, LoopmlError):
            run.log_artifact(self.log_file, name=_LOG_ARTIFACT)

    def _fail(self, run: Run, outcome: dict[str, Any]) -> None:
        """Mark the run FAILED with the reason, keep the logs, raise."""
        rc = outcome.get("returncode")
        event = outcome.get("event")
        error_cls: type[LoopmlError] = TrainingError
        if event == "timeout":
            message = f"training timed out after {self.est.timeout:g} s; the job was killed"
        elif event == "error":
            message = str(outcome.get("message") or "unknown error")
            named = getattr(_errors, str(outcome.get("type")), None)
            if isinstance(named, type) and issubclass(named, LoopmlError):
                error_cls = named
        elif rc is not None and rc < 0:
            sig = _signal_name(-rc)
            hint = {"SIGKILL": " (killed: out of memory?)", "SIGSEGV": " (a crash in native code)",
                    "SIGABRT": " (aborted by native code)"}.get(sig, "")
            message = f"the training job died from signal {sig}{hint}"
        else:
            tail = " | ".join(line for line in self.last_lines[-3:] if line.strip())
            message = f"the training job exited with code {rc} without a result" + (f"; last output: {tail}" if tail else "")
        self._keep_logs(run)
        run.end("FAILED", message)
        if error_cls is TrainingError:
            raise TrainingError(f"{message} (run {run.id} FAILED; its log is {_LOG_ARTIFACT})", run_id=run.id)
        err = error_cls(f"{message} (run {run.id} FAILED)")
        err.run_id = run.id  # type: ignore[attr-defined]
        raise err

    def _log_folds(self, run: Run, folds: list[dict[str, float]]) -> None:
        """Each fold's final metrics (``validation:auc.fold``, step = fold number) and their spread."""
        keys = sorted({k for f in folds for k in f})
        for i, f in enumerate(folds, 1):
            run.log_metrics({f"{k}.fold": v for k, v in f.items()}, step=i)
        spread = {}
        for k in keys:
            vals = [float(f[k]) for f in folds if k in f]
            mean = sum(vals) / len(vals)
            spread[f"{k}.std"] = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
        run.log_metrics(spread)

    def _record_cv(self, run: Run, outcome: dict[str, Any]) -> CrossValidationResult:
        """Log the means over the folds (as each series' latest value), the folds and the logs."""
        metrics = {k: float(v) for k, v in dict(outcome.get("metrics") or {}).items()}
        steps: dict[str, int] = outcome.get("steps") or {}
        run.log_metrics(metrics, step=max(steps.values(), default=0))
        folds = [{k: float(v) for k, v in f.items()} for f in outcome.get("folds") or []]
        self._log_folds(run, folds)
        problem_type = str(outcome.get("problem_type"))
        run.set_tags({"problem_type": problem_type})
        run.log_artifact(self.log_file, name=_LOG_ARTIFACT)
        return CrossValidationResult(run_id=run.id, metrics=metrics, folds=folds, problem_type=problem_type)

    def _record(self, run: Run, outcome: dict[str, Any], out_dir: Path) -> TrainingResult:
        """Store the package and logs as run artifacts, log final metrics, tags and lineage."""
        from loopml.store.lineage import EntityRef
        from loopml.train.package import MANIFEST, verify_package

        sha = str(outcome["package_sha256"])
        manifest = verify_package(out_dir, sha256=sha)
        files: dict[str, Path] = {f"model/{rel}": out_dir / rel for rel in sorted(manifest["files"])}
        if manifest.get("recipe"):
            files["recipe/recipe.json"] = out_dir / manifest["recipe"]["file"]
        files[f"model/{MANIFEST}"] = out_dir / MANIFEST
        files[_LOG_ARTIFACT] = self.log_file
        artifacts = run.log_artifacts(files)  # one database write for the package and the log
        if artifacts[f"model/{MANIFEST}"] != sha:
            raise TrainingError(f"the stored manifest hash differs from the job's ({sha}); storage is inconsistent")
        metrics = {k: float(v) for k, v in dict(outcome.get("metrics") or {}).items()}
        steps: dict[str, int] = outcome.get("steps") or {}
        last = max(steps.values(), default=0)
        # final values land on the last step, so they are each series' latest value
        run.log_metrics(metrics, step=last)
        if outcome.get("folds"):
            self._log_folds(run, outcome["folds"])
        problem_type = str(outcome.get("problem_type"))
        run.set_tags({"problem_type": problem_type, "model.sha256": sha})
        self.ws.lineage.add(EntityRef("run", run.id), EntityRef("model_package", sha), "produced")
        # keep the package in the workspace's model cache
        cache = self.ws.home / "cache" / "models" / sha
        cache.parent.mkdir(parents=True, exist_ok=True)
        if not cache.exists():
            try:
                os.replace(out_dir, cache)
            except OSError:
                shutil.copytree(out_dir, cache, dirs_exist_ok=True)
        return TrainingResult(run_id=run.id, metrics=metrics, model_sha256=sha, model_path=cache,
                              problem_type=problem_type, artifacts=artifacts, ws=self.ws)


@dataclass(frozen=True)
class StagedInput:
    """In-memory training data written once as the Arrow file a job reads (:func:`stage_input`).

    Passing it to :meth:`Estimator.fit` many times (a tuner's trials) skips
    writing the file again, and a warm job process recognises the content
    and keeps the rows it read.
    """

    src: dict[str, Any]
    columns: list[str]
    num_rows: int


def stage_input(data: Any, path: Path, role: str = "train") -> StagedInput:
    """Write a DataFrame or Arrow table to ``path`` as a job input; the caller owns the file."""
    import pyarrow as pa

    table = _as_arrow(data, role)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    desc = f"DataFrame {table.num_rows}x{table.num_columns} sha256:{h.hexdigest()[:16]}"
    src = {"kind": "file", "path": str(path), "description": desc, "sha256": h.hexdigest()}
    return StagedInput(src, list(table.column_names), table.num_rows)


def _as_arrow(data: Any, role: str) -> Any:
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        if data.columns.duplicated().any():
            raise InvalidInput(f"the {role} DataFrame has duplicate column names")
        try:
            return pa.Table.from_pandas(data, preserve_index=False).replace_schema_metadata(None)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInput(f"the {role} DataFrame cannot be stored as Arrow: {e}") from None
    raise InvalidInput(
        f"{role} data must be NAME[:VER] of a dataset, a DatasetVersionInfo or a pandas DataFrame, "
        f"got {type(data).__name__}"
    )


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


__all__ = ["CrossValidationResult", "Estimator", "TrainingError", "TrainingResult"]
