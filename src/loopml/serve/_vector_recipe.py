"""The multi-row hot path: a fitted recipe compiled to column-wise numpy operations.

:class:`VectorRecipe` turns the validated rows of one request (one list of
values per input column) into the algorithm's feature matrix with a few
numpy operations per column instead of one :meth:`Step.transform_one` call
per record and step:

- numeric steps (impute, standardize, robust, minmax, clip, winsorize, log,
  box_cox, yeo_johnson, bin) are vector arithmetic on float64 columns;
- one-hot is a dict lookup per value giving an index array, scattered into
  the feature matrix (the 0/1 columns are never built one by one);
- ordinal / frequency / target encoding are a dict lookup per value;
- dropping columns (drop_columns, the select_* steps) is bookkeeping.

Any other step runs on the rows in between, as records, through its own
``transform_one`` (so every recipe has a vector form, only slower where a
step has none). The result is exactly the matrix the row path builds
(:class:`loopml.serve._fastpath.RowPredictor`): the same float64 arithmetic
in the same order, then one conversion to the model's dtype. When a request
holds anything the row path would refuse, or handles in a way the columns do
not mirror (a value of an unexpected type, an unseen category a step refuses,
records whose fields differ), :class:`VectorFallback` is raised and the caller
uses the row path, which gives the same answer or the same error message.

Examples
--------
>>> import pandas as pd
>>> from loopml.prep import Recipe
>>> from loopml.prep.steps import OneHot, Standardize
>>> fitted = Recipe([Standardize(columns=["x"]), OneHot(columns=["city"])]).fit(
...     pd.DataFrame({"x": [1.0, 3.0], "city": ["a", "b"]}))
>>> vr = VectorRecipe.compile(fitted, ["x", "city"], ["x", "city_a", "city_b"], np.float64)
>>> X, kept = vr.matrix({"x": [1.0, None], "city": ["b", "zz"]}, 2)
>>> X.tolist(), kept
([[-1.0, 0.0, 1.0], [nan, 0.0, 0.0]], None)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np

from loopml.prep._base import MISSING, RowDropped, Step, cat_value, is_missing, num_value

#: a column while the recipe runs: the record values as a list (or tuple), or float64 numbers
Column = Sequence[Any] | np.ndarray

_NONE = type(None)
_NUM_FAST = frozenset({float, int, bool, _NONE})
_STR = frozenset({str})
_STR_NONE = frozenset({str, _NONE})


class VectorFallback(Exception):
    """The columns cannot give exactly what the row path gives for this request: use the row path."""


# -- the state of one run ---------------------------------------------------------------------------
class _Run:
    """Columns of the rows still in play while the compiled steps run.

    One-hot outputs are not columns: they live as one code array per encoded
    column in :attr:`blocks` (``-1``: no 1 in the block), and the compiled
    steps know statically which names they stand for.
    """

    __slots__ = ("blocks", "cols", "kept", "n")

    def __init__(self, cols: dict[str, Column], n: int) -> None:
        self.cols = cols
        self.blocks: dict[int, np.ndarray] = {}
        self.n = n
        #: original positions of the rows still in play (None: all of them)
        self.kept: np.ndarray | None = None

    def take(self, idx: list[int]) -> None:
        """Keep only the rows at positions ``idx`` (after a step dropped the others)."""
        pos = np.asarray(idx, dtype=np.intp)
        for k, v in list(self.cols.items()):
            self.cols[k] = v[pos] if isinstance(v, np.ndarray) else [v[i] for i in idx]
        for b, codes in list(self.blocks.items()):
            self.blocks[b] = codes[pos]
        self.kept = pos if self.kept is None else self.kept[pos]
        self.n = len(idx)


#: reads one column of the current rows
Reader = Callable[[_Run], Column]
Op = Callable[[_Run], None]


class _Sym:
    """What the compiler knows about the columns at a point of the recipe.

    ``hot`` maps a one-hot output name to its block and index; ``names`` is
    the set of column names present, or None once a step without a vector
    form has run (its outputs are known only from the data).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.hot: dict[str, tuple[int, int]] = {}
        self.names: set[str] | None = set(names)
        #: outputs per one-hot block
        self.block_size: dict[int, int] = {}

    def copy(self) -> _Sym:
        other = _Sym(())
        other.hot = dict(self.hot)
        other.names = None if self.names is None else set(self.names)
        other.block_size = dict(self.block_size)
        return other

    def new_block(self, size: int) -> int:
        b = len(self.block_size)
        self.block_size[b] = size
        return b

    def write(self, name: str) -> None:
        self.hot.pop(name, None)
        if self.names is not None:
            self.names.add(name)

    def drop(self, name: str) -> None:
        self.hot.pop(name, None)
        if self.names is not None:
            self.names.discard(name)

    def maybe_column(self, name: str) -> bool:
        """Whether ``name`` may be in the run's columns (not a one-hot output)."""
        return name not in self.hot and (self.names is None or name in self.names)


# -- reading columns -------------------------------------------------------------------------------
def _hot_values(codes: np.ndarray, i: int) -> np.ndarray:
    return (codes == i).astype(np.float64)


def _reader(sym: _Sym, name: str) -> Reader:
    """How to read column ``name`` at this point of the recipe (a one-hot output or a column)."""
    hot = sym.hot.get(name)
    if hot is not None:
        b, i = hot

        def read_hot(run: _Run) -> Column:
            return _hot_values(run.blocks[b], i)

        return read_hot

    def read(run: _Run) -> Column:
        return run.cols[name]  # a KeyError: the row path names the missing field

    return read


def _numbers(values: Column, column: str, kind: str) -> np.ndarray:
    """A column as float64, what :func:`num_value` gives value by value (StepError as it does)."""
    if isinstance(values, np.ndarray):
        return values
    if set(map(type, values)) <= _NUM_FAST:
        return np.array(values, dtype=np.float64).reshape(len(values))
    return np.array([num_value(v, column, kind) for v in values], dtype=np.float64)


def _python(values: Column) -> Sequence[Any]:
    """The record values of a column (float64 columns as Python floats)."""
    return values.tolist() if isinstance(values, np.ndarray) else values


def _categories(values: Column) -> Sequence[str]:
    """A column as categories, what :func:`cat_value` gives value by value."""
    vals = _python(values)
    types = set(map(type, vals))
    if types <= _STR:
        return vals
    if types <= _STR_NONE:
        return [MISSING if v is None else v for v in vals]
    return list(map(cat_value, vals))


def _missing(values: Column) -> np.ndarray:
    """``is_missing`` of each value, as 0.0 / 1.0."""
    if isinstance(values, np.ndarray):
        return np.isnan(values).astype(np.float64)
    return np.fromiter(map(is_missing, values), dtype=bool, count=len(values)).astype(np.float64)


# -- the steps -------------------------------------------------------------------------------------------
def _floats(*values: Any) -> bool:
    return all(type(v) is float for v in values)


def _numeric_step(step: Any, sym: _Sym, fn: Callable[[int, np.ndarray], np.ndarray]) -> Op:
    """A per-column numeric map ``fn(i, x)`` over ``step.columns_`` (num_value on the way in)."""
    kind = step.kind
    plan = [(i, c, _reader(sym, c)) for i, c in enumerate(step.columns_)]
    for c in step.columns_:
        sym.write(c)

    def op(run: _Run) -> None:
        cols = run.cols
        with np.errstate(all="ignore"):
            for i, c, read in plan:
                cols[c] = fn(i, _numbers(read(run), c, kind))

    return op


def _affine(step: Any, sym: _Sym) -> Op | None:
    centers, scales = list(step.center_), list(step.scale_)
    if not _floats(*centers, *scales) or any(s == 0.0 for s in scales):
        return None  # the row path divides by zero (an error there), or has other numbers than floats

    def fn(i: int, x: np.ndarray) -> np.ndarray:
        return (x - centers[i]) / scales[i]

    return _numeric_step(step, sym, fn)


def _minmax(step: Any, sym: _Sym) -> Op | None:
    scales, mins = list(step.scale_), list(step.min_)
    lo, hi = step.feature_range
    if not _floats(*scales, *mins, lo, hi):
        return None
    clip = bool(step.clip)

    def fn(i: int, x: np.ndarray) -> np.ndarray:
        out = x * scales[i] + mins[i]
        if clip:
            out = np.where(out < lo, lo, np.where(out > hi, hi, out))
        return out

    return _numeric_step(step, sym, fn)


def _bounds(step: Any, sym: _Sym) -> Op | None:
    def bound(v: Any) -> float:
        return np.nan if v is None else float(v)

    los = [bound(step.lower_.get(c)) for c in step.columns_]
    his = [bound(step.upper_.get(c)) for c in step.columns_]

    def fn(i: int, x: np.ndarray) -> np.ndarray:
        lo, hi = los[i], his[i]
        return np.where(x < lo, lo, np.where(x > hi, hi, x))

    return _numeric_step(step, sym, fn)


def _log(step: Any, sym: _Sym) -> Op | None:
    offset = step.offset
    if type(offset) is not float:
        return None

    def fn(i: int, x: np.ndarray) -> np.ndarray:
        u = x + offset
        return np.where(u > 0, np.log(u), np.where(u == 0, -np.inf, np.nan))

    return _numeric_step(step, sym, fn)


def _power(step: Any, sym: _Sym) -> Op | None:
    from loopml.prep.steps.scaling import box_cox, yeo_johnson

    kernel = yeo_johnson if step.method == "yeo-johnson" else box_cox
    lambdas, means, stds = list(step.lambdas_), list(step.mean_), list(step.std_)
    standardize = bool(step.standardize)

    def fn(i: int, x: np.ndarray) -> np.ndarray:
        z = kernel(x, lambdas[i])
        return (z - means[i]) / stds[i] if standardize else z

    return _numeric_step(step, sym, fn)


def _bin(step: Any, sym: _Sym) -> Op | None:
    edges = {c: list(step.edges_[c][1:-1]) for c in step.columns_}
    if not all(_floats(*e) for e in edges.values()):
        return None
    labels = list(step.labels)
    inner = [np.asarray(edges[c], dtype=np.float64) for c in step.columns_]
    kind = step.kind
    plan = [(i, c, _reader(sym, c)) for i, c in enumerate(step.columns_)]
    for c in step.columns_:
        sym.write(c)

    def op(run: _Run) -> None:
        for i, c, read in plan:
            x = _numbers(read(run), c, kind)
            b = np.searchsorted(inner[i], x, side="right")
            nan = np.isnan(x)
            if labels:
                run.cols[c] = [None if m else labels[j] for j, m in zip(b.tolist(), nan.tolist(), strict=True)]
            else:
                out = b.astype(np.float64)
                out[nan] = np.nan
                run.cols[c] = out

    return op


def _impute(step: Any, sym: _Sym) -> Op | None:
    if step.strategy in ("ffill", "bfill", "interpolate"):
        return None
    numeric = set(step.numeric_)
    plan = []
    for c in step.columns_:
        fill = step.fill_.get(c)
        if c in numeric and type(fill) is not float:
            return None
        plan.append((c, fill, c in numeric, _reader(sym, c)))
    kind = step.kind
    indicator = bool(step.indicator)
    for c in step.columns_:
        sym.write(c)
    if indicator:
        for c in step.columns_:
            sym.write(f"{c}_missing")

    def op(run: _Run) -> None:
        cols = run.cols
        values = [read(run) for _, _, _, read in plan]
        flags = [_missing(v) for v in values] if indicator else []
        for (c, fill, num, _), v in zip(plan, values, strict=True):
            if num:
                x = _numbers(v, c, kind)
                cols[c] = np.where(np.isnan(x), fill, x)
            else:
                cols[c] = [fill if is_missing(u) else u for u in _python(v)]
        for (c, _, _, _), f in zip(plan, flags):  # noqa: B905 - empty without an indicator
            cols[f"{c}_missing"] = f

    return op


def _mapping(step: Any, sym: _Sym) -> Op | None:
    tables = {c: dict(step.tables_[c]) for c in step.columns_}
    defaults = {c: step.default_[c] for c in step.columns_}
    if not all(_floats(*t.values(), defaults[c]) for c, t in tables.items()):
        return None
    plan = [(c, tables[c], defaults[c], _reader(sym, c)) for c in step.columns_]
    for c in step.columns_:
        sym.write(c)

    def op(run: _Run) -> None:
        for c, table, default, read in plan:
            cats = _categories(read(run))
            run.cols[c] = np.array(list(map(table.get, cats, repeat(default))), dtype=np.float64).reshape(len(cats))

    return op


def _one_hot(step: Any, sym: _Sym) -> Op | None:
    names_all = [n for c in step.columns_ for n in step.names_[c]]
    if len(set(names_all)) != len(names_all):
        return None  # two encoded columns share an output name: the row path lets the later one win
    error = step.handle_unknown == "error"
    keep = bool(step.keep_original)
    plan = []
    for c in step.columns_:
        cats, rare, names = list(step.categories_[c]), list(step.infrequent_[c]), list(step.names_[c])
        k = len(cats)
        table = {v: i for i, v in enumerate(cats)}
        table.update(dict.fromkeys(rare, k))
        unknown = k if (step.handle_unknown == "infrequent" and rare) else -1
        read = _reader(sym, c)
        if not keep:
            sym.drop(c)
        pops = [n for n in names if sym.maybe_column(n)]
        b = sym.new_block(len(names))
        for i, n in enumerate(names):
            sym.write(n)
            sym.hot[n] = (b, i)
        plan.append((c, table, unknown, read, pops, b))

    def op(run: _Run) -> None:
        cols, blocks = run.cols, run.blocks
        for c, table, unknown, read, pops, b in plan:
            cats = _categories(read(run))
            if not keep:
                cols.pop(c, None)
            codes = np.fromiter(map(table.get, cats, repeat(unknown)), dtype=np.intp, count=len(cats))
            if error and len(codes) and codes.min() < 0:
                raise VectorFallback("an unseen category the step refuses")  # the row path says which
            for n in pops:
                cols.pop(n, None)
            blocks[b] = codes

    return op


def _drop(step: Any, sym: _Sym) -> Op | None:
    """drop_columns and the select_* steps: ``rec.pop(c, None)`` for each learned ``dropped_``."""
    dropped = list(step.dropped_)
    for c in dropped:
        sym.drop(c)

    def op(run: _Run) -> None:
        cols = run.cols
        for c in dropped:
            cols.pop(c, None)

    return op


def _identity(step: Any, sym: _Sym) -> Op | None:
    def op(run: _Run) -> None:
        return None

    return op


def _compilers() -> dict[type, Callable[[Any, _Sym], Op | None]]:
    from loopml.prep.steps import (
        Bin,
        BoxCox,
        Clip,
        DropColumns,
        DropDuplicates,
        Frequency,
        Impute,
        Log,
        MinMax,
        OneHot,
        Ordinal,
        Robust,
        SelectCorrelation,
        SelectModel,
        SelectMutualInfo,
        SelectRFE,
        SelectVariance,
        Standardize,
        TargetEncode,
        Winsorize,
        YeoJohnson,
    )

    return {
        Standardize: _affine, Robust: _affine, MinMax: _minmax, Clip: _bounds, Winsorize: _bounds,
        Log: _log, YeoJohnson: _power, BoxCox: _power, Bin: _bin, Impute: _impute,
        Frequency: _mapping, Ordinal: _mapping, TargetEncode: _mapping, OneHot: _one_hot,
        DropColumns: _drop, DropDuplicates: _identity, SelectVariance: _drop, SelectCorrelation: _drop,
        SelectMutualInfo: _drop, SelectModel: _drop, SelectRFE: _drop,
    }


#: step class -> compiler (exact classes: a subclass may map records differently)
_COMPILERS: dict[type, Callable[[Any, _Sym], Op | None]] = {}


def vector_kinds() -> list[str]:
    """The step kinds with a vector form (the others run record by record inside the vector path)."""
    if not _COMPILERS:
        _COMPILERS.update(_compilers())
    return sorted(str(getattr(cls, "kind", cls.__name__)) for cls in _COMPILERS)


# -- steps without a vector form ------------------------------------------------------------------------
def _row_step(step: Step, sym: _Sym) -> Op:
    """Run ``step.transform_one`` on the rows as records, then go back to columns."""
    hot = list(sym.hot.items())
    sym.hot = {}
    sym.names = None
    fn = step.transform_one

    def op(run: _Run) -> None:
        keys = list(run.cols)
        columns: list[Column] = [_python(v) for v in run.cols.values()]
        for name, (b, i) in hot:
            keys.append(name)
            columns.append(_hot_values(run.blocks[b], i).tolist())
        records = [dict(zip(keys, vals, strict=True)) for vals in zip(*columns, strict=True)]
        dropped: list[int] = []
        for i, rec in enumerate(records):
            try:
                fn(rec)
            except RowDropped:
                dropped.append(i)
        run.blocks = {}
        run.cols = {}
        if dropped:
            gone = set(dropped)
            kept = [i for i in range(run.n) if i not in gone]
            records = [records[i] for i in kept]
            run.take(kept)  # no columns left to cut: the kept positions and the count
        if not records:
            return
        names = tuple(records[0])
        if not all(map(names.__eq__, map(tuple, records))):
            raise VectorFallback("records came out of a step with different fields")
        run.cols = dict(zip(names, zip(*map(dict.values, records), strict=True), strict=True))

    return op


# -- the compiled recipe ---------------------------------------------------------------------------------
class VectorRecipe:
    """A fitted recipe (or none) compiled to column operations that end in the feature matrix.

    Build with :meth:`compile`; :meth:`matrix` maps the columns of many rows.

    Attributes
    ----------
    inputs
        The input columns, in the order :meth:`columns_of` expects record fields.
    features
        The columns of the matrix (the algorithm's features, in order).
    vector_steps
        How many recipe steps run as column operations (the others run record by record).
    """

    def __init__(self, ops: list[Op], inputs: list[str], features: list[str], dtype: Any,
                 assemble: list[tuple[Any, ...]], vector_steps: int) -> None:
        self._ops = ops
        self.inputs = inputs
        self._inputs_t = tuple(inputs)
        self.features = features
        self.dtype = np.dtype(dtype)
        self._assemble = assemble
        self.vector_steps = vector_steps

    @classmethod
    def compile(cls, recipe: Any, inputs: Sequence[str], features: Sequence[str], dtype: Any) -> VectorRecipe | None:
        """Compile ``recipe`` (a :class:`~loopml.prep.FittedRecipe` or None) for records of ``inputs``.

        Returns None where the columns cannot mirror the row path at all (the
        recipe reads a column the inputs lack: every request fails there anyway).
        """
        if not _COMPILERS:
            _COMPILERS.update(_compilers())
        inputs = list(inputs)
        sym = _Sym(inputs)
        ops: list[Op] = []
        vector = 0
        if recipe is not None:
            if not set(recipe.required) <= set(inputs):
                return None
            for step in recipe.steps:
                compiler = _COMPILERS.get(type(step))
                op = None
                if compiler is not None:
                    saved = sym.copy()
                    try:
                        op = compiler(step, sym)
                    except Exception:  # learned state of another shape (an older save): record by record
                        op = None
                    if op is None:
                        sym = saved
                if op is None:
                    op = _row_step(step, sym)
                else:
                    vector += 1
                ops.append(op)
        assemble = _assembly(sym, list(features))
        return cls(ops, inputs, list(features), dtype, assemble, vector)

    def __repr__(self) -> str:
        return f"VectorRecipe(steps={len(self._ops)}, vector={self.vector_steps}, features={len(self.features)})"

    def columns_of(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Column]:
        """The columns of validated records (fields exactly the inputs, in order).

        Raises
        ------
        VectorFallback
            A record with other fields or another field order.
        """
        names = self._inputs_t
        for r in records:
            if type(r) is not dict or tuple(r) != names:
                raise VectorFallback("records do not have exactly the input fields in order")
        if not names:
            return {}
        return dict(zip(names, zip(*map(dict.values, records), strict=True), strict=True))  # type: ignore[arg-type]

    def matrix(self, columns: Mapping[str, Column], n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The feature matrix of ``n`` rows given as ``columns`` (input name -> values).

        Returns
        -------
        X : numpy.ndarray
            ``(rows kept, len(features))`` of the model's dtype, C-ordered.
        kept : numpy.ndarray or None
            The positions of the rows kept, where a step dropped some (None: all kept).

        Raises
        ------
        VectorFallback
            Anything the row path does otherwise or refuses: use it for this request.
        """
        run = _Run(dict(columns), n)
        try:
            for op in self._ops:
                op(run)
                if run.n == 0:
                    break
            X = np.zeros((run.n, len(self.features)), dtype=self.dtype)
            if run.n:
                self._fill(run, X)
        except VectorFallback:
            raise
        except Exception as e:  # a value a step refuses: the row path says which row and column
            raise VectorFallback(f"{type(e).__name__}: {e}") from e
        return X, run.kept

    def _fill(self, run: _Run, X: np.ndarray) -> None:
        n = run.n
        cols, blocks = run.cols, run.blocks
        dtype = self.dtype
        rows: np.ndarray | None = None
        for action in self._assemble:
            what = action[0]
            if what == "cols":  # features side by side: one conversion for all of them
                _, names, j0, j1 = action
                M = np.array([cols[name] for name in names], dtype=dtype)
                if M.shape != (j1 - j0, n):
                    raise VectorFallback(f"a feature among {names} does not hold one number per row")
                X[:, j0:j1] = M.T
            elif what == "scatter":
                _, b, start = action
                codes = blocks[b]
                if rows is None:
                    rows = np.arange(n)
                hit = codes >= 0
                if hit.all():
                    X[rows, codes + start] = 1
                else:
                    X[rows[hit], codes[hit] + start] = 1
            else:  # one output of a block where the block is not contiguous among the features
                _, b, i, j = action
                X[:, j] = blocks[b] == i


def _assembly(sym: _Sym, features: list[str]) -> list[tuple[Any, ...]]:
    """How the final columns fill the matrix: per feature, or per one-hot block where contiguous."""
    pos = {f: j for j, f in enumerate(features)}
    by_block: dict[int, list[tuple[int, str]]] = {}
    for name, (b, i) in sym.hot.items():
        by_block.setdefault(b, []).append((i, name))
    whole: dict[int, int] = {}
    for b, members in by_block.items():
        members.sort()
        # the block scatters into the matrix only if all its outputs are features, side by side in order
        if [i for i, _ in members] != list(range(sym.block_size[b])) or not all(n in pos for _, n in members):
            continue
        starts = {pos[name] - i for i, name in members}
        if len(starts) == 1:
            whole[b] = starts.pop()
    out: list[tuple[Any, ...]] = []
    run: list[str] = []
    for j, f in enumerate(features):
        hot = sym.hot.get(f)
        if hot is None:
            run.append(f)
            continue
        if run:
            out.append(("cols", run, j - len(run), j))
            run = []
        if hot[0] not in whole:
            out.append(("hotcol", hot[0], hot[1], j))
    if run:
        out.append(("cols", run, len(features) - len(run), len(features)))
    out.extend(("scatter", b, start) for b, start in whole.items())
    return out


__all__ = ["VectorFallback", "VectorRecipe", "vector_kinds"]
