"""The HyperparameterTuner: search an Estimator's hyperparameters with Optuna, trials as tracked runs.

The tuner is the coordinator of a tuning job. It records the job (an Optuna
study in the workspace's metadata database, holding the job's spec, and a
tracking run that every trial's run nests under), keeps ``max_parallel``
trials in flight on an executor (threads of this process, each trial
training in its own job process; local worker processes; or Ray), and
after each trial updates the job's run and checks the completion criteria.
The trials themselves (:mod:`loopml.tune._trial`) sample from the study,
train with the estimator and report per-iteration values for pruning.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from loopml.errors import Conflict, InvalidInput, LoopmlError
from loopml.tune.completion import CompletionCriteria
from loopml.tune.jobs import (
    COMPLETED,
    ERROR_ATTR,
    FAILED,
    IN_PROGRESS,
    INTERRUPTED_ATTR,
    MESSAGE_ATTR,
    MODEL_ATTR,
    MODEL_RUN_ATTR,
    REASON_ATTR,
    SPEC_ATTR,
    STATUS_ATTR,
    STOPPED,
    UPDATED_ATTR,
    JobSpec,
    TrialInfo,
    TuningResult,
    load_study,
    result_of,
    trial_info,
)
from loopml.tune.ranges import ParameterRange, SearchSpace, build_space, default_space, load_space
from loopml.tune.strategies import RESOURCE_PARAMS, EarlyStopping, check_strategy, report_interval
from loopml.tune.warm_start import WarmStart, seed_study

if TYPE_CHECKING:
    import optuna

    from loopml.compute import Executor
    from loopml.track import Run, Tracker
    from loopml.train import Estimator
    from loopml.tune._storage import Studies
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: trials when neither max_trials nor a grid says how many
DEFAULT_MAX_TRIALS = 20
#: a job whose first trials all fail this many times stops (a setup problem, not bad luck)
MAX_FAILURES_AT_START = 3
DIRECTIONS = ("maximize", "minimize")

TrialCallback = Callable[[TrialInfo, int, int], None]


class TuningError(LoopmlError):
    """A tuning job failed as a whole (its first trials all failed).

    Attributes
    ----------
    job_id
        The job, marked Failed; its trials' runs keep the logs.
    """

    http_status = 500
    code = "TuningError"

    def __init__(self, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


def _check_objective(objective: str, algorithm: Any, problem_type: str | None) -> str:
    if not isinstance(objective, str) or ":" not in objective:
        raise InvalidInput(f"objective {objective!r} must look like validation:METRIC or train:METRIC, "
                           "e.g. validation:auc")
    split, _, metric = objective.partition(":")
    if split not in ("train", "validation") or not metric:
        raise InvalidInput(f"objective {objective!r} must look like validation:METRIC or train:METRIC")
    types = [problem_type] if problem_type else list(algorithm.problem_types)
    known: list[str] = []
    for p in types:
        known += [m for m in algorithm.reported_metrics(p) if m not in known]
    if metric not in known:
        raise InvalidInput(f"{algorithm.name} never reports {objective}"
                           f"{f' for {problem_type} problems' if problem_type else ''}; it reports "
                           f"{', '.join(f'{split}:{m}' for m in known) or 'no metrics'}")
    return objective


def _direction(direction: str | None, objective: str) -> str:
    if direction is None:
        from loopml.train import metric_direction

        return metric_direction(objective)
    d = str(direction).strip().lower()
    if d not in DIRECTIONS:
        raise InvalidInput(f"direction {direction!r} must be maximize or minimize")
    return d


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{what} must be a positive integer, got {value!r}")
    return value


def _arrow(data: Any, role: str) -> Any:
    """``data`` as an Arrow table (a DataFrame or a table)."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=False).replace_schema_metadata(None)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise InvalidInput(f"the {role} DataFrame cannot be stored as Arrow: {e}") from None
    raise InvalidInput(f"{role} data must be NAME[:VER] of a dataset, a DatasetVersionInfo or a pandas "
                       f"DataFrame, got {type(data).__name__}")


def _reattach(tracker: Tracker, run_id: str) -> Run:
    """A handle on a run started by an earlier (dead) process, to log into and end it."""
    from loopml.track import Run

    info = tracker.get_run(run_id)
    return Run(tracker, id=info.id, name=info.name, experiment=info.experiment,
               experiment_id=info.experiment_id, parent_run_id=info.parent_run_id,
               start_time=info.start_time, seed=info.seed)


class HyperparameterTuner:
    """Search an estimator's hyperparameters: trials as child runs, the study in the workspace.

    Parameters
    ----------
    estimator
        The :class:`~loopml.train.Estimator` to tune; its hyperparameters are
        kept fixed unless the search space searches them.
    objective
        The metric to optimise: ``validation:METRIC`` (held-out data) or ``train:METRIC``.
    direction
        ``maximize`` or ``minimize``; default: from the metric (``minimize`` for
        losses and errors such as ``logloss``, ``rmse``).
    ranges
        The search space: None for the algorithm's tunable hyperparameters over
        their suggested ranges; a mapping name -> range (``(min, max)``,
        ``(min, max, scaling)``, a list of values, a
        :class:`~loopml.tune.ranges.ParameterRange`, or one fixed value); a
        :class:`~loopml.tune.ranges.SearchSpace`; or the path of a YAML file.
    strategy
        ``bayesian`` (TPE), ``random``, ``grid``, ``hyperband`` or ``cmaes``.
    max_trials
        Trials to run (default: the grid's size for ``grid``, else 20).
    max_parallel
        Trials at once.
    early_stopping
        Stop unpromising trials from their per-iteration values: False, True
        (median rule), ``"median"``, ``"hyperband"``, ``"successive-halving"`` or
        :class:`~loopml.tune.strategies.EarlyStopping`.
    completion
        :class:`~loopml.tune.completion.CompletionCriteria` (target value,
        trials without improvement, max runtime), or a mapping of its fields.
    warm_start
        Earlier job ids (their trials seed this job) or a
        :class:`~loopml.tune.warm_start.WarmStart`.
    name
        The job id (default: ``tune-`` and 12 hex digits).
    executor
        ``local``: this process coordinates ``max_parallel`` trials at once
        from threads, each trial training in its own job process (no worker
        process to start, the data stay in memory); ``processes``: one
        worker process per parallel trial; ``ray``; or an
        :class:`~loopml.compute.Executor`.
    ray_address
        The Ray cluster for ``executor="ray"`` (default: a local instance).
    seed
        Seed of the sampler.
    register_as
        Register the best trial's model under this name when the job ends.
    validation_fraction
        Without validation data, this fraction of the training data is held out
        (stratified for classification) for a ``validation:`` objective.
    cv_folds
        Measure each trial by k-fold cross-validation of the training data
        instead (:meth:`~loopml.train.Estimator.cross_validate`; no
        validation data): the objective is the mean over the folds, and early
        stopping prunes on each iteration's value averaged over the folds.
    refit
        With ``cv_folds``, train the best configuration on all the training
        data when the job completes (the job's model, and what ``register_as``
        registers); trials keep no models.

    Examples
    --------
    >>> import tempfile, loopml, pandas as pd, numpy as np
    >>> from loopml.train import Estimator
    >>> from loopml.tune import HyperparameterTuner
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> r = np.random.default_rng(0); x = r.normal(size=200)
    >>> df = pd.DataFrame({"x": x, "y": (x + r.normal(size=200) > 0).astype(int)})
    >>> est = Estimator("xgboost", {"num_round": 10}, target="y", ws=ws)
    >>> tuner = HyperparameterTuner(est, "validation:auc", ranges={"max_depth": (2, 4)}, max_trials=3)
    >>> result = tuner.fit(df)                                 # doctest: +SKIP
    >>> result.best_params                                     # doctest: +SKIP
    {'max_depth': 3}
    """

    def __init__(
        self,
        estimator: Estimator,
        objective: str = "validation:auc",
        direction: str | None = None,
        ranges: Mapping[str, Any] | Sequence[ParameterRange] | SearchSpace | str | os.PathLike[str] | None = None,
        strategy: str = "bayesian",
        max_trials: int | None = None,
        max_parallel: int = 1,
        early_stopping: bool | str | EarlyStopping | Mapping[str, Any] | None = False,
        completion: CompletionCriteria | Mapping[str, Any] | None = None,
        warm_start: str | Sequence[str] | WarmStart | None = None,
        name: str | None = None,
        *,
        executor: str | Executor = "local",
        ray_address: str | None = None,
        seed: int = 0,
        register_as: str | None = None,
        validation_fraction: float = 0.2,
        cv_folds: int | None = None,
        refit: bool = True,
    ) -> None:
        from loopml.train import Estimator

        if not isinstance(estimator, Estimator):
            raise InvalidInput(f"estimator must be a loopml Estimator, got {type(estimator).__name__}")
        algo = estimator.algorithm
        self.estimator = estimator
        self.objective = _check_objective(objective, algo, estimator.problem_type)
        self.direction = _direction(direction, self.objective)
        if cv_folds is not None:
            if isinstance(cv_folds, bool) or not isinstance(cv_folds, int) or cv_folds < 2:
                raise InvalidInput(f"cv_folds must be an integer >= 2, got {cv_folds!r}")
            if not self.objective.startswith("validation:"):
                raise InvalidInput(f"with cv_folds the objective is measured on the held-out folds: use "
                                   f"validation:{self.objective.partition(':')[2]}, not {self.objective}")
        self.strategy = check_strategy(strategy)
        early = EarlyStopping.parse(early_stopping)
        resource = next((p for p in RESOURCE_PARAMS if any(h.name == p for h in algo.hyperparameters)), None)
        if self.strategy == "hyperband":
            if early is not None and early.pruner != "hyperband":
                raise InvalidInput(f"strategy hyperband stops trials with Hyperband; drop early_stopping="
                                   f"{early.pruner!r} or pick another strategy")
            early = early or EarlyStopping("hyperband")
        fixed = dict(estimator.given_hyperparameters)
        exclude = [resource] if (resource and early is not None and early.pruner != "median") else []
        if ranges is None:
            space = default_space(algo, fixed=fixed, problem_type=estimator.problem_type, exclude=exclude)
        elif isinstance(ranges, (str, os.PathLike)):
            space = load_space(ranges, algo, fixed=fixed)
        else:
            space = build_space(algo, ranges, fixed=fixed)
        # the most iterations a trial runs: what per-iteration reports and Hyperband count up to
        max_steps: int | None = None
        if resource:
            searched = next((r for r in space.ranges if r.name == resource), None)
            if searched is not None and exclude:
                raise InvalidInput(f"{early.pruner if early else 'hyperband'} allocates {resource} (the training "
                                   f"iterations) itself; fix {resource} (the most a trial gets) instead of "
                                   "searching it")
            if searched is not None:
                max_steps = int(getattr(searched, "high", 0) or max(getattr(searched, "values", [0])))
            else:
                max_steps = int(space.fixed.get(resource, estimator.hyperparameters.get(resource)) or 0) or None
                if exclude and resource not in space.fixed and max_steps:
                    space = SearchSpace(space.ranges, {**space.fixed, resource: max_steps})
        if max_steps and cv_folds:  # the folds train one after another, their iterations on one scale
            max_steps *= cv_folds
        if early is not None:
            self._check_per_iteration(algo, estimator.problem_type)
            if early.max_resource is None and max_steps and early.pruner != "median":
                early = replace(early, max_resource=max_steps)
        self.space = space
        self.early_stopping = early
        self.max_steps = max_steps
        if max_trials is None:
            max_trials = space.grid_size() if self.strategy == "grid" else DEFAULT_MAX_TRIALS
        self.max_trials = _positive_int(max_trials, "max_trials")
        if self.strategy == "grid":
            size = space.grid_size()
            if size > self.max_trials:
                raise InvalidInput(f"the grid has {size} points but max_trials is {self.max_trials}; narrow the "
                                   "grid, raise max_trials, or leave max_trials out (a grid runs all its points)")
        self.max_parallel = _positive_int(max_parallel, "max_parallel")
        self.completion = CompletionCriteria.parse(completion)
        self.warm_start = WarmStart.parse(warm_start)
        if name is not None:
            from loopml._util import check_name

            check_name(name, "tuning job")
        self.name = name
        if isinstance(executor, str):
            if executor.strip().lower() not in ("local", "processes", "ray", "inline"):
                raise InvalidInput(f"executor {executor!r} is not one of local, processes, ray")
            executor = executor.strip().lower()
        self.executor = executor
        self.ray_address = ray_address
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InvalidInput(f"seed must be an integer, got {seed!r}")
        self.seed = seed
        if register_as is not None:
            from loopml.registry.versions import check_model_name

            check_model_name(register_as)
        self.register_as = register_as
        if not 0 < validation_fraction < 1:
            raise InvalidInput(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
        self.validation_fraction = float(validation_fraction)
        self.cv_folds = cv_folds
        self.refit = bool(refit)
        self._resume_id: str | None = None

    def _check_per_iteration(self, algo: Any, problem_type: str | None) -> None:
        types = [problem_type] if problem_type else list(algo.problem_types)
        per_iter = sorted({f"validation:{m}" for p in types for m in algo.iteration_metrics.get(p, ())})
        if self.objective not in per_iter:
            reports = ", ".join(per_iter) if per_iter else "nothing"
            raise InvalidInput(f"early stopping needs the objective each iteration, but {algo.name} reports "
                               f"{reports} per iteration, not {self.objective}; use one of those or turn "
                               "early stopping off")

    def __repr__(self) -> str:
        return (f"HyperparameterTuner({self.estimator.algo!r}, objective={self.objective!r}, "
                f"strategy={self.strategy!r}, max_trials={self.max_trials})")

    # -- resume ------------------------------------------------------------------------------------
    @classmethod
    def resume(
        cls,
        job_id: str,
        ws: Workspace | None = None,
        *,
        max_trials: int | None = None,
        max_parallel: int = 1,
        executor: str | Executor = "local",
        ray_address: str | None = None,
    ) -> HyperparameterTuner:
        """A tuner that continues an earlier job (killed, stopped, or to run more trials).

        Its :meth:`fit` (called without data: the job kept references to its
        data) keeps the finished trials, marks trials that were running when the
        job's process died as failed (interrupted: not counted), and runs trials
        until the job has ``max_trials``.

        Parameters
        ----------
        job_id
            The job (``loopml tune list``).
        ws
            The workspace (default: :meth:`loopml.Workspace.open`).
        max_trials
            A new total of trials (default: the job's own).
        max_parallel, executor, ray_address
            How to run the remaining trials.
        """
        from loopml.tune._storage import open_studies
        from loopml.tune._trial import build_estimator
        from loopml.workspace import Workspace

        own = ws is None
        w = ws or Workspace.open()
        try:
            with open_studies(w.settings.metadata_url) as studies:
                spec = JobSpec.from_dict(load_study(studies, job_id).user_attrs[SPEC_ATTR])
            est = build_estimator(spec, w, None)
            est.ws = None if own else w
            early = EarlyStopping.parse(spec.early_stopping)
            tuner = cls(est, spec.objective, spec.direction, SearchSpace.from_dict(spec.space),
                        strategy=spec.strategy, max_trials=max_trials or spec.max_trials,
                        max_parallel=max_parallel, early_stopping=early,
                        completion=spec.completion, name=job_id, executor=executor,
                        ray_address=ray_address, seed=spec.sampler_seed, register_as=spec.register_as,
                        cv_folds=spec.cv_folds, refit=spec.refit)
        finally:
            if own:
                w.close()
        tuner._resume_id = job_id
        return tuner

    # -- fit ---------------------------------------------------------------------------------------
    def fit(
        self,
        train: Any = None,
        validation: Any = None,
        *,
        on_trial: TrialCallback | None = None,
    ) -> TuningResult:
        """Run the tuning job until max_trials, a completion criterion, or failure.

        Parameters
        ----------
        train, validation
            ``NAME[:VER]`` of a dataset, a DatasetVersionInfo or a DataFrame (not
            given when resuming). Without validation data, ``validation_fraction``
            of ``train`` is held out; with ``cv_folds``, each trial
            cross-validates ``train`` (no validation data then).
        on_trial
            Called as ``on_trial(trial, done, total)`` after each trial.

        Returns
        -------
        TuningResult

        Raises
        ------
        InvalidInput
            Bad data or settings (before any trial runs).
        Conflict
            A job with this name exists (resume it instead).
        TuningError
            The first trials all failed; the job is marked Failed.
        """
        import optuna

        from loopml.track import Tracker
        from loopml.tune._storage import open_studies
        from loopml.workspace import Workspace

        # loopml logs each trial itself; Optuna's own INFO lines would repeat them
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
        own_ws = self.estimator.ws is None
        ws = self.estimator.ws or Workspace.open()
        try:
            studies = open_studies(ws.settings.metadata_url)
            tracker = Tracker(ws)
            try:
                data: tuple[Any, Any] | None = None
                if self._resume_id is not None:
                    if train is not None or validation is not None:
                        raise InvalidInput("a resumed job trains on its own data; call fit() without data")
                    study, spec, parent = self._reopen(studies, tracker, self._resume_id)
                else:
                    if train is None:
                        raise InvalidInput("give the training data: fit(train, validation)")
                    study, spec, parent, data = self._create(ws, studies, tracker, train, validation)
                return self._drive(ws, tracker, study, spec, parent, data, on_trial)
            finally:
                tracker.close()
                studies.close()
        finally:
            optuna.logging.set_verbosity(verbosity)
            if own_ws:
                ws.close()

    # -- creating and reopening jobs ------------------------------------------------------------------
    def _data(self, ws: Workspace, data: Any, role: str) -> tuple[dict[str, Any], Any, Any]:
        """(spec reference, what trials get, catalog info for lineage) of a data argument."""
        from loopml.data.catalog import Catalog, DatasetVersionInfo

        if isinstance(data, str):
            data = Catalog(ws).get(data)
        if isinstance(data, DatasetVersionInfo):
            return {"dataset": data.ref}, data.ref, data
        return self._store_table(ws, data, role), data, None

    def _store_table(self, ws: Workspace, data: Any, role: str) -> dict[str, Any]:
        import io

        import pyarrow.parquet as pq

        table = _arrow(data, role)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        ref = ws.artifacts.put_bytes(buf.getvalue())
        return {"artifact": ref.sha256, "rows": table.num_rows, "columns": table.num_columns}

    def _split(self, ws: Workspace, train: Any) -> tuple[Any, Any]:
        """Hold out ``validation_fraction`` of the training data (stratified for classes)."""
        import pandas as pd
        from sklearn.model_selection import train_test_split

        from loopml.data.catalog import Catalog, DatasetVersionInfo

        if isinstance(train, str):
            train = Catalog(ws).get(train)
        if isinstance(train, DatasetVersionInfo):
            df = Catalog(ws).read_pandas(train)
        elif isinstance(train, pd.DataFrame):
            df = train
        else:
            df = _arrow(train, "train").to_pandas()
        target = self.estimator.target
        if len(df) < 10:
            raise InvalidInput(f"the training data has {len(df)} rows, too few to hold out validation data; "
                               "give validation data")
        stratify = None
        if target is not None and target in df.columns:
            y = df[target]
            counts = y.value_counts(dropna=True)
            classy = self.estimator.problem_type in ("binary", "multiclass") or (
                self.estimator.problem_type is None and len(counts) <= 20
                and not pd.api.types.is_float_dtype(y))
            if classy and len(counts) > 1 and counts.min() >= 2 and y.notna().all():
                stratify = y
        tr, va = train_test_split(df, test_size=self.validation_fraction, random_state=self.seed,
                                  stratify=stratify)
        return tr.reset_index(drop=True), va.reset_index(drop=True)

    def _problem_type(self, ws: Workspace, train: Any) -> str | None:
        """The problem type the trials will have, inferred from the target as a training job does."""
        est = self.estimator
        if est.problem_type is not None:
            return est.problem_type
        from loopml.train import infer_problem_type

        y = None
        target = est.target
        if target is not None:
            if isinstance(train, str):
                from loopml.data.catalog import Catalog

                info = Catalog(ws).get(train)
                where, columns = info.ref, list(info.columns)
                if target in columns:
                    y = Catalog(ws).read_arrow(info, columns=[target]).column(0).to_pandas()
            else:
                table = _arrow(train, "train")
                where, columns = "DataFrame", list(table.column_names)
                if target in columns:
                    y = table.column(target).to_pandas()
            if y is None:
                raise InvalidInput(f"target column {target!r} is not in the training data {where}; "
                                   f"columns: {', '.join(map(str, columns))}")
        problem_type, _ = infer_problem_type(est.algorithm, y, None, est.roles)
        return problem_type

    def _recipe_spec(self, ws: Workspace) -> Any:
        r = self.estimator.recipe
        if r is None:
            return None
        from loopml.prep import FittedRecipe, Recipe

        if isinstance(r, Recipe):
            return {"spec": r.to_dict()}
        if isinstance(r, FittedRecipe):
            return {"fitted_artifact": ws.artifacts.put_bytes(r.to_bytes()).sha256}
        text = os.fspath(r)
        if os.path.isfile(text):
            return os.path.abspath(text)
        return text

    def _create(
        self, ws: Workspace, studies: Studies, tracker: Tracker, train: Any, validation: Any,
    ) -> tuple[optuna.study.Study, JobSpec, Run, tuple[Any, Any]]:
        import optuna

        from loopml.data.catalog import DatasetVersionInfo

        job_id = self.name or f"tune-{uuid.uuid4().hex[:12]}"
        if job_id in studies.names():
            raise Conflict(f"tuning job {job_id!r} exists; resume it (`loopml tune --resume {job_id}`) "
                           "or choose another name")
        parents = []
        if self.warm_start is not None:
            for pid in self.warm_start.jobs:
                parents.append(result_of(load_study(studies, pid)))
        lineage = []
        if self.cv_folds is not None and validation is not None:
            raise InvalidInput(f"with cv_folds={self.cv_folds} each trial holds out folds of the training data; "
                               "give no validation data")
        if validation is None and self.objective.startswith("validation:") and self.cv_folds is None:
            source = train
            train, validation = self._split(ws, train)
            if isinstance(source, str):
                from loopml.data.catalog import Catalog

                lineage.append((Catalog(ws).get(source), "train"))
            elif isinstance(source, DatasetVersionInfo):
                lineage.append((source, "train"))
        train_ref, train_obj, train_info = self._data(ws, train, "train")
        val_ref: dict[str, Any] | None = None
        val_obj = val_info = None
        if validation is not None:
            val_ref, val_obj, val_info = self._data(ws, validation, "validation")
        lineage += [(i, role) for i, role in ((train_info, "train"), (val_info, "validation")) if i is not None]
        est = self.estimator
        problem_type = self._problem_type(ws, train_obj)
        if problem_type != est.problem_type:  # now the objective can be checked for this problem
            _check_objective(self.objective, est.algorithm, problem_type)
            if self.early_stopping is not None:
                self._check_per_iteration(est.algorithm, problem_type)
        space = self.space
        parent = tracker.start_run(
            experiment=est.experiment, name=job_id, seed=self.seed,
            tags={"job": "tuning", "tuning.job": job_id, "algorithm": est.algo, "tuning.strategy": self.strategy,
                  "tuning.objective": self.objective, "tuning.status": IN_PROGRESS},
        )
        try:
            params: dict[str, Any] = {
                "algorithm": est.algo, "objective": self.objective, "direction": self.direction,
                "strategy": self.strategy, "max_trials": self.max_trials, "max_parallel": self.max_parallel,
                "early_stopping": self.early_stopping.pruner if self.early_stopping else "off",
                "search_space": ", ".join(f"{r.name}={r.describe()}" for r in space.ranges)[:6000],
            }
            if self.cv_folds is not None:
                params["cv_folds"] = self.cv_folds
            params.update({f"fixed.{k}": v for k, v in space.fixed.items()})
            if self.warm_start is not None:
                params["warm_start"] = f"{self.warm_start.type}:{','.join(self.warm_start.jobs)}"
            parent.log_params(params)
            for info, role in lineage:
                parent.log_dataset(info, role=role)
            tracker.flush()  # trials in other processes nest under it
            spec = JobSpec(
                job_id=job_id, algorithm=est.algo, hyperparameters=dict(space.fixed), target=est.target,
                recipe=self._recipe_spec(ws), experiment=est.experiment, timeout=est.timeout, seed=est.seed,
                problem_type=problem_type, roles=dict(est.roles), objective=self.objective,
                direction=self.direction, strategy=self.strategy, max_trials=self.max_trials,
                space=space.to_dict(),
                early_stopping=self.early_stopping.to_dict() if self.early_stopping else None,
                completion=self.completion.to_dict(), train=train_ref, validation=val_ref,
                parent_run_id=parent.id, sampler_seed=self.seed, max_steps=self.max_steps,
                report_every=report_interval(self.max_steps), register_as=self.register_as,
                created_at=time.time(), warm_start=self.warm_start.to_dict() if self.warm_start else None,
                cv_folds=self.cv_folds, refit=self.refit,
            )
            study = optuna.create_study(storage=studies.storage(job_id), study_name=job_id, direction=(
                "maximize" if self.direction == "maximize" else "minimize"),
                                        sampler=optuna.samplers.RandomSampler(), pruner=optuna.pruners.NopPruner())
            study.set_user_attr(SPEC_ATTR, spec.to_dict())
            study.set_user_attr(STATUS_ATTR, IN_PROGRESS)
            if self.warm_start is not None:
                n = seed_study(study, spec, space, self.warm_start,
                               [(p.spec, p.trials) for p in parents if p.spec is not None])
                parent.log_metric("warm_start_trials", n)
                log.info("warm start: %s %d trial(s) from %s", "copied" if self.warm_start.type == "identical"
                         else "queued", n, ", ".join(self.warm_start.jobs))
        except BaseException as e:
            parent.end("FAILED", f"{type(e).__name__}: {e}")
            raise
        return study, spec, parent, (train_obj, val_obj)

    def _reopen(self, studies: Studies, tracker: Tracker, job_id: str) -> tuple[optuna.study.Study, JobSpec, Run]:
        import optuna

        study = load_study(studies, job_id)
        storage = studies.storage(job_id)
        spec = JobSpec.from_dict(study.user_attrs[SPEC_ATTR])
        changes: dict[str, Any] = {"max_trials": self.max_trials}
        if spec.max_trials != self.max_trials:
            spec = replace(spec, **changes)
            study.set_user_attr(SPEC_ATTR, spec.to_dict())
        sid = storage.get_study_id_from_name(job_id)
        interrupted = 0
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            tid = storage.get_trial_id_from_study_id_trial_number(sid, t.number)
            storage.set_trial_user_attr(tid, INTERRUPTED_ATTR, True)
            storage.set_trial_user_attr(tid, MESSAGE_ATTR, "interrupted: the tuning job's process stopped")
            storage.set_trial_state_values(tid, optuna.trial.TrialState.FAIL)
            interrupted += 1
        for child in tracker.child_runs(spec.parent_run_id):
            if child.status == "RUNNING":
                _reattach(tracker, child.id).end("KILLED", "interrupted: the tuning job's process stopped")
        if interrupted:
            log.info("resuming %s: %d interrupted trial(s) marked failed (not counted)", job_id, interrupted)
        study.set_user_attr(STATUS_ATTR, IN_PROGRESS)
        study.set_user_attr(REASON_ATTR, None)
        study.set_user_attr(ERROR_ATTR, None)
        parent = _reattach(tracker, spec.parent_run_id)
        parent.set_tags({"tuning.status": IN_PROGRESS, "tuning.resumed": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                     time.gmtime())})
        return study, spec, parent

    # -- running the trials -----------------------------------------------------------------------------
    def _executor(self) -> tuple[Executor, bool]:
        from loopml.compute import InlineExecutor, LocalExecutor, ThreadExecutor

        ex = self.executor
        if not isinstance(ex, str):
            return ex, False
        if ex == "inline" or (ex in ("local", "processes") and self.max_parallel == 1):
            return InlineExecutor(), True
        if ex == "local":  # the training runs in job processes; a thread only coordinates its trial
            return ThreadExecutor(self.max_parallel, thread_name_prefix="loopml-trial"), True
        if ex == "ray":
            from loopml.compute.ray import RayExecutor

            return RayExecutor(self.max_parallel, address=self.ray_address), True
        env = {}
        if "OMP_NUM_THREADS" not in os.environ:  # P trainings at once share the cores
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.max_parallel))
        return LocalExecutor(self.max_parallel, env=env), True

    def _job_env(self, executor: Executor) -> dict[str, str]:
        """Environment of the trials' job processes: P trainings at once share the cores."""
        if executor.max_workers <= 1 or "OMP_NUM_THREADS" in os.environ:
            return {}
        return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // executor.max_workers))}

    def _drive(
        self, ws: Workspace, tracker: Tracker, study: optuna.study.Study, spec: JobSpec, parent: Run,
        data: tuple[Any, Any] | None, on_trial: TrialCallback | None,
    ) -> TuningResult:
        from loopml.tune._trial import TrialRunner, TrialTask, run_trial

        space = SearchSpace.from_dict(spec.space)
        trials = [trial_info(t, space) for t in study.get_trials(deepcopy=False)]
        own = [t for t in trials if t.counted]
        finished = sorted((t for t in own if t.state in ("COMPLETE", "PRUNED", "FAIL")),
                          key=lambda t: (t.end_time is None, t.end_time or 0, t.number))
        values: list[float | None] = [t.value for t in finished]
        best = max((v for v in values if v is not None), default=None) if spec.direction == "maximize" else \
            min((v for v in values if v is not None), default=None)
        done = len(finished)
        remaining = spec.max_trials - sum(1 for t in own if t.state != "WAITING")
        succeeded = any(t.state in ("COMPLETE", "PRUNED") for t in finished)
        failures = 0
        executor, owned = self._executor()
        runner: TrialRunner | None = None
        fn: Callable[[TrialTask], TrialInfo] = run_trial
        if executor.in_process:
            runner = TrialRunner(ws, job_env=self._job_env(executor))
            if data is not None:
                runner.prime(spec.job_id, *data)
            fn = runner.run
        task = TrialTask(str(ws.home), ws.settings, spec.job_id, parallel=self.max_parallel > 1)
        started = time.monotonic()
        reason: str | None = None
        error: str | None = None
        in_flight: set[Future[TrialInfo]] = set()
        status = COMPLETED
        refit_run: str | None = None
        log.info("tuning job %s: %s on %s, %d trial(s) to run, %d at once", spec.job_id, spec.strategy,
                 spec.objective, max(remaining, 0), executor.max_workers)
        try:
            while True:
                while reason is None and error is None and remaining > 0 and len(in_flight) < executor.max_workers:
                    reason = self.completion.check(values, spec.direction, time.monotonic() - started)
                    if reason is not None:
                        break
                    try:
                        in_flight.add(executor.submit(fn, task))
                    except Exception as e:  # the executor itself broke (a worker process died)
                        error = f"the {executor.name} executor failed: {type(e).__name__}: {e}"
                        break
                    remaining -= 1
                if not in_flight:
                    break
                finished_now, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished_now:
                    try:
                        info = fut.result()
                    except Exception as e:
                        failures += 1
                        log.error("a trial of %s could not run: %s: %s", spec.job_id, type(e).__name__, e)
                        if not succeeded and failures >= MAX_FAILURES_AT_START:
                            error = f"trials could not run: {type(e).__name__}: {' '.join(str(e).split())}"
                        continue
                    done += 1
                    values.append(info.value)
                    if info.value is not None and (best is None or (
                            info.value > best if spec.direction == "maximize" else info.value < best)):
                        best = info.value
                    self._record_trial(parent, info, best, spec)
                    if info.state == "FAIL":
                        failures += 1
                        if not succeeded and failures >= MAX_FAILURES_AT_START:
                            error = (f"the first {failures} trials failed; the last said: {info.message} "
                                     f"(see `loopml runs show {info.run_id}`)" if info.run_id else
                                     f"the first {failures} trials failed; the last said: {info.message}")
                    else:
                        succeeded = True
                    if on_trial is not None:
                        on_trial(info, done, spec.max_trials)
                    if reason is None:
                        reason = self.completion.check(values, spec.direction, time.monotonic() - started)
            if error is None and spec.cv_folds and spec.refit:
                # while this process's training process is still warm
                ctx = runner.context(task) if runner is not None else None
                refit_run = self._refit(ws, tracker, study, spec, data, ctx.estimator if ctx else None,
                                        ctx.train if ctx else None)
        except BaseException as e:  # Ctrl-C or a bug: the job is stopped, resumable
            for fut in in_flight:
                fut.cancel()
            if runner is not None:  # trials running in other threads of this process: stop their training
                runner.abort()
            status = STOPPED
            self._finish(ws, study, spec, parent, status, None, f"{type(e).__name__}: {e}")
            raise
        finally:
            if runner is not None:
                runner.close()
            if owned:
                executor.shutdown(wait=status != STOPPED)
        if error is not None:
            self._finish(ws, study, spec, parent, FAILED, reason, error)
            raise TuningError(f"tuning job {spec.job_id} failed: {error}", job_id=spec.job_id)
        if reason is not None:
            log.info("tuning job %s stops early: %s", spec.job_id, reason)
        return self._finish(ws, study, spec, parent, COMPLETED, reason, None, refit_run=refit_run)

    def _record_trial(self, parent: Run, info: TrialInfo, best: float | None, spec: JobSpec) -> None:
        if info.value is not None:
            parent.log_metric("objective", info.value, step=info.number)
        if best is not None:
            parent.log_metric("best_objective", best, step=info.number)
        shown = f"{spec.objective}={info.value:.6g}" if info.value is not None else (info.message or "")
        log.info("trial %d %s %s (%.1f s)", info.number, info.state, shown, info.duration_s or 0.0)

    def _refit(
        self, ws: Workspace, tracker: Tracker, study: optuna.study.Study, spec: JobSpec, data: tuple[Any, Any] | None,
        warm: Estimator | None, train: Any,
    ) -> str | None:
        """Train the best configuration on all the training data (cross-validated jobs); its run id."""
        from loopml.tune._trial import build_estimator, read_table

        best = result_of(study).best_trial
        if best is None:
            return None
        if train is None:
            train = data[0] if data is not None else read_table(ws, spec.train)
        base = warm if warm is not None else build_estimator(spec, ws, tracker, reuse_process=False)
        est = base.clone(hyperparameters=best.params)
        try:
            result = est.fit(train, run_name=f"{spec.job_id[:190]}-best", parent_run_id=spec.parent_run_id,
                             tags={"tuning.job": spec.job_id, "tuning.refit_of_trial": best.number},
                             on_log=lambda line: log.debug("%s", line))
        except LoopmlError as e:  # the job's result stands; only its model is missing
            log.error("tuning job %s: training the best configuration on all the data failed: %s", spec.job_id, e)
            return None
        finally:
            if warm is None:
                est.close()
        log.info("tuning job %s: trained the best configuration (trial %d) on all the data: run %s",
                 spec.job_id, best.number, result.run_id)
        return result.run_id

    def _finish(
        self, ws: Workspace, study: optuna.study.Study, spec: JobSpec, parent: Run, status: str,
        reason: str | None, error: str | None, *, refit_run: str | None = None,
    ) -> TuningResult:
        result = result_of(study)
        result.status = status
        result.stopped_reason = reason
        result.error = error
        counts = result.counts()
        best = result.best_trial
        tags: dict[str, Any] = {"tuning.status": status}
        if best is not None:
            tags.update({"tuning.best_trial": best.number, "tuning.best_run_id": best.run_id or ""})
            parent.log_metrics({f"best.{k}": v for k, v in best.params.items()
                                if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if reason:
            tags["tuning.stopped_reason"] = reason
        parent.log_metrics({"trials_completed": counts.get("COMPLETE", 0), "trials_pruned": counts.get("PRUNED", 0),
                            "trials_failed": counts.get("FAIL", 0)})
        model_run = refit_run if spec.cv_folds else (best.run_id if best is not None else None)
        if model_run is not None:
            result.model_run_id = model_run
            study.set_user_attr(MODEL_RUN_ATTR, model_run)
            tags["tuning.model_run_id"] = model_run
        if status == COMPLETED and best is not None and spec.register_as and model_run:
            from loopml.registry import register_model

            mv = register_model(ws, model_run, spec.register_as,
                                description=f"best trial {best.number} of tuning job {spec.job_id} "
                                            f"({spec.objective}={best.value:.6g})")
            result.model_version = mv.ref
            study.set_user_attr(MODEL_ATTR, mv.ref)
            tags["tuning.model_version"] = mv.ref
        parent.set_tags(tags)
        try:
            parent.log_bytes("tuning/trials.csv", result.trials_frame().to_csv(index=False).encode())
        except LoopmlError as e:  # the table is a convenience; the study has it all
            log.warning("could not store the trial table of %s: %s", spec.job_id, e)
        study.set_user_attr(STATUS_ATTR, status)
        study.set_user_attr(REASON_ATTR, reason)
        study.set_user_attr(ERROR_ATTR, error)
        study.set_user_attr(UPDATED_ATTR, time.time())
        if status == COMPLETED:
            parent.end("FINISHED", reason)
        else:
            parent.end("KILLED" if status == STOPPED else "FAILED", error)
        return result


__all__ = ["DEFAULT_MAX_TRIALS", "HyperparameterTuner", "TuningError"]
