"""``loopml demo``: the whole lifecycle on generated churn data, on the embedded defaults."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Column, Table

from loopml.cli._app import app, console


class RichUI:
    """Renders the demo's stages, lines and tables with rich."""

    def stage(self, title: str) -> None:
        """A rule with the stage's title."""
        console.rule(f"[bold]{escape(title)}")

    def say(self, text: str) -> None:
        """One line, printed as is."""
        console.print(text, markup=False, highlight=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table with a title."""
        t = Table(*[Column(c, overflow="fold") for c in columns], title=title, title_justify="left")
        for r in rows:
            t.add_row(*[escape(str(c)) for c in r])
        console.print(t)


@app.command()
def demo(
    path: Path = typer.Option(Path("demo-workspace"), "--path",
                              help="Folder for the demo workspace (a folder from an earlier demo is replaced)."),
    rows: int = typer.Option(None, "--rows", help="Customers in the first export (default 4000; 1000 with --quick)."),
    quick: bool = typer.Option(False, "--quick", help="Small data, 2 tuning trials, a short canary (CI)."),
    seed: int = typer.Option(7, "--seed", help="Seed of the generated data and of the tuner."),
) -> None:
    """Run the whole lifecycle on generated churn data and say where to look.

    Ingest with validation, EDA, a recipe, the feature store, training, tuning,
    evaluation with business metrics, registration and approval, a real-time
    endpoint over HTTP, a batch transform, a monitoring run that catches injected
    drift and raises an alarm, the trigger that retrains, a champion/challenger
    pipeline that deploys the winner by canary, and its readiness report.
    Exits 1 if any stage fails.
    """
    from dataclasses import replace

    from loopml._demo.lifecycle import DemoSettings, run_demo

    settings = DemoSettings.quick(rows) if quick else DemoSettings()
    if rows is not None:
        settings = replace(settings, rows=rows)
    settings = replace(settings, seed=seed)
    console.print(f"loopml demo: the lifecycle of a churn model in [bold]{escape(str(path.resolve()))}[/]")
    res = run_demo(path, settings, RichUI())

    console.rule("[bold]where to look")
    t = Table(Column("what", no_wrap=True), Column("where", overflow="fold"), show_header=False, box=None)
    t.add_row("workspace", escape(str(res.path)))
    for label, where in res.where:
        t.add_row(escape(label), escape(where))
    console.print(t)
    console.print(f"(run the commands inside the workspace: cd {escape(str(path))})")
    total = sum(s for _, s in res.timings)
    slow = ", ".join(f"{title.split('. ', 1)[-1].split(':')[0]} {s:.0f}s"
                     for title, s in sorted(res.timings, key=lambda x: -x[1])[:3])
    console.print(f"[green]demo finished in {total:.0f}s: every stage worked[/] (slowest: {escape(slow)})")
