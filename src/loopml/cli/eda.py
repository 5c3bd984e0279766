"""``loopml eda``: profile a dataset version into a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

_SHOWN = 10


@app.command("eda")
def eda_cmd(
    ref: str = typer.Argument(..., help="Dataset NAME or NAME:VERSION (latest if no version)."),
    target: str = typer.Option(None, "--target", "-t", help="Target column: class balance or distribution, and each feature's association with it."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write the HTML report to this file."),
    sample_rows: int = typer.Option(None, "--sample-rows", min=10, help="Sample size for correlations, anomaly scores and target plots (default 50,000); counts and statistics stay exact."),
    seed: int = typer.Option(None, "--seed", help="Seed of the sample (default 0)."),
    task: str = typer.Option(None, "--task", help="classification or regression (default: inferred from the target)."),
    as_json: bool = JsonOpt,
) -> None:
    """Profile a dataset version: statistics, missing values, outliers, correlations, target, duplicates.

    Stores the JSON profile and the HTML report with the dataset version (see
    `loopml data show NAME`) and prints a summary with the warnings.
    """
    from loopml.eda import run_eda

    with open_workspace() as ws, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as progress:
        job = progress.add_task(f"profiling {ref}", total=None)
        res = run_eda(
            ws, ref, target, out, sample_rows=sample_rows, seed=seed, task=task,
            progress=lambda stage: progress.update(job, description=f"profiling {ref}: {stage}"),
        )
    summary = res.to_dict()
    if as_json:
        print_json(summary)
        return
    ov = res.profile.data["overview"]
    t = res.profile.target
    what = f"; target {t['column']} ({t['task']})" if t else ""
    sample = f", sampled analyses on {ov['sample']['rows']:,} rows" if ov["sample"]["sampled"] else ""
    console.print(
        f"[green]Profiled {res.dataset}[/]: {ov['rows']:,} rows × {ov['columns']} columns{what}{sample}"
    )
    console.print(f"  {summary['warnings']} warning(s), {summary['notes']} note(s)")
    warnings = res.profile.warnings
    for w in warnings[:_SHOWN]:
        mark = "[yellow]![/]" if w["severity"] == "warning" else "[blue]·[/]"
        console.print(f"  {mark} {w['message']}", markup=True, highlight=False)
    if len(warnings) > _SHOWN:
        console.print(f"  … and {len(warnings) - _SHOWN} more in the report")
    where = res.out or res.report_path or f"artifact {res.report_sha256}"
    console.print(f"Report: {where}")
    if not res.out:
        console.print("  (pass --out report.html to save a copy elsewhere)")
