"""``loopml models``: the model registry — register, list, show, approve, reject, alias, export."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from loopml.cli._app import JsonOpt, app, console, err_console, open_workspace, print_json

if TYPE_CHECKING:
    from loopml.registry import ModelVersionInfo

models_app = typer.Typer(help="The model registry: versions, approval, aliases, model cards, export.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")

_STATUS_STYLE = {"Approved": "green", "Rejected": "red", "PendingManualApproval": "yellow"}
ByOpt = typer.Option(None, "--by", help="Who decides (default: your login name).")


def _status(s: str) -> str:
    return f"[{_STATUS_STYLE.get(s, 'white')}]{s}[/]"


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.6g}" if isinstance(v, float) else escape(str(v))


def _headline(v: ModelVersionInfo) -> str:
    aliases = f" @{', @'.join(v.aliases)}" if v.aliases else ""
    return f"[bold]{escape(v.ref)}[/]{escape(aliases)}  {_status(v.approval_status)}  {escape(v.flavor)} ({v.problem_type})"


@models_app.command("register")
def register_cmd(
    run: str = typer.Argument(..., help="The training run (id or unique prefix), or a model package id or folder."),
    name: str = typer.Option(..., "--name", "-n", help="The model to add a version to (created if new)."),
    description: str = typer.Option(None, "--description", "-d", help="What this version is."),
    approve: bool = typer.Option(False, "--approve", help="Register it already Approved."),
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Register the model package of RUN as the next version of model NAME."""
    from loopml.registry import APPROVED, PENDING, register_model

    with open_workspace() as ws:
        info = register_model(ws, run, name, description, APPROVED if approve else PENDING, by=by)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"[green]Registered {escape(info.ref)}[/] ({_status(info.approval_status)}) from "
                  f"{escape(info.run_id or 'package ' + info.package_sha256[:12])}")
    if info.approval_status != APPROVED:
        console.print(f"  approve it with `loopml models approve {escape(info.ref)}`")


@models_app.command("list")
def list_cmd(
    name: str = typer.Argument(None, help="List the versions of this model (default: list the models)."),
    as_json: bool = JsonOpt,
) -> None:
    """List the models, or the versions of model NAME."""
    from loopml.registry import list_models, list_versions

    with open_workspace() as ws:
        if name is None:
            models = list_models(ws)
        else:
            versions = list_versions(ws, name)
    if name is None:
        if as_json:
            print_json([m.to_dict() for m in models])
            return
        if not models:
            console.print("No models yet. Register one with `loopml models register RUN --name NAME`.")
            return
        t = Table("model", "versions", "latest", "latest approved", "aliases", "updated")
        for m in models:
            t.add_row(escape(m.name), str(m.versions), str(m.latest_version),
                      "" if m.latest_approved is None else str(m.latest_approved),
                      escape(", ".join(f"{a}: {v}" for a, v in m.aliases.items())),
                      m.updated_at.strftime("%Y-%m-%d %H:%M"))
        console.print(t)
        return
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    keys = _main_metrics(versions)
    t = Table(title=escape(name))
    t.add_column("version", no_wrap=True)
    t.add_column("status", no_wrap=True)
    t.add_column("aliases")
    t.add_column("flavor")
    t.add_column("run", no_wrap=True)
    for k in keys:
        t.add_column(escape(k))
    t.add_column("registered")
    for v in versions:
        t.add_row(str(v.version), _status(v.approval_status), escape(", ".join(v.aliases)), escape(v.flavor),
                  escape(v.run_id or ""), *(_num(v.metrics.get(k)) for k in keys),
                  v.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(t)


def _main_metrics(versions: list[ModelVersionInfo], most: int = 2) -> list[str]:
    """The metrics worth a column: validation ones first, then training ones."""
    keys = sorted({k for v in versions for k in v.metrics})
    ranked = [k for k in keys if k.startswith("validation:")] + [k for k in keys if k.startswith("train:")]
    preferred = [k for k in ranked if k.split(":", 1)[1] in ("auc", "rmse", "accuracy", "f1", "r2")]
    return list(dict.fromkeys(preferred + ranked + keys))[:most]


@models_app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION, NAME@ALIAS, or NAME (latest approved, else latest)."),
    card: bool = typer.Option(False, "--card", help="Print the model card (Markdown)."),
    as_json: bool = JsonOpt,
) -> None:
    """Show a model version: status, aliases, metrics, data, recipe, lineage, approvals."""
    from loopml.registry import get_model_version, model_card

    with open_workspace() as ws:
        info = get_model_version(ws, ref)
        text = model_card(ws, info.ref) if card else None
        lineage = ws.lineage.upstream(info.entity, depth=1) + ws.lineage.downstream(info.entity, depth=1)
    if as_json:
        out = info.to_dict()
        out["lineage"] = [{"src": str(e.src), "relation": e.relation, "dst": str(e.dst)} for e in lineage]
        if text is not None:
            out["card"] = text
        print_json(out)
        return
    if text is not None:
        typer.echo(text, nl=False)
        return
    console.print(_headline(info))
    if info.description:
        console.print(f"  {escape(info.description)}")
    console.print(f"  package   {info.package_sha256}")
    if info.run_id:
        console.print(f"  run       {escape(info.run_id)}")
    console.print(f"  registered {info.created_at:%Y-%m-%d %H:%M:%S} UTC by {escape(info.registered_by)}")
    if info.datasets:
        console.print("  data      " + escape(", ".join(f"{d['name']}:{d['version']} ({d['role']})"
                                                    for d in info.datasets)))
    recipe = info.recipe or {}
    if recipe:
        console.print("  recipe    " + escape(str(recipe.get("ref") or ("default (auto)" if recipe.get("auto")
                                                                    else "fitted in the training job"))))
    if info.metrics:
        t = Table("metric", "value", title="metrics")
        for k, v in sorted(info.metrics.items()):
            t.add_row(escape(k), _num(v))
        console.print(t)
    t = Table("when (UTC)", "status", "by", "reason", title="approval history")
    for a in info.approvals:
        t.add_row(a.at.strftime("%Y-%m-%d %H:%M:%S"), _status(a.status), escape(a.by), escape(a.reason or ""))
    console.print(t)
    for e in lineage:
        console.print(f"  {escape(str(e.src))} --{escape(e.relation)}--> {escape(str(e.dst))}")


def _print_decision(info: ModelVersionInfo, as_json: bool) -> None:
    if as_json:
        print_json(info.to_dict())
        return
    console.print(_headline(info) + (f"  ({escape(info.approval_reason)})" if info.approval_reason else ""))


@models_app.command("approve")
def approve_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION or NAME@ALIAS."),
    reason: str = typer.Option(None, "--reason", "-r", help="Why (kept in the approval history)."),
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve a model version for deployment."""
    from loopml.registry import approve

    with open_workspace() as ws:
        info = approve(ws, ref, by=by, reason=reason)
    _print_decision(info, as_json)


@models_app.command("reject")
def reject_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION or NAME@ALIAS."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why it is rejected."),
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject a model version (it loses its staging alias)."""
    from loopml.registry import reject

    with open_workspace() as ws:
        info = reject(ws, ref, reason, by=by)
    _print_decision(info, as_json)


@models_app.command("alias")
def alias_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION or NAME@ALIAS (NAME with --remove)."),
    alias: str = typer.Argument(..., help="staging, production or archived."),
    remove: bool = typer.Option(False, "--remove", help="Take the alias off the model instead."),
    reason: str = typer.Option(None, "--reason", "-r", help="Why (kept in the alias history)."),
    by: str = ByOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Point ALIAS of a model at a version (it leaves the version it pointed at)."""
    from loopml.registry import parse_model_ref, remove_alias, set_alias

    with open_workspace() as ws:
        if remove:
            name = parse_model_ref(ref)[0]
            remove_alias(ws, name, alias, by=by)
            if as_json:
                print_json({"model": name, "alias": alias, "removed": True})
            else:
                console.print(f"Removed alias {escape(alias)} of {escape(name)}")
            return
        info = set_alias(ws, ref, alias, by=by, reason=reason)
    if as_json:
        print_json(info.to_dict())
        return
    console.print(f"{escape(info.name)}@{escape(alias)} -> version {info.version}")


@models_app.command("export")
def export_cmd(
    ref: str = typer.Argument(..., help="NAME:VERSION, NAME@ALIAS or NAME."),
    format: str = typer.Option(..., "--format", "-f", help="onnx or mlflow."),
    out: Path = typer.Option(..., "--out", "-o", help="A new (or empty) folder to write."),
    rows: int = typer.Option(200, "--rows", help="ONNX: rows in the parity check."),
    tolerance: float = typer.Option(1e-4, "--tolerance", help="ONNX: largest difference allowed from the native model."),
    as_json: bool = JsonOpt,
) -> None:
    """Export a model version to the MLflow model format or to ONNX (parity-checked)."""
    from loopml.registry import export_model

    with open_workspace() as ws, err_console.status(f"exporting {ref} to {format}"):
        res = export_model(ws, ref, format, out, rows=rows, tolerance=tolerance)
    if as_json:
        print_json(res.to_dict())
        return
    console.print(f"[green]Exported {escape(res.model)}[/] as {format} to {escape(str(res.path))}")
    for f in res.files:
        console.print(f"  {escape(f)}")
    if res.parity is not None:
        p = res.parity
        console.print(f"  parity: max |onnx - native| = {p.max_abs_diff:.3g} in {p.compared} on {p.rows} rows "
                      f"({escape(p.rows_from)}), tolerance {p.tolerance:g}")
    if res.edge is not None:  # the edge bundle (edge.json): recipe in the graph or not, and single-row latency
        e, lat = res.edge, res.edge.get("latency") or {}
        where = (f"recipe + model in {e['graph']} ({len(e['inputs'])} raw inputs)" if e["layout"] == "raw"
                 else f"the recipe stays outside {e['graph']}: {e['recipe']['reason']}")
        ms = (f"; 1 row: {lat['edge_predict_one']['p50_ms']:.3f} ms (native {lat['native_predict_one']['p50_ms']:.3f} ms)"
              if "edge_predict_one" in lat else "")
        console.print(f"  edge: {escape(where)}{ms}; loopml.edge.load({escape(str(res.path))!r})")
