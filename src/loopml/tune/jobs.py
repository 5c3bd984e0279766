"""Tuning jobs as stored: the job's spec, its trials, its result; listing and showing jobs.

A tuning job is an Optuna study named by the job id in the workspace's
metadata database. The study's user attributes hold the job's spec (what
:class:`~loopml.tune.HyperparameterTuner` was given, so any process can run its
trials and a killed job can resume) and its status; each trial's user
attributes hold the hyperparameters it trained with, its tracking run and,
for a pruned or failed trial, why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from loopml.tune._storage import Studies
    from loopml.workspace import Workspace

#: study user attribute holding the job spec (its presence marks a loopml study)
SPEC_ATTR = "loopml.job"
STATUS_ATTR = "loopml.status"
REASON_ATTR = "loopml.stopped_reason"
ERROR_ATTR = "loopml.error"
MODEL_ATTR = "loopml.model_version"
MODEL_RUN_ATTR = "loopml.model_run_id"
UPDATED_ATTR = "loopml.updated_at"
# trial user attributes
PARAMS_ATTR = "loopml.params"
RUN_ATTR = "loopml.run_id"
MESSAGE_ATTR = "loopml.message"
PRUNED_STEP_ATTR = "loopml.pruned_step"
INTERRUPTED_ATTR = "loopml.interrupted"
WARM_ATTR = "loopml.warm_start_from"
DURATION_ATTR = "loopml.duration_s"
#: a finished trial's run_id, duration_s, message and pruned_step in one attribute (one write);
#: the separate attributes above are read too (warm start, interrupted trials, older jobs)
TRIAL_ATTR = "loopml.trial"

#: job statuses (SageMaker's HyperParameterTuningJobStatus)
IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
STOPPED = "Stopped"
FAILED = "Failed"


@dataclass(frozen=True)
class JobSpec:
    """Everything a process needs to run trials of a job (stored as JSON in the study).

    Data are ``{"dataset": "name:ver"}`` (a catalog version) or
    ``{"artifact": sha256, "rows": n}`` (a table stored as Parquet in the artifact store).
    """

    job_id: str
    algorithm: str
    hyperparameters: dict[str, Any]
    target: str | None
    recipe: Any
    experiment: str
    timeout: float | None
    seed: int
    problem_type: str | None
    roles: dict[str, str]
    objective: str
    direction: str
    strategy: str
    max_trials: int
    space: dict[str, Any]
    early_stopping: dict[str, Any] | None
    completion: dict[str, Any]
    train: dict[str, Any]
    validation: dict[str, Any] | None
    parent_run_id: str
    sampler_seed: int
    max_steps: int | None = None
    report_every: int = 1
    register_as: str | None = None
    created_at: float = 0.0
    warm_start: dict[str, Any] | None = None
    cv_folds: int | None = None
    refit: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Read :meth:`to_dict`'s form (unknown keys from newer versions are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class TrialInfo:
    """One trial of a tuning job.

    Attributes
    ----------
    number
        The trial's number in the job (from 0).
    state
        ``COMPLETE``, ``PRUNED`` (stopped early), ``FAIL``, ``RUNNING`` or ``WAITING``.
    value
        The objective (None unless COMPLETE; a pruned trial's last reported value is in ``last_value``).
    params
        The hyperparameters it searched.
    run_id
        Its tracking run (a child of the job's run).
    message
        Why it was pruned or failed.
    pruned_step
        The iteration it was stopped at.
    interrupted
        It was running when the job's process died (not counted against max_trials).
    warm_start_from
        The earlier job it was copied from (warm start), if any.
    """

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    run_id: str | None = None
    message: str | None = None
    duration_s: float | None = None
    pruned_step: int | None = None
    last_value: float | None = None
    interrupted: bool = False
    warm_start_from: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def counted(self) -> bool:
        """Whether the trial counts against the job's max_trials."""
        return not self.interrupted and self.warm_start_from is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "number": self.number, "state": self.state, "value": self.value, "params": self.params,
            "run_id": self.run_id, "message": self.message, "duration_s": self.duration_s,
            "pruned_step": self.pruned_step, "last_value": self.last_value, "interrupted": self.interrupted,
            "warm_start_from": self.warm_start_from,
            "start_time": self.start_time.isoformat() if self.start_time else None,
            "end_time": self.end_time.isoformat() if self.end_time else None,
        }


@dataclass
class TuningResult:
    """A tuning job: its spec, status, trials and best trial.

    Attributes
    ----------
    job_id
        The job (``loopml tune show JOB``).
    run_id
        The job's tracking run; every trial's run is its child.
    status
        ``InProgress``, ``Completed``, ``Stopped`` (by a completion criterion) or ``Failed``.
    objective, direction
        What was optimised.
    best_trial
        The best completed trial of this job (warm-start trials excluded), or None.
    trials
        Every trial, by number.
    stopped_reason
        Why the job ended before max_trials (completion criteria), if it did.
    model_version
        ``name:version`` of the registered best model, when ``register_as`` was given.
    model_run_id
        The run holding the best model: the best trial's run, or for a
        cross-validated job the run that trained the best configuration on all
        the data when the job completed.
    """

    job_id: str
    run_id: str
    status: str
    objective: str
    direction: str
    strategy: str
    algorithm: str
    max_trials: int
    trials: list[TrialInfo] = field(default_factory=list)
    best_trial: TrialInfo | None = None
    stopped_reason: str | None = None
    error: str | None = None
    model_version: str | None = None
    duration_s: float | None = None
    spec: JobSpec | None = field(default=None, repr=False)
    model_run_id: str | None = None

    @property
    def best_params(self) -> dict[str, Any]:
        """The best trial's searched hyperparameters (empty when no trial completed)."""
        return dict(self.best_trial.params) if self.best_trial else {}

    @property
    def best_hyperparameters(self) -> dict[str, Any]:
        """The best trial's searched hyperparameters plus the fixed ones (to train it again)."""
        fixed = dict(self.spec.hyperparameters) if self.spec else {}
        return {**fixed, **self.best_params}

    @property
    def best_value(self) -> float | None:
        """The best objective value."""
        return self.best_trial.value if self.best_trial else None

    @property
    def best_run_id(self) -> str | None:
        """The tracking run (and model package) of the best trial."""
        return self.best_trial.run_id if self.best_trial else None

    def counts(self) -> dict[str, int]:
        """Trials by state (counted trials only), e.g. ``{"COMPLETE": 8, "PRUNED": 2}``."""
        out: dict[str, int] = {}
        for t in self.trials:
            if t.counted:
                out[t.state] = out.get(t.state, 0) + 1
        return out

    def trials_frame(self) -> pd.DataFrame:
        """The trials as a table: number, state, value, one column per hyperparameter, run id."""
        import pandas as pd

        rows = []
        for t in self.trials:
            rows.append({"number": t.number, "state": t.state, "value": t.value, **t.params,
                         "run_id": t.run_id, "duration_s": t.duration_s, "pruned_step": t.pruned_step,
                         "warm_start_from": t.warm_start_from, "interrupted": t.interrupted})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``loopml tune --json``)."""
        return {
            "job_id": self.job_id, "run_id": self.run_id, "status": self.status, "objective": self.objective,
            "direction": self.direction, "strategy": self.strategy, "algorithm": self.algorithm,
            "max_trials": self.max_trials, "counts": self.counts(),
            "best_trial": self.best_trial.to_dict() if self.best_trial else None,
            "best_value": self.best_value, "best_params": self.best_params, "best_run_id": self.best_run_id,
            "stopped_reason": self.stopped_reason, "error": self.error, "model_version": self.model_version,
            "model_run_id": self.model_run_id, "cv_folds": self.spec.cv_folds if self.spec else None,
            "duration_s": self.duration_s, "trials": [t.to_dict() for t in self.trials],
        }


# -- reading studies --------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) else f


def trial_info(t: optuna.trial.FrozenTrial, space: Any = None) -> TrialInfo:
    """A :class:`TrialInfo` from an Optuna trial (``space`` decodes params stored by Optuna)."""
    attrs = dict(t.user_attrs)
    packed = attrs.get(TRIAL_ATTR)
    if isinstance(packed, Mapping):
        attrs.update({f"loopml.{k}": v for k, v in packed.items()})
    params = attrs.get(PARAMS_ATTR)
    if params is None:
        params = space.decode(t.params) if space is not None else dict(t.params)
    last = t.intermediate_values[t.last_step] if t.last_step is not None else None
    duration = attrs.get(DURATION_ATTR)
    if duration is None and t.datetime_start and t.datetime_complete:
        duration = (t.datetime_complete - t.datetime_start).total_seconds()
    return TrialInfo(
        number=t.number, state=t.state.name, value=_num(t.value) if t.state.name == "COMPLETE" else None,
        params=dict(params), run_id=attrs.get(RUN_ATTR), message=attrs.get(MESSAGE_ATTR),
        duration_s=duration, pruned_step=attrs.get(PRUNED_STEP_ATTR), last_value=_num(last),
        interrupted=bool(attrs.get(INTERRUPTED_ATTR)), warm_start_from=attrs.get(WARM_ATTR),
        start_time=_utc(t.datetime_start), end_time=_utc(t.datetime_complete),
    )


def _utc(d: datetime | None) -> datetime | None:
    return None if d is None else (d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d)


def best_of(trials: list[TrialInfo], direction: str) -> TrialInfo | None:
    """The best COMPLETE trial of the job itself (warm-start trials excluded)."""
    own = [t for t in trials if t.state == "COMPLETE" and t.value is not None and t.warm_start_from is None]
    if not own:
        return None
    pick = max if direction == "maximize" else min
    return pick(own, key=lambda t: (t.value, -t.number) if direction == "maximize" else (t.value, t.number))


def result_of(study: optuna.study.Study) -> TuningResult:
    """The :class:`TuningResult` of a loopml study, read from its storage."""
    from loopml.tune.ranges import SearchSpace

    attrs = study.user_attrs
    spec = JobSpec.from_dict(attrs[SPEC_ATTR])
    space = SearchSpace.from_dict(spec.space)
    trials = [trial_info(t, space) for t in study.get_trials(deepcopy=False)]
    done = [t.end_time for t in trials if t.end_time]
    end = max(done).timestamp() if done and attrs.get(STATUS_ATTR) != IN_PROGRESS else time.time()
    return TuningResult(
        job_id=spec.job_id, run_id=spec.parent_run_id, status=str(attrs.get(STATUS_ATTR, IN_PROGRESS)),
        objective=spec.objective, direction=spec.direction, strategy=spec.strategy,
        algorithm=spec.algorithm, max_trials=spec.max_trials, trials=trials,
        best_trial=best_of(trials, spec.direction), stopped_reason=attrs.get(REASON_ATTR),
        error=attrs.get(ERROR_ATTR), model_version=attrs.get(MODEL_ATTR),
        duration_s=max(0.0, end - spec.created_at) if spec.created_at else None, spec=spec,
        model_run_id=attrs.get(MODEL_RUN_ATTR),
    )


def load_study(studies: Studies, job_id: str) -> optuna.study.Study:
    """The study of a tuning job, or NotFound."""
    import optuna

    try:
        study = optuna.load_study(study_name=job_id, storage=studies.storage(job_id))
    except KeyError:
        raise NotFound(f"no tuning job {job_id!r}; see `loopml tune list`") from None
    if SPEC_ATTR not in study.user_attrs:
        raise InvalidInput(f"study {job_id!r} in the metadata database was not made by loopml tune")
    return study


def get_tuning_job(ws: Workspace, job_id: str) -> TuningResult:
    """A tuning job with its trials (``loopml tune show JOB``).

    Raises
    ------
    NotFound
        No such job.
    """
    from loopml.tune._storage import open_studies

    with open_studies(ws.settings.metadata_url) as studies:
        return result_of(load_study(studies, job_id))


@dataclass(frozen=True)
class TuningJobSummary:
    """One line of ``loopml tune list``."""

    job_id: str
    status: str
    algorithm: str
    strategy: str
    objective: str
    direction: str
    max_trials: int
    n_trials: int
    best_value: float | None
    run_id: str
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"job_id": self.job_id, "status": self.status, "algorithm": self.algorithm,
                "strategy": self.strategy, "objective": self.objective, "direction": self.direction,
                "max_trials": self.max_trials, "n_trials": self.n_trials, "best_value": self.best_value,
                "run_id": self.run_id,
                "created_at": self.created_at.isoformat() if self.created_at else None}


def list_tuning_jobs(ws: Workspace) -> list[TuningJobSummary]:
    """Every tuning job of the workspace, newest first."""
    import optuna

    from loopml.tune._storage import open_studies

    with open_studies(ws.settings.metadata_url) as studies:
        out: list[TuningJobSummary] = []
        for name in studies.names():
            try:
                study = optuna.load_study(study_name=name, storage=studies.storage(name))
            except KeyError:  # a journal whose study was never created
                continue
            raw = study.user_attrs.get(SPEC_ATTR)
            if raw is None:
                continue
            spec = JobSpec.from_dict(raw)
            trials = [trial_info(t) for t in study.get_trials(deepcopy=False)]
            best = best_of(trials, spec.direction)
            out.append(TuningJobSummary(
                job_id=spec.job_id, status=str(study.user_attrs.get(STATUS_ATTR, IN_PROGRESS)),
                algorithm=spec.algorithm, strategy=spec.strategy, objective=spec.objective,
                direction=spec.direction, max_trials=spec.max_trials,
                n_trials=sum(1 for t in trials if t.counted), best_value=best.value if best else None,
                run_id=spec.parent_run_id,
                created_at=datetime.fromtimestamp(spec.created_at, timezone.utc) if spec.created_at else None,
            ))
    out.sort(key=lambda j: j.created_at or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    return out


__all__ = [
    "COMPLETED",
    "FAILED",
    "IN_PROGRESS",
    "STOPPED",
    "JobSpec",
    "TrialInfo",
    "TuningJobSummary",
    "TuningResult",
    "get_tuning_job",
    "list_tuning_jobs",
]
