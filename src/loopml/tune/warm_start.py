"""Warm start: seed a new tuning job with what earlier jobs learned.

SageMaker's ``WarmStartConfig`` with its two types:

- ``identical`` (``IdenticalDataAndAlgorithm``): same algorithm and objective;
  the earlier jobs' completed trials are copied into the new study with their
  values, so the sampler starts from them. They are not trained again and do
  not count against ``max_trials`` (nor can they be the new job's best trial).
- ``transfer`` (``TransferLearning``): other data or a related setup; the
  ``top_k`` best configurations of the earlier jobs are queued as the new
  job's first trials and trained again on the new data.

Only hyperparameters that the new search space searches, with values inside
its ranges, carry over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopml.errors import InvalidInput

if TYPE_CHECKING:
    import optuna

    from loopml.tune.jobs import JobSpec
    from loopml.tune.ranges import SearchSpace

WARM_START_TYPES: tuple[str, ...] = ("identical", "transfer")
#: SageMaker allows up to 5 parent jobs
MAX_PARENT_JOBS = 5
_TYPE_ALIASES = {"identicaldataandalgorithm": "identical", "transferlearning": "transfer"}


@dataclass(frozen=True)
class WarmStart:
    """Earlier tuning jobs to start from.

    Parameters
    ----------
    jobs
        Ids of earlier tuning jobs (at most 5).
    type
        ``identical`` (copy their trials) or ``transfer`` (re-run their best configurations).
    top_k
        ``transfer``: how many of the best configurations to re-run.
    """

    jobs: tuple[str, ...]
    type: str = "identical"
    top_k: int = 5

    def __post_init__(self) -> None:
        jobs = (self.jobs,) if isinstance(self.jobs, str) else tuple(self.jobs)
        if not jobs:
            raise InvalidInput("warm start needs at least one earlier tuning job")
        if len(jobs) > MAX_PARENT_JOBS:
            raise InvalidInput(f"warm start takes at most {MAX_PARENT_JOBS} earlier jobs, got {len(jobs)}")
        t = str(self.type).strip().lower().replace("_", "").replace("-", "")
        t = _TYPE_ALIASES.get(t, t)
        if t not in WARM_START_TYPES:
            raise InvalidInput(f"warm start type {self.type!r} is not one of {', '.join(WARM_START_TYPES)}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise InvalidInput(f"top_k must be a positive integer, got {self.top_k!r}")
        object.__setattr__(self, "jobs", jobs)
        object.__setattr__(self, "type", t)

    @classmethod
    def parse(cls, value: Any) -> WarmStart | None:
        """None, a job id, a list of job ids (identical), or a WarmStart."""
        if value is None:
            return None
        if isinstance(value, WarmStart):
            return value
        if isinstance(value, str):
            return cls((value,))
        if isinstance(value, Sequence):
            return cls(tuple(str(v) for v in value))
        raise InvalidInput(f"warm_start must be a job id, a list of job ids or WarmStart(...), got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with the job."""
        return {"jobs": list(self.jobs), "type": self.type, "top_k": self.top_k}


def _encode(space: SearchSpace, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Optuna params and distributions of ``params`` in ``space``; and whether every range is covered."""
    values: dict[str, Any] = {}
    dists: dict[str, Any] = {}
    complete = True
    for r in space.ranges:
        if _single(r):
            continue
        enc = r.to_optuna(params[r.name]) if r.name in params else None
        if enc is None:
            complete = False
            continue
        name, v, dist = enc
        values[name] = v
        dists[name] = dist
    return values, dists, complete


def _single(r: Any) -> bool:
    """A range with one value is not searched (it has no Optuna parameter)."""
    values = getattr(r, "values", None)
    if values is not None:
        return len(values) == 1
    return bool(r.low == r.high)


def seed_study(
    study: optuna.study.Study,
    spec: JobSpec,
    space: SearchSpace,
    warm: WarmStart,
    parents: Sequence[tuple[JobSpec, list[Any]]],
) -> int:
    """Add (identical) or enqueue (transfer) the parents' trials; return how many.

    Parameters
    ----------
    study
        The new job's study.
    spec, space
        The new job.
    warm
        The warm start settings.
    parents
        Each earlier job's spec and its :class:`~loopml.tune.jobs.TrialInfo` list.
    """
    import optuna

    from loopml.tune.jobs import PARAMS_ATTR, RUN_ATTR, WARM_ATTR

    n = 0
    if warm.type == "identical":
        for pspec, _ in parents:
            if pspec.algorithm != spec.algorithm or pspec.objective != spec.objective:
                raise InvalidInput(
                    f"an identical warm start needs the same algorithm and objective: job {pspec.job_id} tuned "
                    f"{pspec.algorithm} for {pspec.objective}, this job {spec.algorithm} for {spec.objective}; "
                    "use type='transfer'"
                )
        new: list[optuna.trial.FrozenTrial] = []
        for pspec, trials in parents:
            for t in trials:
                if t.state != "COMPLETE" or t.value is None or t.warm_start_from is not None:
                    continue
                values, dists, complete = _encode(space, t.params)
                if not complete:
                    continue  # a partial trial would shrink the multivariate sampler's space
                new.append(optuna.trial.create_trial(
                    params=values, distributions=dists, value=t.value,
                    user_attrs={PARAMS_ATTR: space.decode(values), WARM_ATTR: pspec.job_id, RUN_ATTR: t.run_id},
                ))
        study.add_trials(new)
        return len(new)
    # transfer: re-run the best configurations of all parents
    ranked: list[tuple[float, dict[str, Any], str]] = []
    for pspec, trials in parents:
        sign = 1.0 if pspec.direction == "maximize" else -1.0
        for t in trials:
            if t.state == "COMPLETE" and t.value is not None and t.warm_start_from is None:
                ranked.append((sign * t.value, t.params, pspec.job_id))
    ranked.sort(key=lambda x: -x[0])
    seen: set[str] = set()
    for _, params, job in ranked:
        values, _, _ = _encode(space, params)
        key = repr(sorted(values.items()))
        if not values or key in seen:
            continue
        seen.add(key)
        study.enqueue_trial(values, user_attrs={"loopml.seeded_from": job}, skip_if_exists=True)
        n += 1
        if n >= warm.top_k:
            break
    return n


__all__ = ["WARM_START_TYPES", "WarmStart", "seed_study"]
