"""``loopml transform``: batch predictions over files or a dataset (SageMaker's Batch Transform)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

if TYPE_CHECKING:
    from loopml.serve.transform import TransformProgress


@app.command("transform")
def transform_cmd(
    model: str = typer.Argument(..., help="Model M:V, M@ALIAS or M (newest approved), or a package folder."),
    input: str = typer.Option(..., "--input", "-i",
                              help="A file, folder or glob of CSV/JSONL/Parquet (any fsspec URL), "
                                   "or dataset:NAME[:VER]."),
    output: str = typer.Option(..., "--output", "-o", help="Output folder (any fsspec URL): one <input>.out each."),
    workers: int = typer.Option(2, "--workers", "-w", help="Worker processes (or Ray tasks in flight)."),
    executor: str = typer.Option("local", "--executor", help="local (worker processes), ray, or inline."),
    ray_address: str = typer.Option(None, "--ray-address", help="Ray cluster address (default: a local Ray)."),
    join_input: bool = typer.Option(False, "--join-input", help="Write the input columns before the prediction."),
    input_filter: str = typer.Option(None, "--input-filter",
                                     help="Columns sent to the model: names a,b or positions $[1:]."),
    output_filter: str = typer.Option(None, "--output-filter",
                                      help="Columns kept from the output record: names or positions $[0,-1]."),
    batch_rows: int = typer.Option(50_000, "--batch-rows", help="Records per chunk."),
    max_payload_mb: float = typer.Option(None, "--max-payload-mb", help="Also cut chunks at this many MB."),
    max_error_ratio: float = typer.Option(0.0, "--max-error-ratio",
                                          help="Share of bad records tolerated (0-1) before the job fails."),
    format: str = typer.Option(None, "--format", "-f",
                               help="Output format csv|jsonl|parquet (default: the input's)."),
    no_header: bool = typer.Option(False, "--no-header", help="CSV inputs have no header line."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Start over instead of resuming an unfinished job."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = JsonOpt,
) -> None:
    """Predict every record of --input with MODEL and write one <input>.out per input under --output.

    Resumable: rerun the same command after a crash and finished chunks are kept.
    """
    from loopml.serve.transform import transform

    with open_workspace() as ws, _Bar(enabled=not (quiet or as_json)) as bar:
        result = transform(
            ws, model, input, output, workers=workers, executor=executor, batch_rows=batch_rows,
            max_payload_mb=max_payload_mb, join_input=join_input, input_filter=input_filter,
            output_filter=output_filter, accept=format, max_error_ratio=max_error_ratio,
            resume=not no_resume, header=not no_header, ray_address=ray_address, on_progress=bar.update,
        )
    if as_json:
        print_json(result.to_dict())
        return
    resumed = f", {result.chunks_skipped} of {result.chunks} chunks from an earlier run" \
        if result.chunks_skipped else ""
    console.print(
        f"[green]Transformed {result.rows_in:,} records[/] with {escape(result.model)} in {result.seconds:.1f} s "
        f"({result.rows_per_s:,.0f} records/s, {result.chunks} chunks{resumed}); job {result.job_id}"
    )
    if result.errors:
        console.print(f"  [yellow]{result.errors:,} bad records[/] (no prediction): "
                      f"{escape(', '.join(result.error_files))}")
    for f in result.files:
        console.print(f"  {escape(f)}")


class _Bar:
    """A transient progress bar on stderr, fed by the transform's progress callback."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.p: Any = None
        self.task: Any = None

    def __enter__(self) -> _Bar:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self.p = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, transient=True)
            self.p.__enter__()
            self.task = self.p.add_task("records", total=None)
        return self

    def update(self, progress: TransformProgress) -> None:
        if self.p is None:
            return
        errors = f", {progress.errors:,} bad" if progress.errors else ""
        self.p.update(self.task, completed=progress.rows_done, total=progress.rows_total,
                      description=f"records ({progress.chunks_done} chunks{errors})")

    def __exit__(self, *exc: object) -> None:
        if self.p is not None:
            self.p.__exit__(None, None, None)
