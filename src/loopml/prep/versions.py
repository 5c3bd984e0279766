"""Recipe versions in a workspace: fit on a dataset version, store, load, apply.

A fitted recipe is stored as one JSON artifact (content-addressed, verified
on load, never a pickle) and a row in the ``recipes`` table; lineage links
``dataset_version --fitted--> recipe_version`` and, when applied,
``recipe_version --applied_to--> dataset_version`` (plus
``dataset_version --transformed_into--> dataset_version`` from input to output).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loopml._util import as_utc, new_id, parse_versioned_ref, utcnow
from loopml.data.catalog import Catalog, DatasetVersionInfo, DatasetWriter, check_dataset_name
from loopml.errors import InvalidInput, NotFound
from loopml.prep.models import RecipeVersion
from loopml.prep.recipe import FittedRecipe, Recipe
from loopml.store.lineage import EntityRef
from loopml.store.models import Dataset, DatasetVersion

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

RECIPE_VERSION_CREATED = "recipe.version_created"


def parse_recipe_ref(ref: str) -> tuple[str, int | None]:
    """Split ``NAME[:VER]`` into (name, version or None for the latest)."""
    return parse_versioned_ref(ref, "recipe")


@dataclass(frozen=True)
class RecipeVersionInfo:
    """Everything the workspace records about one fitted recipe version."""

    id: str
    name: str
    version: int
    spec: dict[str, Any]
    artifact_hash: str
    artifact_size: int
    dataset_version_id: str | None
    #: ``name:version`` of the dataset it was fitted on (None if that version is gone)
    fitted_on: str | None
    target: str | None
    input_columns: list[str]
    output_columns: list[str]
    report: dict[str, Any]
    created_at: datetime
    #: False when an identical fit already existed and was returned instead
    created: bool = True

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of this version."""
        return EntityRef("recipe_version", self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json`` output)."""
        return {
            "id": self.id, "name": self.name, "version": self.version, "ref": self.ref,
            "spec": self.spec, "artifact_hash": self.artifact_hash, "artifact_size": self.artifact_size,
            "dataset_version_id": self.dataset_version_id, "fitted_on": self.fitted_on,
            "target": self.target, "input_columns": self.input_columns,
            "output_columns": self.output_columns, "report": self.report,
            "created_at": self.created_at.isoformat(), "created": self.created,
        }


@dataclass(frozen=True)
class RecipeSummary:
    """A line of ``loopml prep list``."""

    name: str
    versions: int
    latest: int
    fitted_on: str | None
    updated_at: datetime


def _info(s: Session, row: RecipeVersion, created: bool = True) -> RecipeVersionInfo:
    fitted_on = None
    if row.dataset_version_id:
        hit = s.execute(
            select(Dataset.name, DatasetVersion.version)
            .join(DatasetVersion, DatasetVersion.dataset_id == Dataset.id)
            .where(DatasetVersion.id == row.dataset_version_id)
        ).first()
        fitted_on = f"{hit[0]}:{hit[1]}" if hit else None
    return RecipeVersionInfo(
        id=row.id, name=row.name, version=row.version, spec=dict(row.spec),
        artifact_hash=row.artifact_hash, artifact_size=row.artifact_size,
        dataset_version_id=row.dataset_version_id, fitted_on=fitted_on, target=row.target,
        input_columns=list(row.input_columns), output_columns=list(row.output_columns),
        report=dict(row.report), created_at=as_utc(row.created_at), created=created,
    )


def _latest(s: Session, name: str) -> RecipeVersion | None:
    return s.scalar(
        select(RecipeVersion).where(RecipeVersion.name == name).order_by(RecipeVersion.version.desc()).limit(1)
    )


def _as_recipe(recipe: Recipe | str | Path) -> Recipe:
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, (str, Path)):
        return Recipe.load(recipe)
    raise InvalidInput(f"expected a Recipe or the path of a recipe YAML file, got {type(recipe).__name__}")


# -- fitting ------------------------------------------------------------------------------------------
def fit_recipe(
    ws: Workspace,
    recipe: Recipe | str | Path,
    data: str,
    name: str,
    *,
    target: str | None = None,
    out: str | None = None,
) -> RecipeVersionInfo:
    """Fit a recipe on a dataset version and store it as a new version of recipe ``name``.

    Parameters
    ----------
    ws
        The workspace.
    recipe
        A :class:`Recipe`, or the path of a recipe YAML file.
    data
        The dataset version to fit on, ``NAME[:VER]``.
    name
        The recipe's name; each fit makes the next version (an identical fit
        of the same data returns the existing version, ``created=False``).
    target
        The target column (overrides the recipe's ``target:``).
    out
        Also write the transformed fitting data as dataset ``out``: the rows
        a model should train on (target encodings out-of-fold).

    Returns
    -------
    RecipeVersionInfo
        The stored version (``ref`` is ``name:version``).

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.data import Catalog
    >>> from loopml.prep import Recipe, fit_recipe, load_recipe
    >>> from loopml.prep.steps import Standardize
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> _ = Catalog(ws).write("nums", pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    >>> fit_recipe(ws, Recipe([Standardize(columns=["x"])]), "nums", "scale").ref
    'scale:1'
    >>> load_recipe(ws, "scale").transform_one({"x": 2.0})
    {'x': 0.0}
    """
    if ":" in name:
        raise InvalidInput(f"give the recipe name without a version, got {name!r}")
    parse_recipe_ref(name)
    if out is not None:
        check_dataset_name(out)
    spec = _as_recipe(recipe)
    cat = Catalog(ws)
    dinfo = cat.get(data)
    df = cat.read_pandas(dinfo)
    started = time.monotonic()
    fitted, train_out = spec.fit_transform(df, target=target)
    blob = fitted.to_bytes()
    art = ws.artifacts.put_bytes(blob)
    report = {"fit_rows": len(df), "output_rows": len(train_out), "steps": fitted.fit_report,
              "fit_seconds": round(time.monotonic() - started, 3)}
    info = _record(ws, name, spec, fitted, art.sha256, art.size, dinfo, report)
    log.info("fitted recipe %s on %s (%d rows)", info.ref, dinfo.ref, len(df))
    if out is not None:
        _write(ws, out, fitted, [train_out], info, dinfo, {"out_of_fold": True})
    return info


def _record(
    ws: Workspace, name: str, spec: Recipe, fitted: FittedRecipe, sha256: str, size: int,
    dinfo: DatasetVersionInfo, report: dict[str, Any],
) -> RecipeVersionInfo:
    for attempt in range(10):
        try:
            with ws.meta.session(write=True) as s:
                latest = _latest(s, name)
                if latest is not None and latest.artifact_hash == sha256 and latest.dataset_version_id == dinfo.id:
                    return _info(s, latest, created=False)
                row = RecipeVersion(
                    id=new_id("rcp"), name=name, version=(latest.version + 1) if latest else 1,
                    spec=spec.to_dict(), artifact_hash=sha256, artifact_size=size,
                    dataset_version_id=dinfo.id, target=fitted.target,
                    input_columns=fitted.input_columns, output_columns=fitted.output_columns,
                    report=report, created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                info = _info(s, row)
                ws.lineage.add(dinfo.entity, info.entity, "fitted", session=s)
                ws.events.emit(RECIPE_VERSION_CREATED, info.entity,
                               {"recipe": name, "version": info.version, "dataset": dinfo.ref}, session=s)
                return info
        except sa_exc.IntegrityError:
            # another process took this version number: try the next one
            if attempt == 9:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


# -- reading -------------------------------------------------------------------------------------------
def get_recipe(ws: Workspace, ref: str) -> RecipeVersionInfo:
    """Look up ``NAME[:VER]`` (the latest version if none is given)."""
    name, ver = parse_recipe_ref(ref)
    with ws.meta.session() as s:
        latest = _latest(s, name)
        if latest is None:
            raise NotFound(f"no recipe named {name!r}; see `loopml prep list`")
        if ver is None:
            return _info(s, latest)
        row = s.scalar(select(RecipeVersion).where(RecipeVersion.name == name, RecipeVersion.version == ver))
        if row is None:
            raise NotFound(
                f"recipe {name!r} has no version {ver} (latest is {latest.version}); see `loopml prep show {name}`"
            )
        return _info(s, row)


def recipe_versions(ws: Workspace, name: str) -> list[RecipeVersionInfo]:
    """Every version of recipe ``name``, oldest first."""
    parse_recipe_ref(name)
    with ws.meta.session() as s:
        rows = s.scalars(select(RecipeVersion).where(RecipeVersion.name == name).order_by(RecipeVersion.version))
        out = [_info(s, r) for r in rows]
    if not out:
        raise NotFound(f"no recipe named {name!r}; see `loopml prep list`")
    return out


def list_recipes(ws: Workspace) -> list[RecipeSummary]:
    """Every recipe with its number of versions and latest version."""
    with ws.meta.session() as s:
        agg = (
            select(RecipeVersion.name, func.count().label("n"), func.max(RecipeVersion.version).label("latest"))
            .group_by(RecipeVersion.name)
            .subquery()
        )
        q = (
            select(RecipeVersion, agg.c.n)
            .join(agg, (agg.c.name == RecipeVersion.name) & (agg.c.latest == RecipeVersion.version))
            .order_by(RecipeVersion.name)
        )
        return [
            RecipeSummary(row.name, n, row.version, _info(s, row).fitted_on, as_utc(row.created_at))
            for row, n in s.execute(q)
        ]


def load_recipe(ws: Workspace, ref: str) -> FittedRecipe:
    """Load a fitted recipe ``NAME[:VER]``; its artifact is hash-verified before it is read.

    Returns
    -------
    FittedRecipe
        Ready for ``transform(df)`` and ``transform_one(record)``.
    """
    return _load(ws, ref)[0]


def _load(ws: Workspace, ref: str) -> tuple[FittedRecipe, RecipeVersionInfo]:
    info = get_recipe(ws, ref)
    return FittedRecipe.from_bytes(ws.artifacts.get_bytes(info.artifact_hash)), info


# -- applying -------------------------------------------------------------------------------------------
def apply_recipe(
    ws: Workspace,
    recipe: str,
    data: str,
    out: str,
    *,
    batch_size: int = 65_536,
    progress: Callable[[int], None] | None = None,
) -> DatasetVersionInfo:
    """Transform a dataset version with a fitted recipe into a new version of dataset ``out``.

    Rows keep their order. When every step is row-wise the data streams in
    batches of ``batch_size`` rows; otherwise (duplicates, point-in-time
    steps) it is transformed whole. Nothing is written unless the whole
    transform succeeds. The output version's ``source`` holds the recipe,
    the input and the per-step report (values coerced, rows dropped, ...).

    Parameters
    ----------
    ws
        The workspace.
    recipe
        ``NAME[:VER]`` of a fitted recipe.
    data
        ``NAME[:VER]`` of the dataset version to transform.
    out
        Name of the output dataset.
    batch_size
        Rows per batch when streaming.
    progress
        Called with the number of rows done so far.
    """
    if batch_size < 1:
        raise InvalidInput(f"batch_size must be positive, got {batch_size}")
    fitted, rinfo = _load(ws, recipe)
    cat = Catalog(ws)
    dinfo = cat.get(data)
    fitted.check_columns(dinfo.columns)
    if fitted.streamable:
        frames: Any = (b.to_pandas() for b in cat.iter_batches(dinfo, batch_size=batch_size))
    else:
        frames = [cat.read_pandas(dinfo)]
    return _write(ws, out, fitted, frames, rinfo, dinfo, {}, transform=True, progress=progress)


def _write(
    ws: Workspace, out: str, fitted: FittedRecipe, frames: Any, rinfo: RecipeVersionInfo,
    dinfo: DatasetVersionInfo, extra: dict[str, Any], *, transform: bool = False,
    progress: Callable[[int], None] | None = None,
) -> DatasetVersionInfo:
    report: dict[str, Any] = {}
    source = {"kind": "recipe", "recipe": rinfo.ref, "input": dinfo.ref, **extra}
    rows = 0
    wrote = False
    with DatasetWriter(ws, out, source=source) as w:
        for df in frames:
            result = fitted.transform(df, report=report) if transform else df
            rows += len(df)
            if len(result) or not wrote:  # an empty first batch still fixes the schema
                w.write(_nonempty(fitted.arrow_table(result)))
                wrote = True
            if progress is not None:
                progress(rows)
        if not wrote:
            w.write(_nonempty(fitted.output_schema.empty_table()))
        if transform:
            w.source["report"] = report
        info = w.commit(lineage=[(dinfo.entity, "transformed_into"), (rinfo.entity, "applied_to")])
    log.info("applied recipe %s to %s -> %s (%d rows)", rinfo.ref, dinfo.ref, info.ref, info.row_count)
    return info


def _nonempty(table: pa.Table) -> pa.Table | pa.RecordBatch:
    """A table, or for no rows one empty batch (an empty table has no batches, hence no schema)."""
    if table.num_rows:
        return table
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in table.schema], schema=table.schema)


__all__ = [
    "RECIPE_VERSION_CREATED",
    "RecipeSummary",
    "RecipeVersionInfo",
    "apply_recipe",
    "fit_recipe",
    "get_recipe",
    "list_recipes",
    "load_recipe",
    "parse_recipe_ref",
    "recipe_versions",
]
