"""The Recipe (an ordered list of step specs) and the FittedRecipe it becomes.

A :class:`Recipe` is data: the same object comes from YAML or from Python and
goes back to either. :meth:`Recipe.fit` clones every step, fits it on the
output of the steps before it, and returns a :class:`FittedRecipe`, which
maps a DataFrame (:meth:`FittedRecipe.transform`) or one record
(:meth:`FittedRecipe.transform_one`, the serving path) with identical
results, and saves itself as JSON (:meth:`FittedRecipe.to_bytes`) - never a
pickle.
"""

from __future__ import annotations

import base64
import difflib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import yaml

from loopml.errors import InvalidInput
from loopml.prep._base import STEPS, Record, Report, RowDropped, Step, StepError
from loopml.prep.steps import STEPS as _ALL_STEPS  # noqa: F401  (registers every step kind)

FORMAT = "loopml.recipe"
FORMAT_VERSION = 1
_TOP_KEYS = ("steps", "target", "description")


# -- the spec --------------------------------------------------------------------------------------
def _step_from_dict(i: int, item: Any) -> Step:
    where = f"recipe step {i}"
    if isinstance(item, Step):
        return item
    if not isinstance(item, Mapping):
        raise InvalidInput(f"{where}: expected a mapping such as {{kind: standardize, columns: [x]}}, got {item!r}")
    if "kind" in item:
        kind, params = item["kind"], {k: v for k, v in item.items() if k != "kind"}
    elif len(item) == 1:
        kind, params = next(iter(item.items()))
        params = {} if params is None else params
        if not isinstance(params, Mapping):
            raise InvalidInput(f"{where} ({kind}): its parameters must be a mapping, got {params!r}")
    else:
        raise InvalidInput(f"{where}: say which step it is with 'kind:' (got keys {sorted(map(str, item))})")
    if not isinstance(kind, str) or kind not in STEPS:
        close = difflib.get_close_matches(str(kind), list(STEPS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidInput(
            f"{where}: unknown step kind {kind!r}{hint}; known kinds: {', '.join(sorted(STEPS))}"
        )
    cls = STEPS[kind]
    names = cls.param_names()
    for p in params:
        if p not in names:
            close = difflib.get_close_matches(str(p), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise InvalidInput(
                f"{where} ({kind}): unknown parameter {p!r}{hint}; {kind} takes {', '.join(names)}"
            )
    try:
        return cls(**params)
    except TypeError as e:  # a required parameter is missing
        missing = [n for n in names if n not in params]
        raise InvalidInput(f"{where} ({kind}): missing required parameter(s) among {missing}: {e}") from None
    except InvalidInput as e:
        raise InvalidInput(f"{where} ({kind}): {e}") from None


@dataclass(frozen=True)
class Recipe:
    """An ordered list of preprocessing steps, declared in YAML or Python.

    Parameters
    ----------
    steps
        Step objects (``loopml.prep.steps``) in the order they run.
    target
        The target column, if any: supervised steps (target encoding,
        selection by mutual information) learn from it; it passes through
        the recipe untouched.
    description
        Free text.

    Examples
    --------
    >>> import pandas as pd
    >>> from loopml.prep import Recipe
    >>> from loopml.prep.steps import Impute, Standardize
    >>> r = Recipe([Impute(columns=["x"], strategy="median"), Standardize(columns=["x"])])
    >>> Recipe.from_yaml(r.to_yaml()) == r
    True
    >>> fitted = r.fit(pd.DataFrame({"x": [1.0, None, 3.0]}))
    >>> fitted.transform_one({"x": None})
    {'x': 0.0}
    """

    steps: Sequence[Step] = ()
    target: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        for i, s in enumerate(self.steps, 1):
            if not isinstance(s, Step):
                raise InvalidInput(f"recipe step {i} is {s!r}, not a step; use loopml.prep.steps classes")
        if self.target is not None and not isinstance(self.target, str):
            raise InvalidInput(f"the recipe's target must be a column name, got {self.target!r}")

    # -- data forms ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build from ``{"steps": [...], "target": ..., "description": ...}``."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a recipe must be a mapping with a 'steps' list, got {type(data).__name__}")
        unknown = [k for k in data if k not in _TOP_KEYS]
        if unknown:
            raise InvalidInput(f"unknown recipe key(s) {unknown}; a recipe has {', '.join(_TOP_KEYS)}")
        steps = data.get("steps") or []
        if not isinstance(steps, list):
            raise InvalidInput("the recipe's 'steps' must be a list")
        return cls(
            steps=[_step_from_dict(i, s) for i, s in enumerate(steps, 1)],
            target=data.get("target"),
            description=str(data.get("description") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form (parameters left at their defaults are omitted)."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        if self.target is not None:
            out["target"] = self.target
        out["steps"] = [s.to_dict() for s in self.steps]
        return out

    @classmethod
    def from_yaml(cls, text: str) -> Recipe:
        """Parse YAML text (see :meth:`load` for a file)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise InvalidInput(f"the recipe is not valid YAML: {' '.join(str(e).split())}") from None
        return cls.from_dict(data if data is not None else {})

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Read a recipe YAML file."""
        p = Path(path)
        if not p.is_file():
            raise InvalidInput(f"recipe file {str(p)!r} does not exist")
        try:
            return cls.from_yaml(p.read_text())
        except InvalidInput as e:
            raise InvalidInput(f"{p}: {e}") from None

    def to_yaml(self) -> str:
        """The YAML form; :meth:`from_yaml` gives back an equal recipe."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, *, target: str | None = None) -> FittedRecipe:
        """Fit every step in order on ``df``; see :meth:`fit_transform`."""
        return self.fit_transform(df, target=target)[0]

    def fit_transform(self, df: pd.DataFrame, *, target: str | None = None) -> tuple[FittedRecipe, pd.DataFrame]:
        """Fit on ``df`` and return the fitted recipe with ``df`` transformed.

        The returned frame is what a model should be trained on: target
        encodings in it are out-of-fold. (Transforming ``df`` again with the
        fitted recipe uses the encodings learned from all rows.)
        """
        if not isinstance(df, pd.DataFrame):
            raise InvalidInput(f"fit needs a pandas DataFrame, got {type(df).__name__}")
        target = target or self.target
        if target is not None and target not in df.columns:
            raise InvalidInput(f"the target column {target!r} is not in the data; columns are {list(df.columns)}")
        dupes = df.columns[df.columns.duplicated()].tolist()
        if dupes:
            raise InvalidInput(f"the data has duplicate column names {dupes}")
        inputs = [str(c) for c in df.columns]
        cur = df
        fitted: list[Step] = []
        required: dict[str, str] = {}
        produced: set[str] = set()
        report: Report = {}
        for i, spec in enumerate(self.steps, 1):
            step = spec.clone()
            where = f"step {i} ({step.kind})"
            y = cur[target] if target is not None and target in cur.columns else None
            if step.needs_target and y is None:
                raise InvalidInput(
                    f"recipe {where} needs a target column; set 'target:' in the recipe or pass --target"
                )
            before = set(cur.columns)
            rep: Report = {}
            try:
                cur = step.fit_transform(cur, y, rep)
            except StepError as e:
                raise InvalidInput(f"recipe {where}: {e}") from None
            for c in step.input_columns():
                if c in inputs and c not in produced and c not in required:
                    required[c] = where
            produced.update(c for c in cur.columns if c not in before)
            fitted.append(step)
            if rep:
                report[f"{i}:{step.kind}"] = rep
        schema = pa.Schema.from_pandas(cur, preserve_index=False).remove_metadata()
        return FittedRecipe(
            recipe=self, steps=fitted, target=target, input_columns=inputs, required=required,
            output_schema=schema, fit_report=report, fit_rows=len(df),
        ), cur


# -- the fitted recipe ----------------------------------------------------------------------------------
@dataclass
class FittedRecipe:
    """A recipe with every step fitted: apply it to a DataFrame or to one record.

    Built by :meth:`Recipe.fit`, or loaded with :func:`loopml.prep.load_recipe`
    / :meth:`from_bytes`.

    Examples
    --------
    >>> import pandas as pd
    >>> from loopml.prep import FittedRecipe, Recipe
    >>> from loopml.prep.steps import OneHot
    >>> fitted = Recipe([OneHot(columns=["city"])]).fit(pd.DataFrame({"city": ["a", "b", "a"]}))
    >>> fitted.transform(pd.DataFrame({"city": ["b"]})).to_dict("records")
    [{'city_a': 0.0, 'city_b': 1.0}]
    >>> fitted.transform_one({"city": "b"})
    {'city_a': 0.0, 'city_b': 1.0}
    >>> FittedRecipe.from_bytes(fitted.to_bytes()).transform_one({"city": "zz"})
    {'city_a': 0.0, 'city_b': 0.0}
    """

    recipe: Recipe
    steps: list[Step]
    target: str | None
    input_columns: list[str]
    #: input column -> the step that first reads it
    required: dict[str, str]
    output_schema: pa.Schema
    fit_report: Report = field(default_factory=dict)
    fit_rows: int = 0

    def __post_init__(self) -> None:
        self._required_keys = frozenset(self.required)
        self._row_fns: list[Callable[[Record], None]] = [s.transform_one for s in self.steps]

    @property
    def output_columns(self) -> list[str]:
        """Columns of the transformed fitting data, in order."""
        return list(self.output_schema.names)

    @property
    def streamable(self) -> bool:
        """True when every step is row-wise, so data can be transformed batch by batch."""
        return all(_row_wise(s) for s in self.steps)

    def _missing(self, columns: Iterator[str] | Sequence[str] | Any) -> None:
        have = set(columns)
        missing = [c for c in self.required if c not in have]
        if missing:
            # name the column the earliest step needs (the saved mapping is sorted by name)
            c = min(missing, key=lambda m: int(self.required[m].split()[1]))
            where = self.required[c]
            raise InvalidInput(
                f"the data has no column {c!r}, which recipe {where} reads; the recipe was fitted on "
                f"{', '.join(self.input_columns[:12])}{' ...' if len(self.input_columns) > 12 else ''}"
            )

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise InvalidInput naming the first column the recipe needs that ``columns`` lacks."""
        self._missing(columns)

    def transform(self, df: pd.DataFrame, *, report: Report | None = None) -> pd.DataFrame:
        """Apply every step to ``df`` (not modified); rows keep their order and index.

        Parameters
        ----------
        df
            Data with (at least) the columns the steps read.
        report
            If given, filled with per-step counts keyed ``"<n>:<kind>"``
            (values imputed or coerced to null, rows dropped, unseen categories).

        Returns
        -------
        pandas.DataFrame
            The transformed rows; columns a step adds come after the others.
        """
        if not isinstance(df, pd.DataFrame):
            raise InvalidInput(f"transform needs a pandas DataFrame, got {type(df).__name__}")
        self._missing(df.columns)
        cur = df
        for i, step in enumerate(self.steps, 1):
            rep: Report | None = None
            if report is not None:
                rep = report.setdefault(f"{i}:{step.kind}", {})
            try:
                cur = step.transform(cur, rep)
            except StepError as e:
                raise InvalidInput(f"recipe step {i} ({step.kind}): {e}") from None
            if report is not None and not rep:
                report.pop(f"{i}:{step.kind}", None)
        return cur

    def transform_one(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Apply every step to one record (the serving path); equals :meth:`transform` on that row.

        Parameters
        ----------
        record
            Field name to value. Missing values may be None or NaN; dates may
            be ISO strings (as JSON carries them).

        Returns
        -------
        dict
            A new dict (``record`` is not modified), keys in the order of
            :meth:`transform`'s columns.

        Raises
        ------
        RowDropped
            A ``drop_rows`` step removes the record.
        InvalidInput
            A field is missing or has the wrong type; the message names the
            column and the step.
        """
        rec = dict(record)
        if not self._required_keys <= rec.keys():
            self._missing(rec.keys())
        i = 0
        try:
            for i, fn in enumerate(self._row_fns, 1):  # noqa: B007 - i names the failing step
                fn(rec)
        except RowDropped as e:
            raise RowDropped(f"recipe step {i} ({self.steps[i - 1].kind}): {e}") from None
        except StepError as e:
            raise InvalidInput(f"recipe step {i} ({self.steps[i - 1].kind}): {e}") from None
        except KeyError as e:
            raise InvalidInput(
                f"recipe step {i} ({self.steps[i - 1].kind}): the record has no field {e.args[0]!r}"
            ) from None
        return rec

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON document of the fitted recipe (spec + learned state)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "recipe": self.recipe.to_dict(),
            "target": self.target,
            "steps": [{"kind": s.kind, "state": s.get_state()} for s in self.steps],
            "input_columns": self.input_columns,
            "required": self.required,
            "output_schema": base64.b64encode(self.output_schema.serialize().to_pybytes()).decode(),
            "fit_report": self.fit_report,
            "fit_rows": self.fit_rows,
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes (equal fits give equal bytes, hence equal artifact hashes)."""
        return json.dumps(_encode(self.to_dict()), sort_keys=True, separators=(",", ":"),
                          allow_nan=False).encode()

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> FittedRecipe:
        """Rebuild from :meth:`to_dict`'s document (steps re-validated, no code executed)."""
        if doc.get("format") != FORMAT:
            raise InvalidInput("this artifact is not a loopml fitted recipe")
        if doc.get("format_version") != FORMAT_VERSION:
            raise InvalidInput(
                f"this fitted recipe has format version {doc.get('format_version')}; this loopml reads "
                f"version {FORMAT_VERSION}; re-fit it with `loopml prep fit`"
            )
        recipe = Recipe.from_dict(doc["recipe"])
        states = doc["steps"]
        if len(states) != len(recipe.steps):
            raise InvalidInput("the fitted recipe's state does not match its steps; re-fit it")
        steps = []
        for spec, saved in zip(recipe.steps, states, strict=True):
            if saved["kind"] != spec.kind:
                raise InvalidInput("the fitted recipe's state does not match its steps; re-fit it")
            step = spec.clone()
            step.set_state(saved["state"])
            steps.append(step)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(doc["output_schema"])))
        return cls(recipe=recipe, steps=steps, target=doc.get("target"),
                   input_columns=list(doc["input_columns"]), required=dict(doc["required"]),
                   output_schema=schema, fit_report=dict(doc.get("fit_report") or {}),
                   fit_rows=int(doc.get("fit_rows") or 0))

    @classmethod
    def from_bytes(cls, data: bytes) -> FittedRecipe:
        """Load :meth:`to_bytes` output."""
        try:
            doc = _decode(json.loads(data))
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidInput(f"the fitted recipe artifact is not valid JSON: {e}") from None
        return cls.from_dict(doc)

    # -- other faces -----------------------------------------------------------------------------
    def describe(self) -> list[dict[str, Any]]:
        """One entry per step: kind, parameters and learned state (lists shortened)."""
        return [
            {"step": i, "kind": s.kind, "params": s.to_dict(), "learned": _short(s.get_state())}
            for i, s in enumerate(self.steps, 1)
        ]

    def to_sklearn(self) -> Any:
        """A scikit-learn Pipeline with this (already fitted) recipe as its one transformer."""
        from sklearn.pipeline import Pipeline

        from loopml.prep._sklearn import RecipeTransformer

        return Pipeline([("recipe", RecipeTransformer(self))])

    def arrow_table(self, df: pd.DataFrame) -> pa.Table:
        """``df`` (an output of :meth:`transform`) as Arrow, with the fitted output types."""
        table = pa.Table.from_pandas(df, preserve_index=False)
        want = {f.name: f.type for f in self.output_schema}
        cols, fields = [], []
        for f, col in zip(table.schema, table.columns, strict=True):
            t = want.get(f.name)
            if t is not None and t != f.type and not pa.types.is_null(t):
                try:
                    col = col.cast(t)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise InvalidInput(f"column {f.name!r} came out as {f.type}, not {t} as when fitted: {e}") from None
                f = pa.field(f.name, t)
            cols.append(col)
            fields.append(f)
        return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def _row_wise(step: Step) -> bool:
    fn = getattr(step, "is_row_wise", None)
    return bool(fn()) if callable(fn) else bool(step.row_wise)


# -- JSON with non-finite floats -----------------------------------------------------------------------
def _encode(v: Any) -> Any:
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        return {"$float": "nan" if v != v else ("inf" if v > 0 else "-inf")}
    if isinstance(v, dict):
        return {str(k): _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    if hasattr(v, "item"):  # numpy scalar
        return _encode(v.item())
    return v


def _decode(v: Any) -> Any:
    if isinstance(v, dict):
        if len(v) == 1 and "$float" in v:
            return float(v["$float"])
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def _short(v: Any, n: int = 8) -> Any:
    if isinstance(v, list):
        out = [_short(x, n) for x in v[:n]]
        return [*out, f"... ({len(v)} in all)"] if len(v) > n else out
    if isinstance(v, dict):
        items = list(v.items())
        d = {k: _short(x, n) for k, x in items[:n * 2]}
        if len(items) > n * 2:
            d["..."] = f"{len(items)} in all"
        return d
    return v


__all__ = ["FittedRecipe", "Recipe"]
