from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopml import Workspace
from loopml.data import Catalog
from loopml.data.catalog import QUARANTINE_ROW, QUARANTINE_RULE
from loopml.data.ingest import ingest
from loopml.data.sources import FileSource
from loopml.data.validation import ColumnExpectation, Expectations, RowCount
from loopml.errors import InvalidInput, ValidationFailed

EXPECT = """\
row_count: {min: 1, max: 1000000}
columns:
  id:      {type: int, nullable: false, unique: true}
  age:     {type: int, min: 0, max: 120}
  score:   {type: float}
  country: {allowed: [US, DE, FR]}
  email:   {type: string, regex: '^[^@]+@[^@]+$'}
  signup:  {type: timestamp}
  active:  {type: bool}
"""


def _check(columns: dict[str, Any], data: dict[str, list[Any]], first_row: int = 0
           ) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
    return Expectations.from_dict({"columns": columns}).validator().check(
        pa.record_batch(data), first_row=first_row
    )


def _rules(bad: pa.RecordBatch | None) -> dict[int, str]:
    assert bad is not None
    return dict(zip(bad.column(QUARANTINE_ROW).to_pylist(), bad.column(QUARANTINE_RULE).to_pylist(), strict=True))


# -- one rule at a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "values", "failing"),
    [
        ({"nullable": False}, ["a", None, "b", None], {1: "c: not null", 3: "c: not null"}),
        ({"min": 0}, [5, -1, None, 0], {1: "c: min 0"}),
        ({"max": 120}, [120, 121, 7, None], {1: "c: max 120"}),
        ({"min": 0.5, "max": 1.5}, [0.4, 0.5, 1.5, 1.6], {0: "c: min 0.5", 3: "c: max 1.5"}),
        ({"allowed": ["US", "DE"]}, ["US", "FR", None, "DE"], {1: "c: allowed"}),
        ({"allowed": ["US"], "nullable": False}, ["US", None], {1: "c: not null"}),
        ({"allowed": [0, 1]}, [0, 1, 2, None], {2: "c: allowed"}),
        ({"regex": "^[^@]+@[^@]+$"}, ["a@b", "nope", None, "x@y@z"], {1: "c: regex", 3: "c: regex"}),
        ({"regex": "@"}, ["a@b", "no", "@@"], {1: "c: regex"}),  # unanchored: contains
        ({"unique": True}, [1, 2, 1, None, None, 2], {2: "c: unique", 5: "c: unique"}),
        ({"type": "int"}, ["1", "x", "-3", None, "1.5"], {1: "c: type int", 4: "c: type int"}),
        ({"type": "float"}, ["1.5", "1e3", "abc", None], {2: "c: type float"}),
        ({"type": "bool"}, ["true", "False", "1", "yes"], {3: "c: type bool"}),
        ({"type": "date"}, ["2024-01-31", "2024-02-30", "31/01/2024"], {1: "c: type date", 2: "c: type date"}),
        ({"type": "timestamp"}, ["2024-01-01 10:00", "2024-01-01T10:00:00Z", "soon"], {2: "c: type timestamp"}),
        ({"type": "int"}, [1.0, 2.5, None, 3.0], {1: "c: type int"}),  # float source, fractional value
    ],
)
def test_each_rule(rules: dict[str, Any], values: list[Any], failing: dict[int, str]) -> None:
    good, bad = _check({"c": rules}, {"c": values, "other": list(range(len(values)))})
    assert _rules(bad) == failing
    assert good.num_rows + bad.num_rows == len(values)  # type: ignore[union-attr]
    assert good.column("other").to_pylist() == [i for i in range(len(values)) if i not in failing]


def test_all_rows_pass_gives_no_bad_batch() -> None:
    good, bad = _check({"c": {"type": "int", "min": 0}}, {"c": ["1", "2"]})
    assert bad is None
    assert good.column("c").type == pa.int64()
    assert good.column("c").to_pylist() == [1, 2]


def test_declared_types_are_cast_and_bad_rows_keep_original_values() -> None:
    good, bad = _check(
        {"n": {"type": "int"}, "t": {"type": "timestamp"}, "d": {"type": "date"},
         "f": {"type": "float"}, "b": {"type": "bool"}, "s": {"type": "string"}},
        {"n": ["7", "eight"], "t": ["2024-03-01T12:00:00+02:00", "2024-03-01"],
         "d": ["2024-03-01", "2024-03-01"], "f": ["0.25", "1"], "b": ["1", "false"], "s": [1, 2]},
        first_row=100,
    )
    assert good.schema.types == [pa.int64(), pa.timestamp("us"), pa.date32(), pa.float64(),
                                 pa.bool_(), pa.string()]
    assert good.to_pylist() == [{"n": 7, "t": datetime(2024, 3, 1, 10, 0), "d": date(2024, 3, 1),
                                 "f": 0.25, "b": True, "s": "1"}]
    assert bad is not None
    assert bad.schema.names == ["n", "t", "d", "f", "b", "s", QUARANTINE_ROW, QUARANTINE_RULE]
    assert bad.column("n").to_pylist() == ["eight"]  # as read, not cast
    assert bad.column(QUARANTINE_ROW).type == pa.int64()
    assert _rules(bad) == {101: "n: type int"}


def test_one_row_breaking_several_rules_names_all_of_them() -> None:
    good, bad = _check(
        {"age": {"type": "int", "max": 120}, "email": {"regex": "^[^@]+@[^@]+$"}},
        {"age": ["150", "30", "200"], "email": ["nope", "a@b", "c@d"]},
        first_row=10,
    )
    assert _rules(bad) == {10: "age: max 120; email: regex", 12: "age: max 120"}
    assert good.column("age").to_pylist() == [30]


def test_unconvertible_value_fails_only_its_type_rule() -> None:
    _, bad = _check({"age": {"type": "int", "min": 0, "allowed": [1, 2]}}, {"age": ["x"]})
    assert _rules(bad) == {0: "age: type int"}


def test_numeric_bound_on_text_column_compares_numbers() -> None:
    # without a declared type, "99" < "120" as text would pass wrongly
    _, bad = _check({"age": {"max": 120}}, {"age": ["99", "130", "n/a", None]})
    assert _rules(bad) == {1: "age: max 120", 2: "age: max 120"}


def test_uniqueness_holds_across_batches() -> None:
    v = Expectations.from_dict({"columns": {"id": {"type": "int", "unique": True}}}).validator()
    g1, b1 = v.check(pa.record_batch({"id": ["1", "2", "3"]}), first_row=0)
    g2, b2 = v.check(pa.record_batch({"id": ["3", "4", "01", "4"]}), first_row=3)
    assert b1 is None
    assert g1.column("id").to_pylist() == [1, 2, 3]
    assert g2.column("id").to_pylist() == [4]
    assert _rules(b2) == {3: "id: unique", 5: "id: unique", 6: "id: unique"}  # "01" is 1
    assert v.finish(4)["failures"] == {"id: unique": 3}


def test_a_fresh_validator_forgets_seen_values() -> None:
    exp = Expectations.from_dict({"columns": {"id": {"unique": True}}})
    batch = pa.record_batch({"id": [1, 2]})
    assert exp.validator().check(batch)[1] is None
    assert exp.validator().check(batch)[1] is None


def test_finish_summary_counts_failures_per_rule() -> None:
    exp = Expectations.from_dict({"columns": {"a": {"min": 0}, "b": {"nullable": False}}})
    v = exp.validator()
    good, _ = v.check(pa.record_batch({"a": [-1, 1, -2, 3], "b": ["x", None, "y", "z"]}))
    summary = v.finish(good.num_rows)
    assert summary == {
        "expectations": exp.to_dict(),
        "failures": {"a: min 0": 2, "b: not null": 1},
        "rows_checked": 4,
    }


@pytest.mark.parametrize(("rows", "bounds", "word"), [(2, {"min": 3}, "row_count.min"),
                                                      (5, {"max": 4}, "row_count.max")])
def test_row_count_bounds(rows: int, bounds: dict[str, int], word: str) -> None:
    v = Expectations.from_dict({"row_count": bounds}).validator()
    good, _ = v.check(pa.record_batch({"x": list(range(rows))}))
    with pytest.raises(ValidationFailed, match=word) as e:
        v.finish(good.num_rows)
    assert "\n" not in str(e.value) and str(rows) in str(e.value)


def test_row_count_within_bounds_passes() -> None:
    v = Expectations.from_dict({"row_count": {"min": 2, "max": 2}}).validator()
    good, _ = v.check(pa.record_batch({"x": [1, 2]}))
    assert v.finish(good.num_rows)["rows_checked"] == 2


def test_row_count_counts_good_rows_only() -> None:
    v = Expectations.from_dict({"row_count": {"min": 2}, "columns": {"x": {"min": 0}}}).validator()
    good, _ = v.check(pa.record_batch({"x": [1, -1, -2]}))
    with pytest.raises(ValidationFailed, match="only 1 rows passed"):
        v.finish(good.num_rows)


def test_missing_column_is_invalid_input() -> None:
    v = Expectations.from_dict({"columns": {"agee": {"min": 0}}}).validator()
    with pytest.raises(InvalidInput, match=r"'agee'.*not in the data.*\['age', 'name'\]"):
        v.check(pa.record_batch({"age": [1], "name": ["a"]}))


# -- the file -----------------------------------------------------------------------------


def test_from_file_parses_the_documented_example(tmp_path: Path) -> None:
    path = tmp_path / "expectations.yaml"
    path.write_text(EXPECT)
    exp = Expectations.from_file(path)
    assert exp.row_count == RowCount(1, 1_000_000)
    assert exp.columns[0] == ColumnExpectation("id", type="int", nullable=False, unique=True)
    assert [c.name for c in exp.columns] == ["id", "age", "score", "country", "email", "signup", "active"]
    assert exp.columns[3].allowed == ("US", "DE", "FR")
    assert Expectations.from_dict(exp.to_dict()) == exp
    assert exp.source == str(path)


def test_dates_in_yaml_become_iso_text(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("columns:\n  t: {type: timestamp, min: 2024-01-01, max: 2024-12-31 23:59:00}\n")
    exp = Expectations.from_file(path)
    assert exp.to_dict()["columns"]["t"] == {"type": "timestamp", "min": "2024-01-01",
                                            "max": "2024-12-31T23:59:00"}
    _, bad = exp.validator().check(pa.record_batch({"t": ["2023-12-31 23:00", "2024-06-01", "2025-01-01"]}))
    assert _rules(bad) == {0: "t: min 2024-01-01", 2: "t: max 2024-12-31T23:59:00"}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("columns:\n  age: {maxx: 3}\n",
         r"e\.yaml: column 'age' has unknown rule 'maxx'; known rules: type, nullable, min, max, "
         r"allowed, regex, unique"),
        ("columns:\n  age: {type: integer}\n",
         r"e\.yaml: column 'age' has unknown type 'integer'; known types: int, float, string, bool, "
         r"timestamp, date"),
        ("columns:\n  age: {min: 10, max: 1}\n", r"e\.yaml: column 'age' has min 10 greater than max 1"),
        ("columns:\n  d: {type: date, min: 2024-05-01, max: 2024-01-01}\n",
         r"column 'd' has min '2024-05-01' greater than max '2024-01-01'"),
        ("columns:\n  email: {regex: '(?=x)'}\n", r"e\.yaml: column 'email' rule 'regex' '\(\?=x\)' does not compile"),
        ("columns:\n  email: {regex: '[a-'}\n", r"column 'email' rule 'regex' .* does not compile"),
        ("- a\n- b\n", r"e\.yaml: expected a mapping with keys row_count, columns, got list"),
        ("", r"e\.yaml: expected a mapping .* got NoneType"),
        ("columns: {age: {min: 1}\n", r"e\.yaml: not valid YAML"),
        ("colums: {}\n", r"e\.yaml: unknown key 'colums'; known keys: row_count, columns"),
        ("columns: [age]\n", r"'columns' must map column names to rules"),
        ("columns:\n  age: int\n", r"column 'age' must map rule names to values"),
        ("columns:\n  age: {nullable: 'no'}\n", r"column 'age' rule 'nullable' must be true or false"),
        ("columns:\n  age: {type: int, min: abc}\n", r"column 'age' rule 'min' value 'abc' is not a int"),
        ("columns:\n  age: {min: [1]}\n", r"column 'age' rule 'min' must be a number, a date or text"),
        ("columns:\n  c: {allowed: []}\n", r"column 'c' rule 'allowed' must be a non-empty list"),
        ("columns:\n  c: {type: int, allowed: [1, x]}\n", r"column 'c' rule 'allowed' value 'x' is not a int"),
        ("columns:\n  c: {allowed: [1, x]}\n", r"column 'c' rule 'allowed' mixes numbers and text"),
        ("row_count: {min: -1}\n", r"row_count min must be a whole number >= 0"),
        ("row_count: {min: 5, max: 2}\n", r"row_count min 5 is greater than max 2"),
        ("row_count: {least: 5}\n", r"'row_count' has unknown key 'least'; known keys: min, max"),
    ],
)
def test_bad_expectations_file(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=pattern) as e:
        Expectations.from_file(path)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"expectations file not found: .*nope\.yaml"):
        Expectations.from_file(tmp_path / "nope.yaml")


# -- end to end through ingest ----------------------------------------------------------


def _people_csv(tmp_path: Path, n: int = 200) -> tuple[Path, pd.DataFrame]:
    r = np.random.default_rng(42)
    df = pd.DataFrame({
        "id": np.arange(n),
        "age": r.integers(0, 100, n),
        "score": r.normal(size=n).round(4),
        "country": r.choice(["US", "DE", "FR"], n),
        "email": [f"user{i}@example.com" for i in range(n)],
        "signup": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "active": r.choice(["true", "false"], n),
    }).astype({"age": object})
    df.loc[3, "age"] = 150          # max
    df.loc[7, "email"] = "broken"   # regex
    df.loc[7, "age"] = -4           # min, same row
    df.loc[11, "age"] = "unknown"   # not a number: the column is read as text
    df.loc[20, "country"] = "XX"    # allowed
    df.loc[30, "id"] = 5            # unique (5 came first)
    path = tmp_path / "people.csv"
    df.to_csv(path, index=False)
    return path, df


def test_ingest_quarantines_bad_rows(ws: Workspace, tmp_path: Path) -> None:
    csv, df = _people_csv(tmp_path)
    expect = tmp_path / "expectations.yaml"
    expect.write_text(EXPECT)
    info = ingest(ws, FileSource(str(csv)), "people", expectations=expect)
    assert info.row_count == len(df) - 5
    assert info.quarantine_count == 5
    q = Catalog(ws).quarantine(info).to_pydict()
    assert dict(zip(q[QUARANTINE_ROW], q[QUARANTINE_RULE], strict=True)) == {
        3: "age: max 120",
        7: "age: min 0; email: regex",
        11: "age: type int",
        20: "country: allowed",
        30: "id: unique",
    }
    assert q["age"] == ["150", "-4", "unknown", *[str(df.loc[i, "age"]) for i in (20, 30)]]
    v = info.validation
    assert v["rows_read"] == len(df) and v["rows_checked"] == len(df)
    assert v["failures"] == {"id: unique": 1, "age: type int": 1, "age: min 0": 1, "age: max 120": 1,
                             "country: allowed": 1, "email: regex": 1}
    assert v["expectations"] == Expectations.from_file(expect).to_dict()
    types = {c["name"]: c["type"] for c in info.schema}
    assert types["age"] == "int64" and types["signup"] == "timestamp[us]" and types["active"] == "bool"
    stored = Catalog(ws).read_pandas(info)
    assert stored["age"].between(0, 120).all()
    assert stored["id"].is_unique


def test_ingest_fail_on_invalid_leaves_no_version(ws: Workspace, tmp_path: Path) -> None:
    csv, _ = _people_csv(tmp_path)
    expect = tmp_path / "expectations.yaml"
    expect.write_text(EXPECT)
    with pytest.raises(ValidationFailed, match="5 of 200 rows break the expectations"):
        ingest(ws, FileSource(str(csv)), "people", expectations=expect, fail_on_invalid=True)
    assert Catalog(ws).list() == []


def test_ingest_row_count_bound_leaves_no_version(ws: Workspace, tmp_path: Path) -> None:
    csv, _ = _people_csv(tmp_path, n=50)
    exp = Expectations.from_dict({"row_count": {"min": 100}}, source="small.yaml")
    with pytest.raises(ValidationFailed, match=r"only 50 rows passed .* row_count.min in small.yaml is 100"):
        ingest(ws, FileSource(str(csv)), "people", expectations=exp)
    assert Catalog(ws).list() == []


def test_ingest_clean_data_has_no_quarantine(ws: Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "ok.csv"
    pd.DataFrame({"id": [1, 2, 3], "age": [10, 20, 30]}).to_csv(csv, index=False)
    exp = Expectations.from_dict({"columns": {"id": {"unique": True}, "age": {"max": 120}}})
    info = ingest(ws, FileSource(str(csv)), "ok", expectations=exp)
    assert info.quarantine_count == 0
    assert Catalog(ws).quarantine(info).num_rows == 0
    assert info.validation["failures"] == {}


# -- properties ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), max_size=60),
    lo=st.integers(-1200, 1200),
    width=st.integers(0, 1500),
    split=st.integers(0, 60),
)
def test_min_max_partition_the_rows(values: list[int | None], lo: int, width: int, split: int) -> None:
    hi = lo + width
    v = Expectations.from_dict({"columns": {"x": {"min": lo, "max": hi}}}).validator()
    good_values: list[int | None] = []
    bad_rows: list[int] = []
    for first, chunk in ((0, values[:split]), (split, values[split:])):
        good, bad = v.check(pa.record_batch({"x": pa.array(chunk, pa.int64())}), first_row=first)
        good_values += good.column("x").to_pylist()
        if bad is not None:
            bad_rows += bad.column(QUARANTINE_ROW).to_pylist()
    assert len(good_values) + len(bad_rows) == len(values)
    assert all(x is None or lo <= x <= hi for x in good_values)
    assert all(values[i] is not None and not lo <= values[i] <= hi for i in bad_rows)  # type: ignore[operator]
    assert v.finish(len(good_values))["rows_checked"] == len(values)


def test_bad_value_deep_in_a_csv_is_quarantined_not_fatal(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loopml.data.sources import files

    monkeypatch.setattr(files, "BLOCK_SIZE", 4 << 10)
    path = tmp_path / "late.csv"
    rows = [f"{i},{i * 2}" for i in range(3000)] + ["3000,oops"]
    path.write_text("id,amount\n" + "\n".join(rows) + "\n")
    exp = tmp_path / "e.yaml"
    exp.write_text("columns:\n  amount: {type: int}\n")
    info = ingest(ws, FileSource(str(path)), "late", expectations=exp)
    assert (info.row_count, info.quarantine_count) == (3000, 1)
    q = Catalog(ws).quarantine(info).to_pylist()
    assert q == [{"id": "3000", "amount": "oops", "_row": 3000, "_rule": "amount: type int"}]
    assert Catalog(ws).read_arrow(info).schema.field("amount").type == pa.int64()


def test_quarantine_keeps_raw_values_when_types_differ_between_batches(ws: Workspace) -> None:
    from loopml.data.catalog import DatasetWriter

    with DatasetWriter(ws, "q") as w:
        w.quarantine(pa.record_batch({"v": pa.array([1], pa.int64()), "_row": [0], "_rule": ["r"]}))
        w.quarantine(pa.record_batch({"v": pa.array(["x"]), "_row": [1], "_rule": ["r"]}))
        info = w.commit()
    assert Catalog(ws).quarantine(info).column("v").to_pylist() == ["1", "x"]
