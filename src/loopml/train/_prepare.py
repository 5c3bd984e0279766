"""The data side of a training job: read inputs, choose the problem type, encode the target, sign the model.

Pure functions of frames (plus reading artifacts), used by the job process
and testable on their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from loopml.errors import InvalidInput
from loopml.train.algorithms._base import (
    ANOMALY_DETECTION,
    BINARY,
    CLASSIFICATION,
    CLUSTERING,
    DIMENSIONALITY_REDUCTION,
    FORECASTING,
    MULTICLASS,
    RANKING,
    RECOMMENDATION,
    REGRESSION,
    SUPERVISED,
    Algorithm,
)

if TYPE_CHECKING:
    import pandas as pd

    from loopml.prep import Recipe

log = logging.getLogger(__name__)

#: integer targets with at most this many distinct values are read as classes
MAX_INTEGER_CLASSES = 20


# -- reading ----------------------------------------------------------------------------------------
def read_source(source: Mapping[str, Any], artifact_root: str | None) -> pd.DataFrame:
    """Read a job input: the Parquet parts of a catalog version, or an Arrow IPC file the caller wrote."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    kind = source.get("kind")
    if kind == "file":
        with pa.memory_map(str(source["path"]), "r") as f:
            table = pa.ipc.open_file(f).read_all()
    elif kind == "catalog":
        from loopml.store.artifacts import ArtifactStore

        if artifact_root is None:
            raise InvalidInput("the job spec names catalog data but no artifact store")
        store = ArtifactStore(artifact_root)
        tables = []
        for sha in source["parts"]:
            with store.open(sha) as f:
                tables.append(pq.read_table(f))
        if tables:
            table = pa.concat_tables(tables, promote_options="permissive")
        else:
            from loopml.data.catalog import _arrow_type

            table = pa.schema([pa.field(c["name"], _arrow_type(c["type"])) for c in source["schema"]]).empty_table()
    else:
        raise InvalidInput(f"unknown job input kind {kind!r}")
    df = table.to_pandas()
    df.index = range(len(df))  # unique labels: recipes keep the index, rows are matched by it
    return df


# -- the problem type ---------------------------------------------------------------------------------
def infer_problem_type(
    algo: type[Algorithm], y: pd.Series | None, explicit: str | None, roles: Mapping[str, str],
) -> tuple[str, str]:
    """Choose the problem type; return it with a short reason for the logs.

    Unsupervised algorithms take their (first) problem type. With a target:
    text, booleans and categories are classes; integers with at most
    :data:`MAX_INTEGER_CLASSES` distinct values are classes (2: binary);
    floats that are all 0/1 are binary; anything else is regression. A
    ``group`` role means ranking; forecasting algorithms forecast.
    """
    import pandas as pd

    if explicit is not None:
        algo.check_problem_type(explicit)
        return explicit, "given"
    types = algo.problem_types
    supervised = [t for t in types if t in SUPERVISED]
    if not supervised or y is None:
        unsupervised = [t for t in types if t not in SUPERVISED]
        if unsupervised:
            return unsupervised[0], f"{algo.name} is unsupervised"
        raise InvalidInput(f"{algo.name} needs a target column; pass target=COLUMN (--target)")
    if FORECASTING in types:
        return FORECASTING, f"{algo.name} forecasts"
    if RANKING in types and "group" in roles:
        return RANKING, f"a group column {roles['group']!r} was given"
    s = y.dropna()
    n = int(s.nunique())
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt) or not pd.api.types.is_numeric_dtype(dt):
        kind = BINARY if n <= 2 else MULTICLASS
        reason = f"the target holds {n} distinct non-numeric values"
    elif pd.api.types.is_integer_dtype(dt) and n <= MAX_INTEGER_CLASSES:
        kind = BINARY if n <= 2 else MULTICLASS
        reason = f"the target holds {n} distinct integers (at most {MAX_INTEGER_CLASSES} are read as classes)"
    elif n <= 2 and set(np.unique(s.to_numpy(dtype=np.float64))) <= {0.0, 1.0}:
        kind, reason = BINARY, "the target holds only 0 and 1"
    else:
        kind, reason = REGRESSION, "the target holds numbers"
    if kind in CLASSIFICATION and kind not in types:
        if REGRESSION in types and pd.api.types.is_numeric_dtype(dt):
            return REGRESSION, f"{algo.name} does not classify; the numeric target is read as values"
        algo.check_problem_type(kind)
    if kind == REGRESSION and REGRESSION not in types:
        algo.check_problem_type(kind)
    return kind, reason


def encode_target(y: pd.Series, problem_type: str, target: str, what: str = "training") -> tuple[np.ndarray, list[Any] | None]:
    """The target as the algorithm sees it: class codes ``0..k-1`` (with the labels) or floats."""
    if problem_type in CLASSIFICATION:
        import pandas as pd

        classes = sorted({_py(v) for v in pd.unique(y.dropna())}, key=_sort_key)
        if len(classes) < 2:
            shown = repr(classes[0]) if classes else "none"
            raise InvalidInput(
                f"the target {target!r} has one class ({shown}) in the {what} data; classification needs "
                "at least two; check the data or the target column"
            )
        return encode_with(y, classes, target, what), classes
    if problem_type in (CLUSTERING, DIMENSIONALITY_REDUCTION, ANOMALY_DETECTION, RECOMMENDATION):
        return np.asarray(y.to_numpy(dtype=np.float64, na_value=np.nan)), None
    try:
        return np.asarray(y.to_numpy(dtype=np.float64, na_value=np.nan)), None
    except (TypeError, ValueError):
        raise InvalidInput(
            f"the target {target!r} must hold numbers for {problem_type}, got {y.dtype} values"
        ) from None


def encode_with(y: pd.Series, classes: Sequence[Any], target: str, what: str) -> np.ndarray:
    """Class codes of ``y`` for known ``classes``; labels never seen in training are an error."""
    import pandas as pd

    index = {_sort_key(c): i for i, c in enumerate(classes)}
    table: dict[Any, int] = {}
    for v in pd.unique(y):  # few distinct values: map those, then every row at once
        code = index.get(_sort_key(_py(v)))
        if code is None:
            raise InvalidInput(
                f"the {what} data has target value {v!r} in {target!r}, a class the training data does "
                f"not have (classes: {', '.join(map(repr, classes[:10]))})"
            )
        table[v] = code
    return np.asarray(y.map(table).to_numpy(dtype=np.int64))


def _py(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _sort_key(v: Any) -> tuple[int, Any]:
    if isinstance(v, bool):
        return (0, int(v))
    if isinstance(v, (int, float)):
        return (1, v)
    return (2, str(v))


# -- the default recipe --------------------------------------------------------------------------------
def default_recipe(df: pd.DataFrame, exclude: Iterable[str], encoding: str) -> Recipe | None:
    """A recipe that makes text and date columns numeric, for training without one (None if not needed).

    Text, category and boolean-object columns are encoded (``ordinal`` for
    trees, ``one_hot`` with at most 20 categories for linear and distance
    models); date/time columns become calendar parts.
    """
    from loopml.prep import Recipe
    from loopml.prep._base import column_kind
    from loopml.prep.steps import DateParts, OneHot, Ordinal

    skip = set(exclude)
    text = [c for c in df.columns if c not in skip and column_kind(df[c]) in ("text", "category", "other")]
    dates = [c for c in df.columns if c not in skip and column_kind(df[c]) == "datetime"]
    if encoding == "none" or not (text or dates):
        return None
    steps: list[Any] = []
    if dates:
        steps.append(DateParts(columns=dates, parts=["year", "month", "dow", "dayofyear", "hour"],
                               drop_original=True))
    if text:
        if encoding == "one_hot":
            steps.append(OneHot(columns=text, max_categories=20))
        else:
            steps.append(Ordinal(columns=text))
    return Recipe(steps, description="default encoding of text and date columns, made by loopml train")


# -- the signature -----------------------------------------------------------------------------------
def input_schema(df: pd.DataFrame, columns: Sequence[str], handles_missing: bool) -> list[dict[str, Any]]:
    """Name, Arrow type and nullability of the input columns (before the recipe)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(df[list(columns)], preserve_index=False)
    out = []
    for f in schema:
        nulls = int(df[f.name].isna().sum())
        out.append({"name": f.name, "type": str(f.type), "nullable": bool(handles_missing or nulls > 0)})
    return out


def output_schema(problem_type: str, classes: Sequence[Any] | None, label_type: str | None) -> list[dict[str, Any]]:
    """What the model returns: ``prediction`` and, for classifiers, ``probabilities``."""
    if problem_type in CLASSIFICATION:
        return [
            {"name": "prediction", "type": label_type or "string", "description": "the most probable class"},
            {"name": "probabilities", "type": "list<double>", "labels": list(classes or []),
             "description": "probability of each class, in the order of labels"},
        ]
    desc = {
        REGRESSION: ("double", "the predicted value"),
        RANKING: ("double", "the ranking score (higher ranks first within a group)"),
        FORECASTING: ("double", "the forecast for the row's series and time"),
        CLUSTERING: ("int64", "the cluster id"),
        DIMENSIONALITY_REDUCTION: ("list<double>", "the projection on the components"),
        ANOMALY_DETECTION: ("double", "the anomaly score: higher is more anomalous"),
    }.get(problem_type, ("double", "the prediction"))
    return [{"name": "prediction", "type": desc[0], "description": desc[1]}]
