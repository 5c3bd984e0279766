"""``loopml tune``: run, resume, list and show hyperparameter tuning jobs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import click
import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import (
    JsonOpt,
    app,
    console,
    err_console,
    open_workspace,
    parse_pairs,
    print_json,
)

if TYPE_CHECKING:
    from loopml.tune import TrialInfo, TuningResult

tune_app = typer.Typer(
    help="Tune hyperparameters: `loopml tune --algo ALGO --data NAME --target COL --metric M`, "
         "or `loopml tune list|show JOB`.",
)
app.add_typer(tune_app, name="tune")

_STATE_STYLE = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan", "WAITING": "white"}
_STATUS_STYLE = {"Completed": "green", "InProgress": "yellow", "Failed": "red", "Stopped": "red"}


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}"


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@tune_app.callback(invoke_without_command=True)
def tune_cmd(
    ctx: typer.Context,
    algo: str = typer.Option(None, "--algo", "-a", help="Algorithm (see `loopml algorithms list`)."),
    data: str = typer.Option(None, "--data", "-d", help="Training dataset NAME[:VER]."),
    target: str = typer.Option(None, "--target", "-t", help="Target column."),
    metric: str = typer.Option(None, "--metric", "-m",
                               help="Objective, e.g. validation:auc (a bare name means validation:NAME)."),
    validation: str = typer.Option(None, "--validation", "-v",
                                   help="Validation dataset NAME[:VER] (default: hold out --validation-fraction)."),
    validation_fraction: float = typer.Option(0.2, "--validation-fraction",
                                              help="Share of --data held out when no --validation is given."),
    cv_folds: int = typer.Option(None, "--cv-folds", "--cv",
                                 help="Measure each trial by K-fold cross-validation of --data instead "
                                      "(the best configuration is then trained on all of it)."),
    direction: str = typer.Option(None, "--direction", help="maximize or minimize (default: from the metric)."),
    strategy: str = typer.Option("bayesian", "--strategy", "-s",
                                 help="bayesian, random, grid, hyperband or cmaes."),
    max_trials: int = typer.Option(None, "--max-trials", "-n", help="Trials to run (default 20; grid: its size)."),
    parallel: int = typer.Option(1, "--parallel", "-p", help="Trials at once."),
    space: str = typer.Option(None, "--space", help="Search space YAML (default: the algorithm's tunable ranges)."),
    hp: list[str] = typer.Option([], "--hp", help="Fixed hyperparameter NAME=VALUE (repeatable)."),
    early_stopping: bool = typer.Option(False, "--early-stopping",
                                        help="Stop unpromising trials from their per-iteration metric."),
    pruner: str = typer.Option(None, "--pruner",
                               help="median (default with --early-stopping), hyperband or successive-halving."),
    target_value: float = typer.Option(None, "--target-value", help="Stop the job once a trial reaches this."),
    no_improvement: int = typer.Option(None, "--max-trials-without-improvement",
                                       help="Stop after this many trials in a row without improving the best."),
    min_improvement: float = typer.Option(0.0, "--min-improvement",
                                          help="What counts as an improvement (absolute)."),
    max_runtime: float = typer.Option(None, "--max-runtime", help="Start no trial after this many seconds."),
    warm_start: list[str] = typer.Option([], "--warm-start", help="An earlier tuning job to start from (repeatable)."),
    warm_start_type: str = typer.Option("identical", "--warm-start-type", help="identical or transfer."),
    executor: str = typer.Option(
        "local", "--executor",
        help="local (this process coordinates the trials, each trains in its own process), processes (a worker "
             "process per parallel trial) or ray."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster address (default: a local Ray)."),
    resume: str = typer.Option(None, "--resume", help="Continue the tuning job JOB (killed, stopped, or for more trials)."),
    register: str = typer.Option(None, "--register", help="Register the best model under this name."),
    experiment: str = typer.Option("default", "--experiment", "-e", help="Tracking experiment."),
    recipe: str = typer.Option(None, "--recipe", "-r", help="Recipe YAML file, or NAME[:VER] of a fitted recipe."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds before one trial is killed."),
    problem_type: str = typer.Option(None, "--problem-type", help="binary, multiclass, regression, ..."),
    role: list[str] = typer.Option([], "--role", help="ROLE=COLUMN, e.g. group=query_id (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler and the trainings."),
    name: str = typer.Option(None, "--name", help="Job id (default: tune-<random>)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or per-trial lines."),
    report: str = typer.Option(None, "--report", help="Also write the job's HTML report to this file."),
    as_json: bool = JsonOpt,
) -> None:
    """Run a hyperparameter tuning job (or `list` / `show JOB`)."""
    if ctx.invoked_subcommand is not None:
        return
    from loopml.tune import CompletionCriteria, HyperparameterTuner, WarmStart

    completion = CompletionCriteria(target=target_value, max_trials_without_improvement=no_improvement,
                                    min_improvement=min_improvement, max_runtime=max_runtime)
    with open_workspace() as ws:
        if resume:
            given = [flag for flag, v in (("--algo", algo), ("--data", data), ("--target", target),
                                          ("--space", space), ("--validation", validation)) if v]
            if given:
                raise click.UsageError(f"--resume continues a job as it was set up; drop {', '.join(given)}")
            tuner = HyperparameterTuner.resume(resume, ws, max_trials=max_trials, max_parallel=parallel,
                                               executor=executor, ray_address=ray_address)
            train = val = None
        else:
            missing = [flag for flag, v in (("--algo", algo), ("--data", data), ("--metric", metric)) if not v]
            if missing:
                raise click.UsageError(f"give {', '.join(missing)} (or --resume JOB); see `loopml tune --help`")
            from loopml.train import Estimator, get_algorithm
            from loopml.train.hyperparameters import parse_assignments

            cls = get_algorithm(algo)
            given_hp = parse_assignments(hp)
            values = cls.check_hyperparameters(given_hp, parse_strings=True)
            est = Estimator(algo, {k: values[k] for k in given_hp}, target=target, recipe=recipe,
                            experiment=experiment, timeout=timeout, seed=seed, problem_type=problem_type,
                            roles=parse_pairs(role, "--role", "group=query_id"), ws=ws)
            objective = metric if ":" in metric else f"validation:{metric}"
            early: Any = pruner or early_stopping
            tuner = HyperparameterTuner(
                est, objective, direction, ranges=space, strategy=strategy, max_trials=max_trials,
                max_parallel=parallel, early_stopping=early, completion=completion,
                warm_start=WarmStart(tuple(warm_start), warm_start_type) if warm_start else None,
                name=name, executor=executor, ray_address=ray_address, seed=seed, register_as=register,
                validation_fraction=validation_fraction, cv_folds=cv_folds,
            )
            train, val = data, validation
        result = _run(tuner, train, val, quiet)
        written = _write_report(ws, result.job_id, report) if report else None
    if as_json:
        print_json({**result.to_dict(), **({"report": written} if written else {})})
        return
    _print_result(result, top=10)
    if written:
        console.print(f"report: {escape(written)}")


def _write_report(ws: Any, job_id: str, path: str) -> str:
    from loopml.tune.report import write_report

    return write_report(ws, job_id, path)


def _run(tuner: Any, train: Any, validation: Any, quiet: bool) -> TuningResult:
    """Fit with a live progress bar and one line per trial on stderr."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if quiet:
        return tuner.fit(train, validation)
    progress = Progress(TextColumn("[bold]tuning[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.description}"), console=err_console, transient=True)
    state: dict[str, Any] = {"task": None, "best": None, "counts": {}}

    def on_trial(info: TrialInfo, done: int, total: int) -> None:
        if state["task"] is None:
            state["task"] = progress.add_task("", total=total, completed=done - 1)
        v = info.value
        better = v is not None and (state["best"] is None or (
            v > state["best"] if tuner.direction == "maximize" else v < state["best"]))
        if better:
            state["best"] = v
        state["counts"][info.state] = state["counts"].get(info.state, 0) + 1
        style = _STATE_STYLE.get(info.state, "white")
        shown = f"{tuner.objective}={_num(v)}" if v is not None else escape(info.message or "")
        params = " ".join(f"{k}={_value(p)}" for k, p in info.params.items())
        progress.console.print(f"trial {info.number:>3} [{style}]{info.state:<8}[/] {shown}"
                               f"{' [bold green]best[/]' if better else ''}  [dim]{escape(params)}[/]",
                               highlight=False)
        tally = ", ".join(f"{n} {k.lower()}" for k, n in state["counts"].items() if k != "COMPLETE")
        progress.update(state["task"], completed=done,
                        description=f"best {_num(state['best'])}" + (f" ({tally})" if tally else ""))

    with progress:
        return tuner.fit(train, validation, on_trial=on_trial)


def _trials_table(result: TuningResult, top: int | None) -> Table:
    trials = list(result.trials)
    sign = 1 if result.direction == "maximize" else -1
    trials.sort(key=lambda t: (t.value is None, -sign * (t.value or 0.0), t.number))
    shown = trials[:top] if top else sorted(trials, key=lambda t: t.number)
    names: list[str] = []
    for t in shown:
        names += [k for k in t.params if k not in names]
    wide = len(names) > 4  # many hyperparameters: one wrapped column reads better than a dozen narrow ones
    title = f"top {len(shown)} of {len(trials)} trials" if top and len(trials) > len(shown) else "trials"
    cols = ["hyperparameters"] if wide else names
    table = Table("trial", "state", result.objective, *cols, "seconds", "run", title=title)
    best = result.best_trial.number if result.best_trial else None
    for t in shown:
        state = f"[{_STATE_STYLE.get(t.state, 'white')}]{t.state}[/]"
        if t.warm_start_from:
            state += " [dim](warm)[/]"
        elif t.interrupted:
            state += " [dim](interrupted)[/]"
        mark = "*" if t.number == best else ""
        if wide:
            cells = [escape(" ".join(f"{k}={_value(v)}" for k, v in t.params.items()))]
        else:
            cells = [escape(_value(t.params[n])) if n in t.params else "" for n in names]
        table.add_row(f"{t.number}{mark}", state, _num(t.value), *cells,
                      f"{t.duration_s:.1f}" if t.duration_s is not None else "", escape(t.run_id or ""))
    return table


def _print_result(result: TuningResult, top: int | None) -> None:
    style = _STATUS_STYLE.get(result.status, "white")
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(result.counts().items()))
    folds = result.spec.cv_folds if result.spec is not None else None
    cv = f", {folds}-fold CV" if folds else ""
    console.print(f"Tuning job [bold]{escape(result.job_id)}[/] [{style}]{result.status}[/]: {result.algorithm}, "
                  f"{result.strategy}, {result.objective} ({result.direction}{cv}); {counts or 'no trials'}; "
                  f"run {result.run_id}")
    if result.stopped_reason:
        console.print(f"  stopped early: {escape(result.stopped_reason)}")
    if result.error:
        console.print(f"  [red]error:[/] {escape(result.error)}")
    best = result.best_trial
    if best is not None:
        params = ", ".join(f"{k}={_value(v)}" for k, v in best.params.items())
        console.print(f"  best: trial {best.number}, {result.objective}={_num(best.value)} "
                      f"(run {best.run_id}): {escape(params)}")
    if result.model_run_id and result.model_run_id != (best.run_id if best else None):
        console.print(f"  best configuration trained on all the data: run {escape(result.model_run_id)}")
    if result.model_version:
        console.print(f"  registered the best model as {escape(result.model_version)}")
    if result.trials:
        console.print(_trials_table(result, top))


@tune_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List the tuning jobs of the workspace, newest first."""
    from loopml.tune import list_tuning_jobs

    with open_workspace() as ws:
        jobs = list_tuning_jobs(ws)
    if as_json:
        print_json([j.to_dict() for j in jobs])
        return
    if not jobs:
        console.print("no tuning jobs yet; start one with `loopml tune --algo ... --data ... --metric ...`")
        return
    t = Table("job", "status", "algorithm", "strategy", "objective", "trials", "best", "created")
    for j in jobs:
        t.add_row(escape(j.job_id), f"[{_STATUS_STYLE.get(j.status, 'white')}]{j.status}[/]", escape(j.algorithm),
                  j.strategy, escape(j.objective), f"{j.n_trials}/{j.max_trials}", _num(j.best_value),
                  j.created_at.strftime("%Y-%m-%d %H:%M") if j.created_at else "")
    console.print(t)


@tune_app.command("show")
def show_cmd(
    job: str = typer.Argument(..., help="Tuning job id."),
    report: str = typer.Option(None, "--report", help="Write the job's HTML report to this file."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a tuning job: status, best trial and every trial (and its HTML report with --report)."""
    from loopml.tune import get_tuning_job

    with open_workspace() as ws:
        result = get_tuning_job(ws, job)
        written = _write_report(ws, job, report) if report else None
    if as_json:
        print_json({**result.to_dict(), **({"report": written} if written else {})})
        return
    _print_result(result, top=None)
    if written:
        console.print(f"report: {escape(written)}")
