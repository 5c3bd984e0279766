"""Step kinds: the built-in ones, one per lifecycle stage, and :func:`register_step_kind`.

A step kind is a function ``fn(ctx, **args) -> dict`` of JSON-ready outputs
(references such as a dataset ``"churn:3"``, a model ``"churn:2"``, run ids,
metrics). Large objects never travel between steps: a step stores them in the
workspace (a dataset version, a model package, an artifact) and returns the
reference. Each built-in kind calls the Python API of its stage:

=================  ===========================================  =====================================
kind               calls                                         outputs
=================  ===========================================  =====================================
ingest             :func:`loopml.data.ingest.ingest`             dataset, dataset_id, rows, quarantined
validate           :class:`loopml.data.validation.Expectations`  dataset, rows_checked, rows_failed, passed
eda                :func:`loopml.eda.run_eda`                    dataset, profile_sha256, report_path
prep_fit           :func:`loopml.prep.fit_recipe`                recipe, dataset (with ``out``)
prep_apply         :func:`loopml.prep.apply_recipe`              dataset, rows
features_ingest    :meth:`loopml.features.FeatureStore.ingest`   group, rows
train              :class:`loopml.train.Estimator`               run_id, model_sha256, metrics
tune               :class:`loopml.tune.HyperparameterTuner`      job_id, run_id, best_value, model
evaluate           :func:`loopml.evaluate.evaluate_model`        metrics, baseline_metrics, beats_baseline
register           :func:`loopml.registry.register_model`        model, approval_status
deploy             ``loopml.serve.endpoints.deploy``             endpoint, endpoint_version
transform          ``loopml.serve.transform.transform``          output, files, rows_out
monitor_baseline   ``loopml.monitor.baseline``                   baseline, statistics_sha256
condition, fail    evaluated by the executor itself              result / —
python             any importable function                       whatever it returns
=================  ===========================================  =====================================
"""

from __future__ import annotations

import importlib
import inspect
import logging
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: output keys that name workspace entities, and the lineage kind each points at
ENTITY_OUTPUTS = {"dataset": "dataset_version", "model": "model_version", "run_id": "run",
                  "recipe": "recipe_version"}


@dataclass
class StepContext:
    """What a running step may use besides its arguments.

    A step function receives it when it has a parameter named ``ctx``.

    Attributes
    ----------
    ws
        The workspace (opened in the worker process).
    pipeline, execution_id, step, attempt
        Which pipeline, execution and step this is; ``attempt`` counts from 1.
    """

    ws: Workspace
    pipeline: str
    execution_id: str
    step: str
    attempt: int = 1

    def log(self, line: str) -> None:
        """Write a line to the step's captured log."""
        print(line, flush=True)


@dataclass(frozen=True)
class StepKind:
    """A registered step kind.

    Attributes
    ----------
    name
        The kind's name (``kind:`` in YAML, the first argument of ``Pipeline.add``).
    fn
        ``fn(ctx, **args) -> dict``.
    outputs
        The output names it returns (references to other names are refused
        before the pipeline runs); empty when not declared.
    dataset_args
        Arguments holding dataset references, whose content hash goes into the cache key.
    inline
        Evaluated by the executor itself (``condition``, ``fail``).
    """

    name: str
    fn: Callable[..., Any]
    outputs: tuple[str, ...] = ()
    dataset_args: tuple[str, ...] = ()
    inline: bool = False
    description: str = field(default="", compare=False)


_KIND_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")


class StepKinds:
    """The step kinds a pipeline can name: the built-ins plus those registered."""

    def __init__(self) -> None:
        self._kinds: dict[str, StepKind] = {}

    def register(self, kind: StepKind, *, replace: bool = False) -> StepKind:
        """Add ``kind``; an existing name needs ``replace=True``."""
        if not _KIND_NAME.match(kind.name):
            raise InvalidInput(f"step kind name {kind.name!r} must be lower-case letters, digits and '_', "
                               "starting with a letter")
        if kind.name in self._kinds and not replace:
            raise Conflict(f"step kind {kind.name!r} exists; pass replace=True to replace it")
        if not callable(kind.fn):
            raise InvalidInput(f"step kind {kind.name!r} needs a function, got {type(kind.fn).__name__}")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> StepKind:
        """The kind called ``name``.

        Raises
        ------
        InvalidInput
            No such kind (the message lists the known ones).
        """
        hit = self._kinds.get(name)
        if hit is None:
            raise InvalidInput(f"unknown step kind {name!r}; known kinds: {', '.join(sorted(self._kinds))} "
                               "(or register one with loopml.pipelines.register_step_kind)")
        return hit

    def names(self) -> list[str]:
        """The known kinds, sorted."""
        return sorted(self._kinds)


#: the process's step kinds (like the algorithm registry of loopml.train)
KINDS = StepKinds()


def register_step_kind(
    name: str,
    fn: Callable[..., Any],
    *,
    outputs: Sequence[str] = (),
    dataset_args: Sequence[str] = (),
    replace: bool = False,
    description: str = "",
) -> StepKind:
    """Register a step kind that pipelines can name (``kind: NAME`` in YAML).

    Parameters
    ----------
    name
        The kind's name (lower-case letters, digits, ``_``).
    fn
        ``fn(ctx, **args) -> dict`` of JSON-ready outputs; a module-level
        function, so worker processes can import it.
    outputs
        The names it returns, checked when a pipeline refers to them.
    dataset_args
        Arguments naming dataset versions (their content hashes enter the cache key).
    replace
        Replace a kind of the same name.

    Returns
    -------
    StepKind

    Examples
    --------
    >>> def shout(ctx, text: str) -> dict:
    ...     return {"text": text.upper()}
    >>> register_step_kind("shout", shout, outputs=["text"]).name
    'shout'
    """
    kind = StepKind(name, fn, tuple(outputs), tuple(dataset_args), description=description)
    return KINDS.register(kind, replace=replace)


def get_step_kind(name: str) -> StepKind:
    """The registered kind ``name`` (InvalidInput if there is none)."""
    return KINDS.get(name)


def list_step_kinds() -> list[StepKind]:
    """Every registered step kind, by name."""
    return [KINDS.get(n) for n in KINDS.names()]


# -- helpers ---------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """``value`` as JSON-ready data: numpy scalars unwrapped, NaN/inf as None, tuples as lists."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return jsonable(item())
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict) and not isinstance(value, type):
        return jsonable(to_dict())
    raise InvalidInput(f"a step output of type {type(value).__name__} is not JSON; store large objects in the "
                       "workspace (a dataset with loopml.data.Catalog.write, an artifact with "
                       "ws.artifacts.put_bytes) and return the reference")


def _optional(module: str, what: str, extra: str) -> Any:
    """Import a stage another part of loopml provides, or explain which one is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise InvalidInput(f"the {what} step requires {module} ({extra}), which this installation "
                           f"lacks: {e}") from None


def _call(fn: Callable[..., Any], what: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with the keyword arguments it accepts; name the unknown ones clearly."""
    sig = inspect.signature(fn)
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(kwargs) - set(sig.parameters))
        if unknown:
            raise InvalidInput(f"the {what} step does not take {', '.join(unknown)}; it takes "
                               f"{', '.join(p for p in sig.parameters if p not in ('ws', 'self'))}")
    return fn(*args, **kwargs)


def _expectations(value: Any) -> Any:
    from loopml.data.validation import Expectations

    if value is None or isinstance(value, Expectations):
        return value
    if isinstance(value, Mapping):
        return Expectations.from_dict(value, source="the step's expectations")
    if isinstance(value, str):
        return Expectations.from_file(value)
    raise InvalidInput(f"expectations must be a mapping or the path of a YAML file, got {type(value).__name__}")


# -- built-in kinds ------------------------------------------------------------------------------------
def ingest_step(
    ctx: StepContext,
    source: str,
    dataset: str,
    *,
    format: str | None = None,
    table: str | None = None,
    query: str | None = None,
    expectations: Mapping[str, Any] | str | None = None,
    fail_on_invalid: bool = False,
    incremental_by: str | None = None,
    partition_by: Sequence[str] = (),
    description: str = "",
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Ingest ``source`` (a file, folder, glob, SQL URL or HTTP API) into a new version of ``dataset``."""
    from loopml.data.ingest import ingest
    from loopml.data.sources import open_source

    src = open_source(source, format=format, table=table, query=query, **dict(options or {}))
    info = ingest(ctx.ws, src, dataset, expectations=_expectations(expectations), fail_on_invalid=fail_on_invalid,
                  incremental_by=incremental_by, partition_by=tuple(partition_by), description=description)
    return {"dataset": info.ref, "dataset_id": info.id, "rows": info.row_count,
            "quarantined": info.quarantine_count, "created": info.created, "content_hash": info.content_hash}


def validate_step(
    ctx: StepContext, data: str, expectations: Mapping[str, Any] | str, *, fail: bool = True,
) -> dict[str, Any]:
    """Check every row of a dataset version against expectations; fail the step (``fail``) if any breaks one."""
    from loopml.data import Catalog
    from loopml.errors import ValidationFailed

    cat = Catalog(ctx.ws)
    info = cat.get(data)
    validator = _expectations(expectations).validator()
    good = first = 0
    for batch in cat.iter_batches(info):
        ok, _bad = validator.check(batch, first_row=first)
        first += batch.num_rows
        good += ok.num_rows
    problem = None
    try:
        summary = validator.finish(good)
    except ValidationFailed as e:
        problem, summary = str(e), {"failures": dict(validator.failures), "rows_checked": validator.rows_checked}
    failed = validator.rows_checked - good
    rules = ", ".join(f"{k} ({v})" for k, v in sorted(validator.failures.items()))
    if problem is None and failed:
        problem = (f"{failed} of {validator.rows_checked} rows of {info.ref} break the expectations ({rules}); "
                   "fix the data or the expectations, or set fail: false to only report it")
    if problem and fail:
        raise ValidationFailed(problem)
    return {"dataset": info.ref, "rows_checked": validator.rows_checked, "rows_failed": failed,
            "failures": dict(summary.get("failures", {})), "passed": problem is None, "problem": problem}


def eda_step(
    ctx: StepContext, data: str, *, target: str | None = None, out: str | None = None,
    sample_rows: int | None = None, seed: int | None = None,
) -> dict[str, Any]:
    """Profile a dataset version and store the HTML report (see :func:`loopml.eda.run_eda`)."""
    from loopml.eda import run_eda

    res = run_eda(ctx.ws, data, target, out, sample_rows=sample_rows, seed=seed)
    summary = res.to_dict()
    return {"dataset": res.dataset, "profile_sha256": res.profile_sha256, "report_sha256": res.report_sha256,
            "report_path": res.report_path, "out": res.out, "warnings": summary["warnings"]}


def _recipe(value: Any) -> Any:
    from loopml.prep import Recipe

    if isinstance(value, Mapping):
        return Recipe.from_dict(value)
    if isinstance(value, str):
        return value
    raise InvalidInput(f"recipe must be a mapping with 'steps' or the path of a recipe YAML file, got "
                       f"{type(value).__name__}")


def prep_fit_step(
    ctx: StepContext, recipe: Mapping[str, Any] | str, data: str, recipe_name: str, *,
    target: str | None = None, out: str | None = None,
) -> dict[str, Any]:
    """Fit a recipe on a dataset version and store it as a new version of ``recipe_name``."""
    from loopml.data import Catalog
    from loopml.prep import fit_recipe

    info = fit_recipe(ctx.ws, _recipe(recipe), data, recipe_name, target=target, out=out)
    return {"recipe": info.ref, "recipe_id": info.id, "output_columns": info.output_columns,
            "dataset": Catalog(ctx.ws).get(out).ref if out else None}


def prep_apply_step(ctx: StepContext, recipe: str, data: str, out: str) -> dict[str, Any]:
    """Transform a dataset version with a fitted recipe into a new version of dataset ``out``."""
    from loopml.prep import apply_recipe

    info = apply_recipe(ctx.ws, recipe, data, out)
    return {"dataset": info.ref, "dataset_id": info.id, "rows": info.row_count}


def features_ingest_step(
    ctx: StepContext, group: str, data: str, *, online: bool | None = None,
    create: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append a dataset version to a feature group (created first from ``create`` if it does not exist)."""
    from loopml.features import FeatureStore

    with FeatureStore(ctx.ws) as fs:
        if create is not None:
            try:
                fs.group(group)
            except NotFound:
                fs.create_group(group, **dict(create))
        res = fs.ingest(group, data, online=online)
    return {"group": res.group, "rows": res.rows, "seq": res.seq, "online_records": res.online_records,
            "ignored_columns": res.ignored_columns}


def train_step(
    ctx: StepContext, algo: str, data: str, target: str | None = None, *,
    validation: str | None = None, hyperparameters: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | str | None = None, experiment: str = "default", seed: int = 0,
    problem_type: str | None = None, roles: Mapping[str, str] | None = None, timeout: float | None = None,
    run_name: str | None = None,
) -> dict[str, Any]:
    """Train a built-in algorithm as a tracked job (see :class:`loopml.train.Estimator`)."""
    from loopml.train import Estimator

    est = Estimator(algo, hyperparameters, target=target, recipe=_recipe(recipe) if recipe is not None else None,
                    experiment=experiment, timeout=timeout, seed=seed, problem_type=problem_type, roles=roles,
                    ws=ctx.ws)
    with est:
        res = est.fit(data, validation, run_name=run_name or f"{ctx.pipeline}.{ctx.step}",
                      tags={"pipeline.execution": ctx.execution_id, "pipeline.step": ctx.step}, on_log=ctx.log)
    return {"run_id": res.run_id, "model_sha256": res.model_sha256, "metrics": jsonable(res.metrics),
            "problem_type": res.problem_type}


def tune_step(
    ctx: StepContext, algo: str, data: str, target: str | None = None, *,
    objective: str = "validation:auc", validation: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None, ranges: Mapping[str, Any] | str | None = None,
    strategy: str = "bayesian", max_trials: int | None = None, max_parallel: int = 1,
    early_stopping: bool | str = False, seed: int = 0, register_as: str | None = None,
    experiment: str = "default", recipe: Mapping[str, Any] | str | None = None,
    problem_type: str | None = None,
) -> dict[str, Any]:
    """Tune an algorithm's hyperparameters (see :class:`loopml.tune.HyperparameterTuner`)."""
    from loopml.train import Estimator
    from loopml.tune import HyperparameterTuner

    est = Estimator(algo, hyperparameters, target=target, recipe=_recipe(recipe) if recipe is not None else None,
                    experiment=experiment, seed=seed, problem_type=problem_type, ws=ctx.ws)
    tuner = HyperparameterTuner(est, objective, ranges=ranges, strategy=strategy, max_trials=max_trials,
                                max_parallel=max_parallel, early_stopping=early_stopping, seed=seed,
                                register_as=register_as)
    res = tuner.fit(data, validation)
    return {"job_id": res.job_id, "run_id": res.best_run_id, "tuning_run_id": res.run_id, "status": res.status,
            "objective": res.objective, "best_value": jsonable(res.best_value),
            "best_params": jsonable(res.best_params), "best_hyperparameters": jsonable(res.best_hyperparameters),
            "model": res.model_version}


def evaluate_step(
    ctx: StepContext, model: str, data: str, target: str | None = None, *,
    costs: Mapping[str, Any] | str | None = None, out: str | None = None, baseline: str | None = None,
    metric: str | None = None, margin: float = 0.0, threshold: float | None = None, latency_rows: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate a model on a dataset version; with ``baseline``, compare it with another model.

    ``baseline`` (e.g. ``churn@production``) is evaluated on the same data;
    ``beats_baseline`` is true when ``metric`` (default: the task's headline
    metric) improves on the baseline's by at least ``margin``, or when there is
    no baseline model yet.
    """
    from loopml.evaluate import evaluate_model

    res = evaluate_model(ctx.ws, model, data, target, costs=costs, out=out, threshold=threshold,
                         latency_rows=latency_rows, seed=seed)
    metrics = jsonable(res.metrics)
    stored = res.stored
    outputs: dict[str, Any] = {
        "evaluated": model, "data": data, "task": res.task, "n_rows": res.n_rows, "metrics": metrics,
        "headline": jsonable(res.headline), "result_sha256": stored.result_sha256 if stored else None,
        "report_sha256": stored.report_sha256 if stored else None,
        "report_path": stored.report_path if stored else None,
    }
    if baseline is None:
        return outputs
    name = metric or next(iter(res.headline), None)
    if name is None or name not in metrics:
        raise InvalidInput(f"metric {name!r} is not among the evaluation's metrics ({', '.join(metrics)}); "
                           "name one with metric:")
    try:
        base = evaluate_model(ctx.ws, baseline, data, target, threshold=threshold, latency_rows=0, seed=seed)
    except NotFound as e:
        ctx.log(f"no baseline to compare with: {e}")
        outputs.update(baseline=baseline, baseline_metrics=None, metric=name, improvement=None,
                       beats_baseline=True, baseline_note=str(e))
        return outputs
    base_metrics = jsonable(base.metrics)
    mine, theirs = metrics.get(name), base_metrics.get(name)
    improvement = None
    if mine is not None and theirs is not None:
        improvement = (mine - theirs) if res.greater_is_better(name) else (theirs - mine)
    beats = improvement is not None and improvement >= float(margin)
    outputs.update(baseline=baseline, baseline_metrics=base_metrics, metric=name, improvement=improvement,
                   beats_baseline=beats, baseline_note=None)
    return outputs


def register_step(
    ctx: StepContext, run: str, model: str, *, description: str | None = None, approve: bool = False,
    alias: str | None = None, by: str | None = None,
) -> dict[str, Any]:
    """Register the model package of a training run as the next version of ``model``.

    ``approve`` registers it Approved; ``alias`` then points ``staging`` or
    ``production`` at it.
    """
    from loopml.registry import APPROVED, PENDING, register_model, set_alias

    who = by or f"pipeline:{ctx.pipeline}"
    info = register_model(ctx.ws, run, model, description, APPROVED if approve else PENDING, by=who)
    if alias:
        info = set_alias(ctx.ws, info.ref, alias, by=who, reason=f"pipeline execution {ctx.execution_id}")
    return {"model": info.ref, "model_version_id": info.id, "approval_status": info.approval_status,
            "aliases": list(info.aliases), "run_id": info.run_id}


def deploy_step(
    ctx: StepContext, endpoint: str, model: str | None = None, *, strategy: str | None = None, **options: Any,
) -> dict[str, Any]:
    """Deploy a model to a real-time endpoint.

    Without a strategy (or ``all-at-once``) on a new endpoint this is
    ``loopml.serve.endpoints.deploy`` (options passed on). With
    ``canary:PCT:SECONDS`` / ``linear:PCT:SECONDS`` on an existing endpoint it
    is a guarded blue/green update (``loopml.serve.deployments.update_endpoint``:
    ``alarms``, ``max_error_rate``, ``max_p99_ms``, ... passed on); the step
    fails when the update rolls back, naming the alarm.
    """
    eps = _optional("loopml.serve.endpoints", "deploy", "the serving stage")
    exists = True
    try:
        eps.get_endpoint(ctx.ws, endpoint)
    except NotFound:
        exists = False
    options.setdefault("by", f"pipeline:{ctx.pipeline}")
    if strategy not in (None, "all-at-once") and not exists:
        raise InvalidInput(f"deployment strategy {strategy!r} shifts traffic from the models endpoint {endpoint!r} "
                           "serves now, but it does not exist yet; deploy it first without a strategy")
    if strategy not in (None, "all-at-once"):
        dep = _optional("loopml.serve.deployments", "deploy", "deployment strategies of the serving stage")
        info = _call(dep.update_endpoint, "deploy", ctx.ws, endpoint, model=model, strategy=strategy, **options)
        if info.status != dep.SUCCEEDED:
            raise LoopmlError(f"the {strategy} update of endpoint {endpoint!r} to {model} ended {info.status}: "
                              f"{info.reason or 'no reason recorded'}")
        current = eps.get_endpoint(ctx.ws, endpoint)
        return {"endpoint": endpoint, "endpoint_version": current.version, "status": current.status,
                "deployed_model": model, "deployment_id": info.id, "deployment_status": info.status}
    if "variants" in options and options["variants"] is not None:
        options["variants"] = [eps.VariantSpec(**v) if isinstance(v, Mapping) else eps.parse_variant(str(v))
                               for v in options["variants"]]
    info = _call(eps.deploy, "deploy", ctx.ws, endpoint, model=model, **options)
    return {"endpoint": info.name, "endpoint_version": info.version, "status": info.status,
            "deployed_model": model}


def transform_step(ctx: StepContext, model: str, input: str, output: str, **options: Any) -> dict[str, Any]:
    """Batch-transform ``input`` with a model into ``output`` (``loopml.serve.transform.transform``).

    Other options (``workers``, ``join_input``, ``accept``, ...) are passed on.
    """
    mod = _optional("loopml.serve.transform", "transform", "batch transform of the serving stage")
    res = _call(mod.transform, "transform", ctx.ws, model, input, output, **options)
    return {"job_id": res.job_id, "transformed_with": model, "output": res.output, "files": list(res.files),
            "error_files": list(res.error_files), "rows_in": res.rows_in, "rows_out": res.rows_out,
            "errors": res.errors, "run_id": res.run_id}


def monitor_baseline_step(ctx: StepContext, data: str | None = None, **options: Any) -> dict[str, Any]:
    """Compute and store a data-quality baseline (``loopml.monitor.baseline``; options passed on).

    ``data`` is a dataset version; ``model=`` a registered model whose training data and inputs it uses.
    """
    mod = _optional("loopml.monitor", "monitor_baseline", "the monitoring stage")
    fn = getattr(mod, "baseline", None)
    fn = getattr(fn, "baseline", fn) if not callable(fn) else fn  # a module of that name, or the function
    if not callable(fn):
        raise InvalidInput("loopml.monitor has no baseline function this step can call")
    res = _call(fn, "monitor_baseline", ctx.ws, data, **options)
    return {"baseline": res.name, "baseline_id": res.id, "statistics_sha256": res.statistics_sha256,
            "constraints_sha256": res.constraints_sha256, "data": res.dataset_ref, "for_model": res.model_ref}


def condition_step(ctx: StepContext) -> dict[str, Any]:  # pragma: no cover - evaluated by the executor
    """Placeholder: the executor evaluates conditions itself (cheap, and it decides the branches)."""
    raise LoopmlError("condition steps are evaluated by the pipeline executor")


def fail_step(ctx: StepContext, message: str) -> dict[str, Any]:
    """Stop the execution as Failed with ``message``."""
    raise LoopmlError(message)


def _builtins() -> None:
    add = KINDS.register
    add(StepKind("ingest", ingest_step, ("dataset", "dataset_id", "rows", "quarantined", "created",
                                         "content_hash")))
    add(StepKind("validate", validate_step, ("dataset", "rows_checked", "rows_failed", "failures", "passed",
                                             "problem"), ("data",)))
    add(StepKind("eda", eda_step, ("dataset", "profile_sha256", "report_sha256", "report_path", "out",
                                   "warnings"), ("data",)))
    add(StepKind("prep_fit", prep_fit_step, ("recipe", "recipe_id", "output_columns", "dataset"), ("data",)))
    add(StepKind("prep_apply", prep_apply_step, ("dataset", "dataset_id", "rows"), ("data",)))
    add(StepKind("features_ingest", features_ingest_step, ("group", "rows", "seq", "online_records",
                                                           "ignored_columns"), ("data",)))
    add(StepKind("train", train_step, ("run_id", "model_sha256", "metrics", "problem_type"),
                 ("data", "validation")))
    add(StepKind("tune", tune_step, ("job_id", "run_id", "tuning_run_id", "status", "objective", "best_value",
                                     "best_params", "best_hyperparameters", "model"), ("data", "validation")))
    add(StepKind("evaluate", evaluate_step, ("evaluated", "data", "task", "n_rows", "metrics", "headline",
                                             "result_sha256", "report_sha256", "report_path", "baseline",
                                             "baseline_metrics", "metric", "improvement", "beats_baseline",
                                             "baseline_note"), ("data",)))
    add(StepKind("register", register_step, ("model", "model_version_id", "approval_status", "aliases",
                                             "run_id")))
    add(StepKind("deploy", deploy_step, ("endpoint", "endpoint_version", "status", "deployed_model")))
    add(StepKind("transform", transform_step, ("job_id", "transformed_with", "output", "files", "error_files",
                                               "rows_in", "rows_out", "errors", "run_id")))
    add(StepKind("monitor_baseline", monitor_baseline_step, ("baseline", "baseline_id", "statistics_sha256",
                                                             "constraints_sha256", "data", "for_model"),
                 ("data",)))
    add(StepKind("condition", condition_step, ("result", "detail"), inline=True))
    add(StepKind("fail", fail_step, (), inline=True))
    add(StepKind("python", fail_step))  # the function comes from the step itself


_builtins()


# -- functions by reference --------------------------------------------------------------------------
#: modules loaded from a file path, by the name they were given
_FILE_MODULES: dict[str, str] = {}


def load_file_module(path: str) -> Any:
    """Import a Python file by path (once per process) under a private module name."""
    import hashlib
    import importlib.util
    import os

    full = os.path.abspath(path)
    name = "loopml_pipeline_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(full))[0]) + "_" + \
        hashlib.sha256(full.encode()).hexdigest()[:8]
    mod = sys.modules.get(name)
    if mod is not None:
        return mod
    if not os.path.isfile(full):
        raise InvalidInput(f"no such Python file: {full}")
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{full} is not a Python file Python can import")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    _FILE_MODULES[name] = full
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        _FILE_MODULES.pop(name, None)
        raise
    return mod


def function_ref(fn: Callable[..., Any]) -> tuple[str, bool]:
    """``(reference, importable)`` of a function: ``module:qualname`` or ``/path/file.py:qualname``.

    ``importable`` is False when another process could not find it (defined
    interactively, or nested in another function).
    """
    qual = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    module = getattr(fn, "__module__", None) or "?"
    if "<" in qual:
        return f"{module}:{qual}", False
    mod = sys.modules.get(module)
    path = _FILE_MODULES.get(module) or (getattr(mod, "__file__", None) if module == "__main__" else None)
    if path:
        return f"{path}:{qual}", True
    if module.startswith("__") or mod is None or getattr(mod, "__spec__", None) is None:
        return f"{module}:{qual}", False
    return f"{module}:{qual}", True


def resolve_function(ref: str, local: Mapping[str, Callable[..., Any]] | None = None) -> Callable[..., Any]:
    """The function a reference names (``module:qualname`` or ``path.py:qualname``).

    Raises
    ------
    InvalidInput
        The module or attribute cannot be found, or is not callable.
    """
    if local and ref in local:
        return local[ref]
    target, sep, qual = ref.rpartition(":")
    if not sep or not target or not qual:
        raise InvalidInput(f"function {ref!r} must be written module:function (or path/to/file.py:function)")
    try:
        if target.endswith(".py"):
            obj: Any = load_file_module(target)
        else:
            obj = importlib.import_module(target)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise InvalidInput(f"cannot find function {ref!r}: {e}; check the module is importable (on "
                           "PYTHONPATH) and the function is defined at its top level") from None
    if not callable(obj):
        raise InvalidInput(f"{ref!r} is a {type(obj).__name__}, not a function")
    return obj


__all__ = [
    "ENTITY_OUTPUTS",
    "KINDS",
    "StepContext",
    "StepKind",
    "StepKinds",
    "function_ref",
    "get_step_kind",
    "jsonable",
    "list_step_kinds",
    "register_step_kind",
    "resolve_function",
]
