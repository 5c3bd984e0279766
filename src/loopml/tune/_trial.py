"""One trial of a tuning job, runnable in any process that reaches the workspace.

:func:`run_trial` is what executors run: it opens (and caches, per process)
the job's context — the workspace, the Optuna study, the estimator with a warm
training process, the data — asks the study for a trial, trains it as a child
run of the job's run, reports per-iteration values for pruning and tells the
study the outcome. The coordinating process only counts trials and decides
when to stop.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopmlError
from loopml.tune.jobs import (
    DURATION_ATTR,
    INTERRUPTED_ATTR,
    MESSAGE_ATTR,
    PRUNED_STEP_ATTR,
    RUN_ATTR,
    TRIAL_ATTR,
    JobSpec,
    TrialInfo,
    load_study,
)

if TYPE_CHECKING:
    import optuna

    from loopml.track import Run, Tracker
    from loopml.train import CrossValidationResult, Estimator, TrainingResult
    from loopml.tune.ranges import SearchSpace
    from loopml.workspace import Settings, Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial: where the workspace is, and which job.

    ``settings`` travel with the task so a worker sees the coordinator's
    metadata and artifact URLs (including ``LOOPML_*`` overrides).
    """

    home: str
    settings: Settings
    job_id: str
    parallel: bool = False


def read_table(ws: Workspace, ref: Mapping[str, Any]) -> Any:
    """The training input a job spec names: a ``NAME:VER`` string or an Arrow table."""
    if "dataset" in ref:
        return str(ref["dataset"])
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(ws.artifacts.get_bytes(str(ref["artifact"]))))


def build_estimator(spec: JobSpec, ws: Workspace, tracker: Tracker | None, *, reuse_process: bool = True,
                    trials: bool = False) -> Estimator:
    """The job's estimator (fixed hyperparameters only), by default with a reusable training process.

    Trials of one job run one after another in the same warm training
    process; a pruned trial stops at its next iteration and leaves the
    process ready for the next trial. With ``trials``, the jobs compute
    only the objective at each iteration (what the tuner watches).
    """
    from loopml.train import Estimator

    recipe: Any = spec.recipe
    if isinstance(recipe, Mapping):
        if "spec" in recipe:
            from loopml.prep import Recipe

            recipe = Recipe.from_dict(recipe["spec"])
        elif "fitted_artifact" in recipe:
            from loopml.prep import FittedRecipe

            recipe = FittedRecipe.from_bytes(ws.artifacts.get_bytes(str(recipe["fitted_artifact"])))
    return Estimator(
        spec.algorithm, spec.hyperparameters, target=spec.target, recipe=recipe, experiment=spec.experiment,
        timeout=spec.timeout, seed=spec.seed, problem_type=spec.problem_type, roles=spec.roles, ws=ws,
        tracker=tracker, reuse_process=reuse_process,
        iteration_metrics=[spec.objective] if trials and spec.objective.startswith("validation:") else None,
    )


class _JobContext:
    """A job as one process sees it: open stores, the study, a warm estimator, the data."""

    def __init__(self, task: TrialTask, ws: Workspace | None, data: tuple[Any, Any] | None,
                 job_env: Mapping[str, str] | None = None) -> None:
        import optuna

        from loopml.track import Tracker
        from loopml.tune._storage import open_studies
        from loopml.tune.ranges import SearchSpace
        from loopml.tune.strategies import EarlyStopping, make_sampler
        from loopml.workspace import Workspace

        self.own_ws = ws is None
        self.ws = ws if ws is not None else Workspace(Path(task.home), task.settings)
        self.tracker = Tracker(self.ws)
        self.studies = open_studies(self.ws.settings.metadata_url)
        probe = load_study(self.studies, task.job_id)
        self.spec = JobSpec.from_dict(probe.user_attrs["loopml.job"])
        self.space: SearchSpace = SearchSpace.from_dict(self.spec.space)
        # Seed per process: reproducible for one worker, distinct streams for several. Not for a grid:
        # Optuna's GridSampler shuffles the grid with its seed and numbers the points in that order, so
        # every worker needs the same order, or two workers' grid ids name the same point.
        salt = len(probe.get_trials(deepcopy=False)) + (os.getpid() if task.parallel else 0)
        seed = self.spec.sampler_seed + (0 if self.spec.strategy == "grid" else salt)
        sampler = make_sampler(self.spec.strategy, self.space, seed=seed, parallel=task.parallel)
        early = EarlyStopping.parse(self.spec.early_stopping)
        self.pruning = early is not None
        pruner = early.make_pruner(self.spec.max_steps, self.spec.cv_folds) if early else optuna.pruners.NopPruner()
        self.study = optuna.load_study(study_name=task.job_id, storage=self.studies.storage(task.job_id), sampler=sampler,
                                       pruner=pruner)
        self.estimator = build_estimator(self.spec, self.ws, self.tracker, trials=True)
        self.estimator.job_env = dict(job_env or {})
        # the job process imports its library while the data are read
        self.estimator.warm_up(cv=self.spec.cv_folds is not None)
        if data is not None:
            train, validation = data
        else:
            train = read_table(self.ws, self.spec.train)
            validation = read_table(self.ws, self.spec.validation) if self.spec.validation else None
        # in-memory rows are written once for all the trials (a warm job process then keeps them)
        self.staged_dir = self.ws.home / "jobs" / f"staged-{uuid.uuid4().hex}"
        self.train: Any = self._stage(train, "train")
        self.validation: Any = self._stage(validation, "validation")

    def _stage(self, data: Any, role: str) -> Any:
        import pandas as pd
        import pyarrow as pa

        from loopml.train.estimator import stage_input

        if not isinstance(data, (pd.DataFrame, pa.Table)):
            return data  # None, or a dataset NAME:VER or DatasetVersionInfo (read from the catalog)
        self.staged_dir.mkdir(parents=True, exist_ok=True)
        return stage_input(data, self.staged_dir / f"{role}.arrow", role)

    def close(self) -> None:
        try:
            self.estimator.close()
            self.tracker.close()
        finally:
            shutil.rmtree(self.staged_dir, ignore_errors=True)
            self.studies.close()
            if self.own_ws:
                self.ws.close()


class _LocalPruning:
    """Optuna's percentile/median rule, decided against an in-memory copy of the study's finished trials.

    ``trial.should_prune()`` on the database storage reads the study back on
    every call (milliseconds, at every report of every trial). The median rule
    only reads the completed trials and the trial's own values, so the copy is
    taken when the trial starts and refreshed every :attr:`REFRESH_S` seconds
    (trials that other workers finish meanwhile count from then on); the
    values are still written to the study as they come. Hyperband and
    successive halving record their rungs in the study, so they ask it.
    """

    REFRESH_S = 5.0

    def __init__(self, study: optuna.study.Study, pruner: optuna.pruners.BasePruner) -> None:
        self.study = study
        self.pruner = pruner
        self.values: dict[int, float] = {}
        self._mirror: optuna.study.Study | None = None
        self._taken = 0.0

    def _copy(self) -> optuna.study.Study:
        import optuna

        if self._mirror is None or time.monotonic() - self._taken > self.REFRESH_S:
            mirror = optuna.create_study(direction=self.study.direction, study_name=self.study.study_name,
                                         sampler=optuna.samplers.RandomSampler(), pruner=self.pruner)
            mirror.add_trials(self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
            self._mirror, self._taken = mirror, time.monotonic()
        return self._mirror

    def should_prune(self, step: int, value: float) -> bool:
        """Whether the trial, having reported ``value`` at ``step``, should stop."""
        import optuna

        self.values[step] = value
        frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, intermediate_values=self.values)
        return bool(self.pruner.prune(self._copy(), frozen))


class _Reporter:
    """The estimator's per-iteration callback: report the objective to Optuna, prune when told."""

    def __init__(self, ctx: _JobContext, trial: optuna.trial.Trial, run_name: str) -> None:
        import optuna

        self.ctx = ctx
        self.trial = trial
        self.run_name = run_name
        self.key = ctx.spec.objective
        self.every = max(1, int(ctx.spec.report_every))
        self.run: Run | None = None
        self.pruned_step: int | None = None
        self.last_value: float | None = None
        pruner = ctx.study.pruner
        self.local = _LocalPruning(ctx.study, pruner) if isinstance(
            pruner, optuna.pruners.PercentilePruner) and ctx.pruning else None

    def find_run(self) -> Run | None:
        if self.run is None:
            for r in self.ctx.tracker.open_runs():
                if r.name == self.run_name:
                    self.run = r
                    break
        return self.run

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        import optuna

        self.find_run()
        value = metrics.get(self.key)
        if value is None or not self.ctx.pruning or step % self.every:
            return
        self.last_value = float(value)
        self.trial.report(self.last_value, step)
        if self.local.should_prune(step, self.last_value) if self.local is not None else self.trial.should_prune():
            self.pruned_step = step
            if self.run is not None:
                self.run.set_tags({"tuning.state": "PRUNED", "tuning.pruned_step": step})
            raise optuna.TrialPruned(f"pruned at iteration {step} with {self.key}={float(value):.6g}")


class TrialRunner:
    """Runs trials; keeps one context per job for the life of the process (or of the runner).

    Parameters
    ----------
    ws
        Use this open workspace instead of opening one from the task (the
        caller's own process).
    max_jobs
        Contexts kept at once; the least recently used is closed beyond that
        (a long-lived Ray worker serves trials of many jobs over time).
    """

    def __init__(self, ws: Workspace | None = None, *, max_jobs: int = 2,
                 job_env: Mapping[str, str] | None = None) -> None:
        self._ws = ws
        self._max_jobs = max_jobs
        self._job_env = dict(job_env or {})
        self._contexts: OrderedDict[str, _JobContext] = OrderedDict()
        self._data: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def prime(self, job_id: str, train: Any, validation: Any) -> None:
        """Give the runner a job's data already in memory (saves reading it back)."""
        self._data[job_id] = (train, validation)

    def context(self, task: TrialTask) -> _JobContext:
        """The cached context of the task's job (opened on first use)."""
        stale: list[_JobContext] = []
        with self._lock:
            ctx = self._contexts.get(task.job_id)
            if ctx is None:
                ctx = _JobContext(task, self._ws, self._data.get(task.job_id), self._job_env)
                self._contexts[task.job_id] = ctx
            self._contexts.move_to_end(task.job_id)
            while len(self._contexts) > self._max_jobs:
                stale.append(self._contexts.popitem(last=False)[1])
        for old in stale:
            old.close()
        return ctx

    def run(self, task: TrialTask) -> TrialInfo:
        """Ask the study for a trial, train it, tell the study; return what happened."""
        import optuna

        ctx = self.context(task)
        started = time.monotonic()
        trial = ctx.study.ask()
        try:
            return self._run(ctx, trial, started)
        except BaseException as e:
            # whatever broke, the trial must not stay RUNNING in the study
            message = f"{type(e).__name__}: {' '.join(str(e).split())}"
            try:
                trial.set_user_attr(MESSAGE_ATTR, message)
                if not isinstance(e, Exception):  # Ctrl-C: not the trial's fault, not counted
                    trial.set_user_attr(INTERRUPTED_ATTR, True)
                ctx.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            except Exception as e2:
                log.warning("could not record the failure of trial %d: %s", trial.number, e2)
            if not isinstance(e, Exception):
                raise
            log.exception("trial %d of %s could not run", trial.number, ctx.spec.job_id)
            return TrialInfo(number=trial.number, state="FAIL", value=None, params={}, message=message,
                             duration_s=time.monotonic() - started)

    def _run(self, ctx: _JobContext, trial: optuna.trial.Trial, started: float) -> TrialInfo:
        import optuna

        spec = ctx.spec
        params = ctx.space.suggest(trial)  # Optuna stores them; jobs.trial_info decodes them back
        run_name = f"{spec.job_id[:190]}-{trial.number:03d}"
        reporter = _Reporter(ctx, trial, run_name)
        est = ctx.estimator.clone(hyperparameters=params)
        attrs: dict[str, Any] = {}
        state = optuna.trial.TrialState.FAIL
        value: float | None = None
        message: str | None = None
        tags = {"tuning.job": spec.job_id, "tuning.trial": trial.number}
        try:
            result: TrainingResult | CrossValidationResult
            if spec.cv_folds:
                result = est.cross_validate(ctx.train, spec.cv_folds, run_name=run_name,
                                            parent_run_id=spec.parent_run_id, tags=tags,
                                            on_log=lambda line: log.debug("%s", line), on_metric=reporter)
            else:
                result = est.fit(ctx.train, ctx.validation, run_name=run_name, parent_run_id=spec.parent_run_id,
                                 tags=tags, on_log=lambda line: log.debug("%s", line), on_metric=reporter)
        except optuna.TrialPruned as e:
            state = optuna.trial.TrialState.PRUNED
            message = str(e)
            attrs[PRUNED_STEP_ATTR] = reporter.pruned_step
            run = reporter.run
            attrs[RUN_ATTR] = run.id if run is not None else None
        except LoopmlError as e:
            message = str(e)
            run_id = getattr(e, "run_id", None) or (reporter.run.id if reporter.run else None)
            attrs[RUN_ATTR] = run_id
            log.warning("trial %d of %s failed: %s", trial.number, spec.job_id, message)
        except Exception as e:  # a crash of ours or the library's: record it, the job goes on
            message = f"{type(e).__name__}: {' '.join(str(e).split())}"
            attrs[RUN_ATTR] = reporter.run.id if reporter.run else None
            log.exception("trial %d of %s crashed", trial.number, spec.job_id)
        else:
            attrs[RUN_ATTR] = result.run_id
            raw = result.metrics.get(spec.objective)
            if raw is None or not math.isfinite(float(raw)):
                reported = ", ".join(sorted(result.metrics)) or "nothing"
                message = f"the trial reported no finite {spec.objective}; it reported {reported}"
            else:
                state = optuna.trial.TrialState.COMPLETE
                value = float(raw)
        duration = time.monotonic() - started
        attrs[DURATION_ATTR] = round(duration, 3)
        if message:
            attrs[MESSAGE_ATTR] = message
        # one attribute, one database write (each is a transaction of its own)
        trial.set_user_attr(TRIAL_ATTR, {k.removeprefix("loopml."): v for k, v in attrs.items() if v is not None})
        if state == optuna.trial.TrialState.COMPLETE:
            ctx.study.tell(trial, value)
        else:
            ctx.study.tell(trial, state=state)
        last = reporter.last_value if state == optuna.trial.TrialState.PRUNED else None
        return TrialInfo(
            number=trial.number, state=state.name, value=value, params=params, run_id=attrs.get(RUN_ATTR),
            message=message, duration_s=duration, pruned_step=attrs.get(PRUNED_STEP_ATTR), last_value=last,
        )

    def abort(self) -> None:
        """Kill the training processes of the trials running now (in other threads); they fail at once."""
        with self._lock:
            contexts = list(self._contexts.values())
        for ctx in contexts:
            ctx.estimator.abort()

    def close(self) -> None:
        """Close every job context (stops the warm training processes)."""
        with self._lock:
            contexts, self._contexts = list(self._contexts.values()), OrderedDict()
        for ctx in contexts:
            try:
                ctx.close()
            except Exception as e:  # closing must not hide the job's own outcome
                log.warning("closing tuning job %s: %s", ctx.spec.job_id, e)

    def __enter__(self) -> TrialRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A worker process of an executor serves many trials; its runner keeps each job's
# context (warm training process, open database connections) between them.
_process_runner: list[TrialRunner] = []


def run_trial(task: TrialTask) -> TrialInfo:
    """Run one trial of ``task.job_id`` in this process (the executors' entry point)."""
    if not _process_runner:
        logging.getLogger("optuna").setLevel(logging.WARNING)
        runner = TrialRunner()
        _process_runner.append(runner)
        atexit.register(runner.close)
    return _process_runner[0].run(task)


__all__ = ["TrialRunner", "TrialTask", "run_trial"]
