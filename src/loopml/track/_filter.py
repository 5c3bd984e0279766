"""The run search language: a small parser that compiles to parametrised SQL (never ``eval``).

Grammar (keywords are case-insensitive)::

    filter  := clause ("and" clause)*
    clause  := ident op value
    ident   := ("metrics" | "params" | "tags" | "attributes") "." key    (singular forms too)
             | attribute                                                (status, name, start_time, ...)
    key     := [A-Za-z0-9_-./:]+ | `any text` | "any text"
    op      := "=" | "!=" | ">" | ">=" | "<" | "<=" | "LIKE" | "ILIKE"
    value   := number | 'text' | "text"                                 (a doubled quote escapes it)

    order   := ident ["ASC" | "DESC"]

``metrics.X`` compares the latest value of metric X; ``params.X`` and
``tags.X`` compare text, or numbers when the literal is a number (so
``params.max_depth = 6`` matches the stored ``"6"``). Runs without the key
never match. Attributes: ``status``, ``name`` (``run_name``), ``run_id``,
``experiment``, ``parent_run_id``, ``start_time`` and ``end_time`` (numbers
are epoch milliseconds, as in MLflow, or ISO-8601 text). ``LIKE`` is
case-sensitive (``%`` any text, ``_`` one character) and ``ILIKE`` is not, on
every database (on SQLite ``ILIKE`` folds ASCII letters only).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from loopml.errors import InvalidInput

STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")

_ENTITIES = {
    "metrics": "metric", "metric": "metric",
    "params": "param", "param": "param", "parameters": "param",
    "tags": "tag", "tag": "tag",
    "attributes": "attribute", "attribute": "attribute", "attr": "attribute", "run": "attribute",
}
#: attribute name -> canonical name
_ATTRIBUTES = {
    "status": "status", "name": "name", "run_name": "name", "run_id": "run_id", "id": "run_id",
    "experiment": "experiment", "parent_run_id": "parent_run_id",
    "start_time": "start_time", "end_time": "end_time",
}
_TIME_ATTRIBUTES = ("start_time", "end_time")
_OPS = ("=", "!=", ">", ">=", "<", "<=", "LIKE", "ILIKE")
_STRING_OPS = ("=", "!=", "LIKE", "ILIKE")

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-./:@]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.])")
_OP = re.compile(r">=|<=|!=|<>|==|=|>|<")


@dataclass(frozen=True)
class Clause:
    """One comparison of a filter: ``entity.key op value``."""

    entity: str  # metric | param | tag | attribute
    key: str
    op: str
    value: float | str
    position: int


@dataclass(frozen=True)
class OrderKey:
    """One ``ORDER BY`` item."""

    entity: str
    key: str
    descending: bool


class _Scanner:
    """A cursor over the text that reports errors with their 1-based position."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.i = 0

    def skip_ws(self) -> None:
        m = _WS.match(self.text, self.i)
        if m:
            self.i = m.end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.i >= len(self.text)

    def fail(self, message: str, at: int | None = None) -> InvalidInput:
        pos = self.i if at is None else at
        found = self.text[pos : pos + 20]
        where = f"found {found!r}" if found else "found the end"
        return InvalidInput(
            f"invalid {self.what} {self.text!r} at position {pos + 1}: {message}, {where}"
        )

    def quoted(self) -> str:
        quote = self.text[self.i]
        start = self.i
        j = self.i + 1
        out: list[str] = []
        while j < len(self.text):
            c = self.text[j]
            if c == quote:
                if j + 1 < len(self.text) and self.text[j + 1] == quote:
                    out.append(quote)
                    j += 2
                    continue
                self.i = j + 1
                return "".join(out)
            out.append(c)
            j += 1
        raise self.fail(f"unterminated {quote}-quoted text", at=start)

    def ident(self) -> tuple[str, str, int]:
        """Read ``entity.key`` (or a bare attribute name); return (entity, key, position)."""
        self.skip_ws()
        start = self.i
        m = _WORD.match(self.text, self.i)
        if not m:
            raise self.fail("expected metrics.KEY, params.KEY, tags.KEY or attributes.NAME")
        word = m.group()
        self.i = m.end()
        if self.i < len(self.text) and self.text[self.i] == "." and word.lower() in _ENTITIES:
            entity = _ENTITIES[word.lower()]
            self.i += 1
            if self.i < len(self.text) and self.text[self.i] in "`\"":
                key = self.quoted()
            else:
                km = _BARE_KEY.match(self.text, self.i)
                if not km:
                    raise self.fail(f"expected a key after {word}. (quote it with `backticks` "
                                    "if it has spaces)")
                key = km.group()
                self.i = km.end()
            if not key:
                raise self.fail("the key is empty", at=start)
        elif word.lower() in _ATTRIBUTES and (self.i >= len(self.text) or self.text[self.i] != "."):
            entity, key = "attribute", word
        else:
            raise self.fail("expected metrics.KEY, params.KEY, tags.KEY or attributes.NAME",
                            at=start)
        if entity == "attribute":
            canon = _ATTRIBUTES.get(key.lower())
            if canon is None:
                raise self.fail(f"unknown attribute {key!r} (known: {', '.join(sorted(set(_ATTRIBUTES.values())))})",
                                at=start)
            key = canon
        return entity, key, start

    def op(self) -> str:
        self.skip_ws()
        m = _OP.match(self.text, self.i)
        if m:
            self.i = m.end()
            return {"==": "=", "<>": "!="}.get(m.group(), m.group())
        w = _WORD.match(self.text, self.i)
        if w and w.group().upper() in ("LIKE", "ILIKE"):
            self.i = w.end()
            return w.group().upper()
        raise self.fail("expected an operator (= != > >= < <= LIKE ILIKE)")

    def value(self) -> float | str:
        self.skip_ws()
        if self.i < len(self.text) and self.text[self.i] in "'\"":
            return self.quoted()
        m = _NUMBER.match(self.text, self.i)
        if m:
            self.i = m.end()
            return float(m.group())
        raise self.fail("expected a number or a 'quoted' text")

    def keyword(self, *words: str) -> str | None:
        self.skip_ws()
        m = _WORD.match(self.text, self.i)
        if m and m.group().upper() in words:
            self.i = m.end()
            return m.group().upper()
        return None


def parse_filter(text: str | None) -> list[Clause]:
    """Parse a filter expression into clauses (an empty or blank filter gives none).

    Raises
    ------
    InvalidInput
        On any syntax or type error, naming the position (1-based) in the text.

    Examples
    --------
    >>> [c.op for c in parse_filter("metrics.auc > 0.9 and params.max_depth = 6")]
    ['>', '=']
    """
    if text is None or not text.strip():
        return []
    sc = _Scanner(text, "filter")
    clauses: list[Clause] = []
    while True:
        entity, key, pos = sc.ident()
        sc.skip_ws()
        op_pos = sc.i
        op = sc.op()
        sc.skip_ws()
        value_pos = sc.i
        value = sc.value()
        clauses.append(_checked(sc, Clause(entity, key, op, value, pos), op_pos, value_pos))
        if sc.at_end():
            return clauses
        if sc.keyword("AND"):
            continue
        if sc.keyword("OR"):
            raise sc.fail("'or' is not supported; run one search per alternative", at=sc.i - 2)
        raise sc.fail("expected 'and' or the end of the filter")


def _checked(sc: _Scanner, c: Clause, op_pos: int, value_pos: int) -> Clause:
    is_num = isinstance(c.value, float)
    if c.entity == "metric":
        if c.op in ("LIKE", "ILIKE"):
            raise sc.fail(f"metrics compare with = != > >= < <=, not {c.op}", at=op_pos)
        if not is_num:
            raise sc.fail(f"metrics.{c.key} compares with a number", at=value_pos)
    if c.op in ("LIKE", "ILIKE") and is_num:
        raise sc.fail(f"{c.op} needs a 'quoted' pattern", at=value_pos)
    if c.entity == "attribute":
        if c.key in _TIME_ATTRIBUTES:
            if c.op in ("LIKE", "ILIKE"):
                raise sc.fail(f"{c.key} compares with = != > >= < <=, not {c.op}", at=op_pos)
            try:
                _as_time(c.value)
            except ValueError:
                raise sc.fail(f"{c.key} compares with epoch milliseconds or ISO-8601 text "
                              "such as '2026-01-31T12:00:00'", at=value_pos) from None
        else:
            if is_num:
                raise sc.fail(f"attributes.{c.key} compares with 'quoted' text", at=value_pos)
            if c.key == "status" and c.op in ("=", "!=") and str(c.value).upper() not in STATUSES:
                raise sc.fail(f"status is one of {', '.join(STATUSES)}", at=value_pos)
    return c


def parse_order_by(items: Sequence[str] | str | None) -> list[OrderKey]:
    """Parse ``["metrics.auc DESC", "start_time"]`` (ascending unless DESC is given)."""
    if items is None:
        return []
    if isinstance(items, str):
        items = [items]
    out: list[OrderKey] = []
    for item in items:
        sc = _Scanner(item, "order_by")
        entity, key, _ = sc.ident()
        direction = sc.keyword("ASC", "DESC")
        if not sc.at_end():
            raise sc.fail("expected ASC, DESC or the end")
        out.append(OrderKey(entity, key, direction == "DESC"))
    return out


# -- compiling to SQL -------------------------------------------------------------------------
# The filter compiles to SQL text with driver placeholders (never a value in the text): search
# is a hot path, and building and compiling a SQLAlchemy statement per search cost more than
# running it. The text is the common subset of SQLite and PostgreSQL.

def _as_time(value: float | str) -> datetime:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(value)
        return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    t = datetime.fromisoformat(text)
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


#: run rows, in the column order the tracker unpacks (``r`` is runs, ``e`` experiments)
RUN_COLUMNS = (
    'r.id, r.experiment_id, e.name, r.name, r.status, r.message, r.parent_run_id, '
    'r.start_time, r.end_time, r.code_version, r.packages, r.seed, r."user", r.host'
)
_ATTRIBUTE_SQL = {
    "status": "r.status", "name": "r.name", "run_id": "r.id", "experiment": "e.name",
    "parent_run_id": "r.parent_run_id", "start_time": "r.start_time", "end_time": "r.end_time",
}
_TABLES = {"metric": "run_latest_metrics", "param": "run_params", "tag": "run_tags"}


@dataclass
class SqlQuery:
    """A run query under construction: SQL text pieces and their parameters, in text order."""

    dialect: str
    joins: list[str]
    join_params: list[Any]
    where: list[str]
    where_params: list[Any]
    order: list[str]

    @classmethod
    def new(cls, dialect: str) -> SqlQuery:
        """An empty query for ``sqlite`` or ``postgresql``."""
        return cls(dialect, [], [], [], [], [])

    @property
    def ph(self) -> str:
        """The driver's placeholder."""
        return "?" if self.dialect == "sqlite" else "%s"

    def time_param(self, t: datetime) -> Any:
        """A UTC time as the column stores it (SQLAlchemy's text form on SQLite)."""
        if self.dialect == "sqlite":
            return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        return t

    def add_where(self, sql: str, *params: Any) -> None:
        """AND a condition."""
        self.where.append(sql)
        self.where_params.extend(params)

    def render(self, limit: int | None = None) -> tuple[str, list[Any]]:
        """The SELECT text and its parameters."""
        sql = [f"SELECT {RUN_COLUMNS} FROM runs r JOIN experiments e ON e.id = r.experiment_id"]
        sql.extend(self.joins)
        if self.where:
            sql.append("WHERE " + " AND ".join(self.where))
        sql.append("ORDER BY " + ", ".join([*self.order, "r.start_time DESC", "r.id"]))
        if limit is not None:
            sql.append(f"LIMIT {int(limit)}")
        return "\n".join(sql), [*self.join_params, *self.where_params]


def _compare(q: SqlQuery, col: str, op: str) -> str:
    if q.dialect == "sqlite" and op == "LIKE":
        return f"{col} GLOB {q.ph}"  # SQLite's LIKE ignores case; GLOB does not (see _glob)
    if q.dialect == "sqlite" and op == "ILIKE":
        return f"lower({col}) LIKE lower({q.ph})"
    return f"{col} {op} {q.ph}"


def _glob(pattern: str) -> str:
    """A LIKE pattern as the equivalent (case-sensitive) SQLite GLOB pattern."""
    table = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(table.get(ch, ch) for ch in pattern)


def _value(q: SqlQuery, op: str, value: float | str) -> float | str:
    if q.dialect == "sqlite" and op == "LIKE" and isinstance(value, str):
        return _glob(value)
    return value


def compile_filter(clauses: Sequence[Clause], q: SqlQuery) -> None:
    """Add one parametrised condition per clause to ``q``."""
    for c in clauses:
        if c.entity == "attribute":
            col = _ATTRIBUTE_SQL[c.key]
            if c.key in _TIME_ATTRIBUTES:
                q.add_where(_compare(q, col, c.op), q.time_param(_as_time(c.value)))
            elif c.key == "status" and c.op in ("=", "!="):
                q.add_where(_compare(q, col, c.op), str(c.value).upper())
            else:
                q.add_where(_compare(q, col, c.op), _value(q, c.op, c.value))
            continue
        if c.entity == "metric":
            col = 'x."value"'
        else:
            col = "x.value_num" if isinstance(c.value, float) else 'x."value"'
        q.add_where(
            f"EXISTS (SELECT 1 FROM {_TABLES[c.entity]} x WHERE x.run_id = r.id "
            f'AND x."key" = {q.ph} AND {_compare(q, col, c.op)})',
            c.key, _value(q, c.op, c.value),
        )


def compile_order_by(keys: Sequence[OrderKey], q: SqlQuery) -> None:
    """Add ORDER BY terms (outer-joining metric/param/tag tables); missing values sort last."""
    for i, k in enumerate(keys):
        direction = " DESC" if k.descending else ""
        if k.entity == "attribute":
            cols = [_ATTRIBUTE_SQL[k.key]]
        else:
            alias = f"o{i}"
            q.joins.append(f"LEFT JOIN {_TABLES[k.entity]} {alias} ON {alias}.run_id = r.id "
                           f'AND {alias}."key" = {q.ph}')
            q.join_params.append(k.key)
            if k.entity == "metric":
                cols = [f'{alias}."value"']
            else:
                cols = [f"{alias}.value_num", f'{alias}."value"']
        for col in cols:
            # "(x IS NULL)" first: runs without the value sort last, on every database
            q.order.append(f"({col} IS NULL), {col}{direction}")
