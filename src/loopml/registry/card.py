"""The model card: one Markdown page about a registered version.

It says what the model is (description, algorithm, hyperparameters), how
good it is (metrics), how to call it (signature), how its inputs are
prepared (the recipe), what it learned from (the training data versions and
their lineage back to the sources) and who decided what about it (approval
and alias history).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from loopml.errors import LoopmlError
from loopml.registry.versions import ModelVersionInfo, alias_history, get_model_version
from loopml.store.lineage import Edge, EntityRef

if TYPE_CHECKING:
    from loopml.workspace import Workspace

#: how many levels of lineage above a training dataset version the card follows
LINEAGE_DEPTH = 5


def _cell(value: Any, limit: int = 80) -> str:
    """A value for a Markdown table cell: one line, pipes escaped, long values shortened."""
    if isinstance(value, float):
        text = "" if math.isnan(value) else f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
    else:
        text = "" if value is None else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return out


def _names(ws: Workspace, refs: Iterable[EntityRef]) -> dict[EntityRef, str]:
    """Readable names for dataset and recipe versions (``customers:2``); other entities keep ``kind:id``."""
    from loopml.prep.models import RecipeVersion
    from loopml.store.models import Dataset, DatasetVersion

    refs = set(refs)
    out = {r: str(r) for r in refs}
    dsv = [r.id for r in refs if r.kind == "dataset_version"]
    rcp = [r.id for r in refs if r.kind == "recipe_version"]
    with ws.meta.session() as s:
        if dsv:
            for vid, name, version in s.execute(
                select(DatasetVersion.id, Dataset.name, DatasetVersion.version)
                .join(Dataset, Dataset.id == DatasetVersion.dataset_id).where(DatasetVersion.id.in_(dsv))
            ):
                out[EntityRef("dataset_version", vid)] = f"dataset {name}:{version}"
        if rcp:
            for rid, name, version in s.execute(
                select(RecipeVersion.id, RecipeVersion.name, RecipeVersion.version).where(RecipeVersion.id.in_(rcp))
            ):
                out[EntityRef("recipe_version", rid)] = f"recipe {name}:{version}"
    for r in refs:
        if r.kind == "source":
            out[r] = f"source {r.id}"
    return out


def _lineage_lines(ws: Workspace, edges: list[Edge]) -> list[str]:
    names = _names(ws, [e.src for e in edges] + [e.dst for e in edges])
    return [f"{'  ' * (e.depth - 1)}- {names[e.src]} --{e.relation}--> {names[e.dst]}" for e in edges]


def model_card(ws: Workspace, ref: str) -> str:
    """A Markdown model card for the version ``ref`` names.

    Parameters
    ----------
    ws
        The workspace.
    ref
        ``NAME:VERSION``, ``NAME@ALIAS`` or ``NAME``.

    Returns
    -------
    str
        Markdown: description, algorithm, hyperparameters, metrics,
        signature, recipe, training data with lineage, approval and alias history.
    """
    info = get_model_version(ws, ref)
    lines = [f"# Model card: {info.ref}", ""]
    lines += _summary(info)
    lines += ["", "## Description", "", info.description or "_No description was given._"]
    lines += ["", "## Algorithm", "", *_algorithm(info)]
    lines += ["", "## Hyperparameters", ""]
    lines += _table(["name", "value"], sorted(info.hyperparameters.items())) if info.hyperparameters else ["_None._"]
    lines += ["", "## Metrics", ""]
    lines += _table(["metric", "value"], sorted(info.metrics.items())) if info.metrics else [
        "_No metrics were recorded._"]
    lines += ["", "## Signature", "", *_signature(info)]
    lines += ["", "## Recipe", "", *_recipe(ws, info)]
    lines += ["", "## Training data", "", *_data(ws, info)]
    lines += ["", "## Approval history", ""]
    lines += _table(["when (UTC)", "status", "from", "by", "reason"], [
        (a.at.strftime("%Y-%m-%d %H:%M:%S"), a.status, a.previous_status or "", a.by, a.reason or "")
        for a in info.approvals
    ])
    moves = [m for m in alias_history(ws, info.name) if info.version in (m.version, m.previous_version)]
    if moves:
        lines += ["", "## Alias history", ""]
        lines += _table(["when (UTC)", "alias", "to", "from", "by", "reason"], [
            (m.at.strftime("%Y-%m-%d %H:%M:%S"), m.alias, "" if m.version is None else f"version {m.version}",
             "" if m.previous_version is None else f"version {m.previous_version}", m.by, m.reason or "")
            for m in moves
        ])
    return "\n".join(lines) + "\n"


def _summary(info: ModelVersionInfo) -> list[str]:
    status = info.approval_status
    if info.approval_by and info.approval_at:
        status += f" by {info.approval_by} on {info.approval_at:%Y-%m-%d %H:%M} UTC"
    if info.approval_reason:
        status += f" ({info.approval_reason})"
    rows: list[tuple[str, Any]] = [
        ("approval", status),
        ("aliases", ", ".join(info.aliases) or "none"),
        ("registered", f"{info.created_at:%Y-%m-%d %H:%M} UTC by {info.registered_by}"),
        ("model package", info.package_sha256),
    ]
    if info.run_id:
        d = info.details
        run = info.run_id + (f" ({d['run_name']}, experiment {d['experiment']})" if d.get("run_name") else "")
        rows.append(("training run", run))
        code = d.get("code_version")
        if code:
            rows.append(("code", f"{code.get('commit', '?')}{' (dirty)' if code.get('dirty') else ''}"))
    return _table(["", ""], rows)


def _algorithm(info: ModelVersionInfo) -> list[str]:
    d = info.details
    algo = d.get("algorithm") or {}
    out = [f"**{info.flavor}** ({info.problem_type})" + (f", `{algo['class']}`" if algo.get("class") else "")]
    if d.get("target"):
        out.append(f"- target column: `{d['target']}`")
    training = d.get("training") or {}
    if training:
        parts = [f"train {training.get('train')} ({training.get('train_rows', '?')} rows)"]
        if training.get("validation"):
            parts.append(f"validation {training['validation']} ({training.get('validation_rows', '?')} rows)")
        out.append("- trained on: " + ", ".join(parts))
    if d.get("roles"):
        out.append("- roles: " + ", ".join(f"{k} = `{v}`" for k, v in d["roles"].items()))
    if d.get("seed") is not None:
        out.append(f"- seed: {d['seed']}")
    libs = d.get("libraries") or {}
    if libs:
        out.append("- libraries: " + ", ".join(f"{k} {v}" for k, v in sorted(libs.items())))
    return out


def _signature(info: ModelVersionInfo) -> list[str]:
    sig = info.signature
    out = ["Inputs (what a caller sends, before the recipe):", ""]
    out += _table(["column", "type", "nullable"],
                  [(c.get("name"), c.get("type"), c.get("nullable")) for c in sig.get("inputs") or []])
    out += ["", "Outputs:", ""]
    out += _table(["name", "type", "description"], [
        (o.get("name"), o.get("type"), o.get("description", "") + (
            f" (labels: {', '.join(map(str, o['labels']))})" if o.get("labels") else ""))
        for o in sig.get("outputs") or []
    ])
    features = sig.get("features") or []
    if features:
        shown = ", ".join(f"`{f}`" for f in features[:50]) + (" ..." if len(features) > 50 else "")
        out += ["", f"Features the algorithm reads (after the recipe, {len(features)}): {shown}"]
    return out


def _recipe(ws: Workspace, info: ModelVersionInfo) -> list[str]:
    r = info.recipe
    if not r:
        return ["_None: the model reads its inputs as they are._"]
    if r.get("ref"):
        head = f"Catalog recipe **{r['ref']}**, applied before the model."
    elif r.get("auto"):
        head = "The default recipe: training encoded text and date columns itself (no recipe was given)."
    elif r.get("fitted_in_job"):
        head = "A recipe fitted on the training data by the training job" + (
            f" (from `{r['source']}`)." if r.get("source") else ".")
    else:
        head = "A fitted recipe given to the training job."
    out = [head, "", "It travels inside the model package and runs before the model, in serving and batch alike."]
    steps = _recipe_steps(ws, info)
    if steps:
        out += ["", *_table(["#", "step", "parameters"], [(st["step"], st["kind"], {k: v for k, v in st["params"].items() if k != "kind"}) for st in steps])]
    return out


def _recipe_steps(ws: Workspace, info: ModelVersionInfo) -> list[dict[str, Any]]:
    """The steps of the package's fitted recipe (empty when it cannot be read)."""
    from loopml.prep import FittedRecipe

    file = (info.recipe or {}).get("file")
    if not file:
        return []
    try:
        manifest = json.loads(ws.artifacts.get_bytes(info.package_sha256))
        sha = dict(manifest.get("files") or {}).get(file)
        if sha is None:
            return []
        return FittedRecipe.from_bytes(ws.artifacts.get_bytes(sha)).describe()
    except (LoopmlError, ValueError):
        return []


def _data(ws: Workspace, info: ModelVersionInfo) -> list[str]:
    if not info.datasets:
        training = (info.details.get("training") or {}).get("train")
        return [f"Not from the catalog: {training}." if training else "_No dataset versions were recorded._"]
    out = _table(["dataset", "role", "content hash"], [
        (f"{d['name']}:{d['version']}", d.get("role", ""), str(d.get("content_hash", ""))[:16])
        for d in info.datasets
    ])
    seen: set[str] = set()
    for d in info.datasets:
        if d["id"] in seen:
            continue
        seen.add(d["id"])
        edges = ws.lineage.upstream(EntityRef("dataset_version", d["id"]), depth=LINEAGE_DEPTH)
        out += ["", f"Lineage of {d['name']}:{d['version']}:", ""]
        out += _lineage_lines(ws, edges) if edges else ["- (no recorded sources)"]
    return out


__all__ = ["model_card"]
