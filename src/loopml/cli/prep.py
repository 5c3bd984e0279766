"""``loopml prep``: fit preprocessing recipes on datasets and apply them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

prep_app = typer.Typer(help="Fit preprocessing recipes on datasets and apply them.", no_args_is_help=True)
app.add_typer(prep_app, name="prep")


@prep_app.command("fit")
def fit_cmd(
    data: str = typer.Argument(..., help="Dataset to fit on: NAME or NAME:VERSION."),
    recipe: Path = typer.Option(..., "--recipe", "-r", help="Recipe YAML file."),
    name: str = typer.Option(..., "--name", "-n", help="Recipe name (each fit makes its next version)."),
    target: str = typer.Option(None, "--target", help="Target column (overrides the recipe's target:)."),
    out: str = typer.Option(None, "--out", help="Also write the transformed fitting data (out-of-fold encodings) as this dataset."),
    as_json: bool = JsonOpt,
) -> None:
    """Fit the recipe in a YAML file on a dataset version and store it as recipe NAME."""
    from loopml.data import Catalog
    from loopml.prep import fit_recipe

    with open_workspace() as ws:
        with err_console.status(f"fitting {recipe} on {data}"):
            info = fit_recipe(ws, recipe, data, name, target=target, out=out)
        out_info = Catalog(ws).get(out) if out else None
    if as_json:
        print_json({**info.to_dict(), "out": out_info.ref if out_info else None})
        return
    if not info.created:
        console.print(f"[yellow]Unchanged:[/] the same fit of {info.fitted_on} is {info.ref}; no new version")
    else:
        steps = len(info.spec.get("steps", []))
        console.print(
            f"[green]Created {info.ref}[/]: {steps} step(s) fitted on {info.fitted_on} "
            f"({info.report.get('fit_rows', 0):,} rows), {len(info.output_columns)} output columns"
        )
    for key, counts in info.report.get("steps", {}).items():
        console.print(f"  step {key}: " + ", ".join(f"{k} {_num(v)}" for k, v in counts.items()))
    if out_info is not None:
        console.print(f"  training data written to {out_info.ref} ({out_info.row_count:,} rows)")


@prep_app.command("apply")
def apply_cmd(
    recipe: str = typer.Argument(..., help="Fitted recipe: RECIPE or RECIPE:VERSION."),
    data: str = typer.Argument(..., help="Dataset to transform: NAME or NAME:VERSION."),
    name: str = typer.Option(..., "--name", "-n", help="Output dataset name."),
    batch_size: int = typer.Option(65_536, "--batch-size", help="Rows per batch when the recipe streams."),
    as_json: bool = JsonOpt,
) -> None:
    """Transform a dataset version with a fitted recipe into a new dataset version."""
    from loopml.prep import apply_recipe

    with open_workspace() as ws, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        task = progress.add_task(f"applying {recipe} to {data}", total=None)
        info = apply_recipe(
            ws, recipe, data, name, batch_size=batch_size,
            progress=lambda n: progress.update(task, description=f"applying {recipe}: {n:,} rows"),
        )
    if as_json:
        print_json(info.to_dict())
        return
    if not info.created:
        console.print(f"[yellow]Unchanged:[/] the result equals {info.ref}; no new version created")
        return
    console.print(f"[green]Created {info.ref}[/]: {info.row_count:,} rows, {len(info.schema)} columns")
    for key, counts in info.source.get("report", {}).items():
        console.print(f"  step {key}: " + ", ".join(f"{k} {_num(v)}" for k, v in counts.items()))


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


@prep_app.command("list")
def list_cmd(as_json: bool = JsonOpt) -> None:
    """List recipes with their latest version."""
    from loopml.prep import list_recipes

    with open_workspace() as ws:
        rows = list_recipes(ws)
    if as_json:
        print_json([r.__dict__ for r in rows])
        return
    if not rows:
        console.print("No recipes yet. Fit one with `loopml prep fit DATA --recipe recipe.yaml --name NAME`.")
        return
    t = Table("name", "versions", "latest", "fitted on", "updated")
    for r in rows:
        t.add_row(r.name, str(r.versions), str(r.latest), r.fitted_on or "-", r.updated_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


@prep_app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="RECIPE or RECIPE:VERSION."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a recipe version: its steps, what each learned, its columns and lineage."""
    from loopml.prep import recipe_versions
    from loopml.prep.versions import _load

    with open_workspace() as ws:
        fitted, info = _load(ws, ref)
        versions = [v.version for v in recipe_versions(ws, info.name)]
        up = ws.lineage.upstream(info.entity, depth=1)
        down = ws.lineage.downstream(info.entity, depth=1)
    lineage = {
        "upstream": [{"from": str(e.src), "relation": e.relation} for e in up],
        "downstream": [{"to": str(e.dst), "relation": e.relation} for e in down],
    }
    steps = fitted.describe()
    if as_json:
        print_json({**info.to_dict(), "versions": versions, "steps": steps,
                    "required_columns": fitted.required, "streamable": fitted.streamable,
                    "lineage": lineage})
        return
    console.print(f"[bold]{info.ref}[/]  ({len(versions)} version(s); id {info.id})")
    console.print(f"  created    {info.created_at:%Y-%m-%d %H:%M:%S} UTC")
    console.print(f"  fitted on  {info.fitted_on or '-'} ({info.report.get('fit_rows', 0):,} rows)"
                  + (f", target {info.target}" if info.target else ""))
    console.print(f"  artifact   {info.artifact_hash[:16]}… ({info.artifact_size:,} bytes)")
    console.print(f"  streams    {'yes' if fitted.streamable else 'no (needs whole data sets)'}")
    t = Table("#", "kind", "parameters", "learned", title="steps")
    for s in steps:
        params = ", ".join(f"{k}={v}" for k, v in s["params"].items() if k != "kind")
        learned = ", ".join(f"{k}={_brief(v)}" for k, v in s["learned"].items())
        t.add_row(str(s["step"]), s["kind"], _brief(params, 60), _brief(learned, 60))
    console.print(t)
    console.print(f"  reads      {', '.join(fitted.required) or '-'}")
    console.print(f"  outputs    {_brief(', '.join(info.output_columns), 200)}")
    for e in lineage["upstream"]:
        console.print(f"  ← {e['relation']} {e['from']}")
    for e in lineage["downstream"]:
        console.print(f"  → {e['relation']} {e['to']}")


def _brief(v: Any, n: int = 40) -> str:
    s = str(v)
    return s if len(s) <= n else s[: n - 1] + "…"
