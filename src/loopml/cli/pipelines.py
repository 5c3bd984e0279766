"""``loopml pipelines``: run a pipeline file, list and show executions, resume a failed one, read step logs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, open_workspace, parse_pairs, print_json

if TYPE_CHECKING:
    from loopml.pipelines import ExecutionInfo, StepExecutionInfo

pipelines_app = typer.Typer(help="Pipelines as code: run, list, show and resume executions.", no_args_is_help=True)
app.add_typer(pipelines_app, name="pipelines")

_STYLE = {"Succeeded": "green", "Cached": "cyan", "Failed": "red", "Stopped": "red", "Skipped": "dim",
          "Executing": "yellow", "Starting": "yellow"}
_MARK = {"Succeeded": "✓", "Cached": "↺", "Failed": "✗", "Stopped": "■", "Skipped": "–", "Executing": "▶",
         "Starting": "▶"}
ExecutorOpt = typer.Option("local", "--executor", "-e",
                           help="Where steps run: local (worker processes), ray, thread or inline.")
WorkersOpt = typer.Option(None, "--workers", "-w", help="Steps at once (default: the CPUs).")
RayOpt = typer.Option(None, "--ray-address", help="Ray cluster for --executor ray (default: a local instance).")


def _status(s: str) -> str:
    return f"[{_STYLE.get(s, 'white')}]{s}[/]"


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def _note(s: StepExecutionInfo) -> str:
    if s.status == "Cached":
        return f"cached from {s.cached_from}"
    if s.status == "Skipped":
        return str(s.inputs.get("skipped_because", ""))
    if s.error:
        return s.error
    if s.kind == "condition":
        return str(s.outputs.get("detail", ""))
    return ""


def _progress(s: StepExecutionInfo) -> None:
    if s.status == "Executing" and s.error:  # an attempt failed; a retry is scheduled
        console.print(f"[yellow]⟳ {escape(s.name)}[/] {escape(s.error)}")
        return
    extra = _note(s) if s.status != "Succeeded" or s.kind == "condition" else ""
    attempt = f" (attempt {s.attempt})" if s.status == "Executing" and s.attempt > 1 else ""
    dur = f" {_dur(s.duration_s)}" if s.status in ("Succeeded", "Failed") else ""
    console.print(f"{_MARK.get(s.status, ' ')} {escape(s.name)} {_status(s.status)}{attempt}{dur}"
                  + (f"  [dim]{escape(extra)}[/]" if extra else ""))


def _render(ex: ExecutionInfo) -> None:
    head = f"[bold]{escape(ex.pipeline)}[/] execution [bold]{escape(ex.id)}[/]  {_status(ex.status)}"
    if ex.duration_s is not None:
        head += f" in {_dur(ex.duration_s)}"
    console.print(head)
    console.print(f"  version {ex.pipeline_version[:12]}, executor {ex.executor}, started "
                  f"{ex.start_time.isoformat(timespec='seconds')}"
                  + (f", resumed from {ex.resumed_from}" if ex.resumed_from else "")
                  + (f", idempotency key {escape(ex.idempotency_key)}" if ex.idempotency_key else ""))
    if ex.params:
        console.print("  params " + escape(", ".join(f"{k}={v!r}" for k, v in ex.params.items())))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("step", "kind", "status", "attempts", "duration", "note"):
        table.add_column(col, justify="right" if col in ("attempts", "duration") else "left",
                         no_wrap=col in ("step", "status"))
    recorded = {s.name: s for s in ex.steps}
    for name in ex.step_names or list(recorded):
        s = recorded.get(name)
        if s is None:
            table.add_row(escape(name), "", "[dim]not run[/]", "", "", "")
            continue
        table.add_row(escape(s.name), escape(s.kind), _status(s.status) + (" ↺" if s.status == "Cached" else ""),
                      str(s.attempt or ""), _dur(s.duration_s), escape(_note(s)))
    console.print(table)
    if ex.error:
        console.print(f"[red]{escape(ex.error)}[/]")


def _finish(ex: ExecutionInfo, as_json: bool) -> None:
    if as_json:
        print_json(ex.to_dict())
    else:
        _render(ex)
    if ex.status != "Succeeded":
        raise typer.Exit(1)


@pipelines_app.command("run")
def run_cmd(
    file: str = typer.Argument(..., help="A pipeline: YAML file, Python file (FILE.py[:NAME]) or module:NAME."),
    param: list[str] = typer.Option([], "--param", "-p", help="A parameter value NAME=VALUE (repeatable)."),
    executor: str = ExecutorOpt,
    workers: int = WorkersOpt,
    idempotency_key: str = typer.Option(None, "--idempotency-key",
                                        help="Return the execution with this key if there is one."),
    ray_address: str = RayOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Run pipeline FILE and show its steps as they go; exit 1 if it fails."""
    from loopml._util import utcnow
    from loopml.pipelines import run_pipeline

    params = parse_pairs(param, "--param", "threshold=0.8")
    called = utcnow()
    with open_workspace() as ws:
        ex = run_pipeline(ws, file, params, executor=executor, max_workers=workers, idempotency_key=idempotency_key,
                          ray_address=ray_address, on_step=None if as_json else _progress)
    if not as_json and idempotency_key and ex.created_at < called:
        console.print(f"[dim]an execution with idempotency key {escape(idempotency_key)} exists already[/]")
    _finish(ex, as_json)


@pipelines_app.command("resume")
def resume_cmd(
    execution: str = typer.Argument(..., help="A Failed or Stopped execution (id or unique prefix)."),
    file: str = typer.Option(None, "--file", "-f",
                             help="Run this (fixed) pipeline file instead of the definition the execution ran."),
    executor: str = ExecutorOpt,
    workers: int = WorkersOpt,
    ray_address: str = RayOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Resume EXECUTION: reuse the steps that succeeded, run the failed ones and the rest."""
    from loopml.pipelines import run_pipeline

    with open_workspace() as ws:
        ex = run_pipeline(ws, file, executor=executor, max_workers=workers, resume_from=execution,
                          ray_address=ray_address, on_step=None if as_json else _progress)
    _finish(ex, as_json)


@pipelines_app.command("list")
def list_cmd(
    pipeline: str = typer.Option(None, "--pipeline", help="Only executions of this pipeline."),
    status: str = typer.Option(None, "--status", help="Only Executing, Succeeded, Failed or Stopped ones."),
    limit: int = typer.Option(50, "--limit", "-n", help="At most this many, newest first."),
    as_json: bool = JsonOpt,
) -> None:
    """List pipeline executions, newest first."""
    from loopml.pipelines import list_executions

    with open_workspace() as ws:
        rows = list_executions(ws, pipeline=pipeline, status=status, limit=limit)
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    if not rows:
        console.print("no pipeline executions yet; run one with `loopml pipelines run FILE`")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("execution", "pipeline", "status", "steps", "started", "duration"):
        table.add_column(col, justify="right" if col == "duration" else "left",
                         no_wrap=col in ("execution", "status", "started"))
    for r in rows:
        done = sum(1 for s in r.steps if s.status in ("Succeeded", "Cached"))
        cached = sum(1 for s in r.steps if s.status == "Cached")
        table.add_row(escape(r.id), escape(r.pipeline), _status(r.status),
                      f"{done}/{len(r.step_names) or len(r.steps)}" + (f" ↺{cached}" if cached else ""),
                      r.start_time.strftime("%m-%d %H:%M"), _dur(r.duration_s))
    console.print(table)


@pipelines_app.command("show")
def show_cmd(
    execution: str = typer.Argument(..., help="The execution (id or unique prefix)."),
    as_json: bool = JsonOpt,
) -> None:
    """Show an execution: its parameters and every step's status, duration, attempts and cache marks."""
    from loopml.pipelines import get_execution

    with open_workspace() as ws:
        ex = get_execution(ws, execution)
    if as_json:
        print_json(ex.to_dict())
        return
    _render(ex)


@pipelines_app.command("logs")
def logs_cmd(
    execution: str = typer.Argument(..., help="The execution (id or unique prefix)."),
    step: str = typer.Argument(..., help="The step."),
) -> None:
    """Print the captured stdout/stderr of a step (every attempt)."""
    from loopml.pipelines import step_logs

    with open_workspace() as ws:
        text = step_logs(ws, execution, step)
    typer.echo(text, nl=not text.endswith("\n") and bool(text))


@pipelines_app.command("validate")
def validate_cmd(
    file: str = typer.Argument(..., help="A pipeline: YAML file, Python file (FILE.py[:NAME]) or module:NAME."),
    as_json: bool = JsonOpt,
) -> None:
    """Check a pipeline without running it, and print its steps in run order."""
    from loopml.pipelines import load_pipeline

    p = load_pipeline(file)
    order = p.order()
    deps = p.dependencies()
    if as_json:
        data: dict[str, Any] = {"name": p.name, "version": p.version, "order": order, "dependencies": deps,
                                "definition": p.to_dict()}
        print_json(data)
        return
    console.print(f"[green]{escape(p.name)} is valid[/]: {len(order)} steps, version {p.version[:12]}")
    for n in order:
        spec = p.step_spec(n)
        after = f" [dim]after {', '.join(deps[n])}[/]" if deps[n] else ""
        console.print(f"  {escape(n)} [dim]({spec.kind})[/]{after}")
