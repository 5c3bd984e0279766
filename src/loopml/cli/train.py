"""``loopml train`` and ``loopml algorithms``: train a built-in algorithm, browse the algorithms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, parse_pairs, print_json

if TYPE_CHECKING:
    from loopml.train.algorithms import Algorithm

algorithms_app = typer.Typer(help="List the training algorithms and their hyperparameters.", no_args_is_help=True)
app.add_typer(algorithms_app, name="algorithms")


@app.command("train")
def train_cmd(
    algo: str = typer.Option(..., "--algo", "-a", help="Algorithm (see `loopml algorithms list`)."),
    data: str = typer.Option(..., "--data", "-d", help="Training dataset NAME[:VER]."),
    target: str = typer.Option(None, "--target", "-t", help="Target column (not for unsupervised algorithms)."),
    validation: str = typer.Option(None, "--validation", "-v", help="Validation dataset NAME[:VER]."),
    cv: int = typer.Option(None, "--cv", help="Cross-validate with K folds first (validation metrics = fold means), "
                                              "then train on all the rows."),
    hp: list[str] = typer.Option([], "--hp", help="Hyperparameter NAME=VALUE (repeatable)."),
    experiment: str = typer.Option("default", "--experiment", "-e", help="Tracking experiment."),
    recipe: str = typer.Option(None, "--recipe", "-r", help="Recipe YAML file, or NAME[:VER] of a fitted recipe."),
    timeout: float = typer.Option(None, "--timeout", help="Seconds before the job is killed."),
    role: list[str] = typer.Option([], "--role", help="ROLE=COLUMN, e.g. group=query_id or time=day (repeatable)."),
    problem_type: str = typer.Option(None, "--problem-type", help="binary, multiclass, regression, ranking, ... (default: from the target)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    name: str = typer.Option(None, "--name", help="Run name."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not print the job's log lines."),
    as_json: bool = JsonOpt,
) -> None:
    """Train ALGO on a dataset version in a separate process; record the run and the model package."""
    from loopml.train import Estimator, get_algorithm
    from loopml.train.hyperparameters import parse_assignments

    cls = get_algorithm(algo)
    values = cls.check_hyperparameters(parse_assignments(hp), parse_strings=True)
    given = {k: values[k] for k in parse_assignments(hp)}
    est = Estimator(algo, given, target=target, recipe=recipe, experiment=experiment, timeout=timeout,
                    seed=seed, problem_type=problem_type, roles=parse_pairs(role, "--role", "group=query_id"))

    def on_log(line: str) -> None:
        if not quiet:
            err_console.print(f"[dim]{escape(line)}[/]", highlight=False)

    result = est.fit(data, validation, cv=cv, run_name=name, on_log=on_log)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"[green]Trained {escape(algo)}[/] ({result.problem_type}) in {result.duration_s:.1f} s: "
                  f"run {result.run_id}")
    console.print(f"  model package {result.model_sha256[:16]}…  ({escape(str(result.model_path))})")
    console.print(_metrics_table(result.metrics))


def _metrics_table(metrics: dict[str, float]) -> Table:
    splits: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        split, _, name = key.partition(":")
        splits.setdefault(name, {})[split] = value
    cols = [c for c in ("train", "validation") if any(c in v for v in splits.values())]
    t = Table("metric", *cols, title="metrics")
    for name in sorted(splits):
        t.add_row(escape(name), *(f"{splits[name][c]:.6g}" if c in splits[name] else "" for c in cols))
    return t


@algorithms_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List the registered algorithms."""
    from loopml.train import list_algorithms

    algos = list_algorithms()
    if as_json:
        print_json([a.describe() for a in algos])
        return
    t = Table("name", "problem types", "input", "description")
    for a in algos:
        t.add_row(escape(a.name), escape(", ".join(a.problem_types)), a.input_kind, escape(a.description))
    console.print(t)


@algorithms_app.command("show")
def show_cmd(algo: str = typer.Argument(..., help="Algorithm name."), as_json: bool = JsonOpt) -> None:
    """Show an algorithm: problem types, roles, metrics and the hyperparameter schema."""
    from loopml.train import get_algorithm

    cls = get_algorithm(algo)
    if as_json:
        print_json(cls.describe())
        return
    _show(cls)


def _show(cls: type[Algorithm]) -> None:
    console.print(f"[bold]{escape(cls.name)}[/]: {escape(cls.description)}")
    console.print(f"  problem types  {', '.join(cls.problem_types)}")
    console.print(f"  input          {cls.input_kind}")
    for role, doc in cls.roles_doc.items():
        console.print(f"  role {escape(role):<9} {escape(doc)}")
    for p in cls.problem_types:
        per_iter = cls.iteration_metrics.get(p, ())
        extra = f" (per iteration: {', '.join(per_iter)})" if per_iter else ""
        console.print(f"  metrics ({p})  {escape(', '.join(cls.reported_metrics(p)))}{escape(extra)}")
    t = Table("name", "type", "default", "valid", "tuned in", "description", title="hyperparameters")
    for h in cls.hyperparameters:
        rng = h.search_range
        if not h.tunable:
            search = "-"
        elif rng is None:
            search = "all"
        else:
            search = f"{_num(rng[0])}..{_num(rng[1])}{' log' if h.log else ''}"
        only = f" ({', '.join(h.problem_types)} only)" if h.problem_types else ""
        t.add_row(escape(h.name), h.type, escape(repr(h.default) if isinstance(h.default, str) else str(h.default)),
                  escape(h.range_text() + (" or None" if h.nullable else "")), escape(search),
                  escape(h.description + only))
    console.print(t)


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)
