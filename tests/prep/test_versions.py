"""Recipe versions in a workspace: fit, store (JSON artifact, hash-verified), load, apply, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from loopml import IntegrityError, InvalidInput, NotFound, Workspace
from loopml.data import Catalog
from loopml.prep import (
    Recipe,
    apply_recipe,
    fit_recipe,
    get_recipe,
    list_recipes,
    load_recipe,
    recipe_versions,
)
from loopml.prep.steps import GroupAgg, Impute, OneHot, Standardize, TargetEncode
from loopml.store.lineage import EntityRef
from tests.prep._data import make_frame

RECIPE = Recipe(
    [Impute(columns=["amount", "score"], strategy="median"), Standardize(columns=["amount", "score"]),
     OneHot(columns=["city"]), TargetEncode(columns=["plan"])],
    target="y",
)


def test_fit_stores_a_versioned_json_artifact_with_lineage(any_ws: Workspace) -> None:
    ws = any_ws
    cat = Catalog(ws)
    d1 = cat.write("sales", make_frame())
    info = fit_recipe(ws, RECIPE, "sales", "churn")
    assert (info.ref, info.created, info.fitted_on, info.target) == ("churn:1", True, "sales:1", "y")
    assert "city_paris" in info.output_columns and info.report["fit_rows"] == d1.row_count
    assert json.loads(ws.artifacts.get_bytes(info.artifact_hash))["format"] == "loopml.recipe"
    assert ws.lineage.downstream(d1.entity)[0].relation == "fitted"
    assert ws.lineage.upstream(info.entity)[0].src == d1.entity
    assert [e.type for e in ws.events.list()][-1] == "recipe.version_created"
    # the same fit again is the same version; new data makes the next one
    again = fit_recipe(ws, RECIPE, "sales:1", "churn")
    assert (again.ref, again.created) == ("churn:1", False)
    cat.write("sales", make_frame(seed=5))
    assert fit_recipe(ws, RECIPE, "sales", "churn").ref == "churn:2"
    assert [v.version for v in recipe_versions(ws, "churn")] == [1, 2]
    assert [(s.name, s.versions, s.latest, s.fitted_on) for s in list_recipes(ws)] == [("churn", 2, 2, "sales:2")]
    assert get_recipe(ws, "churn:1").fitted_on == "sales:1"
    loaded = load_recipe(ws, "churn:1")
    assert loaded.transform_one({"amount": None, "score": 0.0, "city": "paris", "plan": "pro"})["city_paris"] == 1.0


def test_the_recipes_table_has_one_row_per_version(ws: Workspace) -> None:
    Catalog(ws).write("d", make_frame(40))
    fit_recipe(ws, RECIPE, "d", "r")
    with ws.meta.engine.connect() as c:
        rows = c.execute(sa.text("SELECT name, version, target FROM recipes")).all()
    assert rows == [("r", 1, "y")]


def test_apply_streams_in_batches_and_keeps_row_order(ws: Workspace) -> None:
    cat = Catalog(ws)
    cat.write("train", make_frame())
    new = make_frame(500, seed=3)
    cat.write("new", new)
    info = fit_recipe(ws, RECIPE, "train", "prep")
    seen: list[int] = []
    out = apply_recipe(ws, "prep", "new", "new_features", batch_size=64, progress=seen.append)
    assert seen == [*list(range(64, 500, 64)), 500], "streamed in batches"
    got = cat.read_pandas(out)
    want = load_recipe(ws, "prep").transform(new)
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False)
    assert out.source == {"kind": "recipe", "recipe": "prep:1", "input": "new:1", "report": {
        "1:impute": {"values_filled": int(new[["amount", "score"]].isna().sum().sum())}}}
    relations = {(str(e.src.kind), e.relation) for e in ws.lineage.upstream(out.entity, depth=1)}
    assert relations == {("dataset_version", "transformed_into"), ("recipe_version", "applied_to")}
    assert ws.lineage.downstream(info.entity)[0].dst == out.entity


def test_apply_with_point_in_time_steps_reads_the_whole_dataset(ws: Workspace) -> None:
    cat = Catalog(ws)
    df = make_frame()
    cat.write("events", df)
    r = Recipe([GroupAgg(entity="customer", time="ts", columns=["amount"], aggs=["count", "mean"])])
    fit_recipe(ws, r, "events", "history")
    assert not load_recipe(ws, "history").streamable
    out = cat.read_pandas(apply_recipe(ws, "history", "events", "events_feat", batch_size=10))
    np.testing.assert_array_equal(out["customer_count"], r.fit(df).transform(df)["customer_count"])


def test_fit_with_out_writes_the_out_of_fold_training_rows(ws: Workspace) -> None:
    cat = Catalog(ws)
    cat.write("d", make_frame())
    info = fit_recipe(ws, RECIPE, "d", "r", out="d_train")
    train = cat.read_pandas("d_train")
    again = load_recipe(ws, "r").transform(make_frame())
    assert not np.allclose(train["plan"], again["plan"]), "target encodings are out-of-fold"
    assert cat.get("d_train").source["out_of_fold"] is True
    assert ws.lineage.downstream(info.entity)[0].relation == "applied_to"


def test_bad_input_leaves_nothing_behind(ws: Workspace, tmp_path: Path) -> None:
    cat = Catalog(ws)
    cat.write("d", make_frame())
    fit_recipe(ws, RECIPE, "d", "r")
    cat.write("no_city", make_frame().drop(columns=["city"]))
    with pytest.raises(InvalidInput, match=r"no column 'city', which recipe step 3 \(one_hot\) reads"):
        apply_recipe(ws, "r", "no_city", "out")
    # a failure part-way through the stream (an unseen category in a late batch) writes nothing
    strict = Recipe([OneHot(columns=["city"], handle_unknown="error")])
    fit_recipe(ws, strict, "d", "strict")
    late = make_frame(300, seed=1)
    late.loc[280, "city"] = "atlantis"
    cat.write("late", late)
    with pytest.raises(InvalidInput, match="'atlantis', not seen"):
        apply_recipe(ws, "strict", "late", "out", batch_size=50)
    with pytest.raises(NotFound):
        cat.get("out")
    # an unknown column in the recipe: no recipe version, no artifact
    before = set((Path(ws.artifacts.root) / "sha256").rglob("*"))
    with pytest.raises(InvalidInput, match=r"step 1 \(standardize\): unknown column 'amout'"):
        fit_recipe(ws, Recipe([Standardize(columns=["amout"])]), "d", "typo")
    assert set((Path(ws.artifacts.root) / "sha256").rglob("*")) == before
    with pytest.raises(NotFound, match="no recipe named 'typo'"):
        get_recipe(ws, "typo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - kind: scale\n")
    with pytest.raises(InvalidInput, match=r"bad.yaml: recipe step 1: unknown step kind 'scale'"):
        fit_recipe(ws, bad, "d", "bad")


def test_loading_verifies_the_artifact_hash(ws: Workspace) -> None:
    Catalog(ws).write("d", make_frame(30))
    info = fit_recipe(ws, Recipe([Standardize(columns=["amount"])]), "d", "r")
    path = Path(ws.artifacts._path(info.artifact_hash))
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b'"standardize"', b'"standardise"'))
    with pytest.raises(IntegrityError, match="was modified or corrupted"):
        load_recipe(ws, "r")


def test_refs_and_names_are_checked(ws: Workspace) -> None:
    Catalog(ws).write("d", make_frame(30))
    fit_recipe(ws, Recipe([Standardize(columns=["amount"])]), "d", "r")
    with pytest.raises(NotFound, match=r"recipe 'r' has no version 4 \(latest is 1\)"):
        load_recipe(ws, "r:4")
    with pytest.raises(InvalidInput, match=r"recipe name '\.\./x' is not allowed"):
        get_recipe(ws, "../x")
    with pytest.raises(InvalidInput, match="without a version"):
        fit_recipe(ws, Recipe([]), "d", "r:2")
    assert EntityRef("recipe_version", get_recipe(ws, "r").id) == get_recipe(ws, "r:1").entity


def test_empty_results_keep_their_columns(ws: Workspace) -> None:
    cat = Catalog(ws)
    cat.write("d", make_frame())
    cat.write("empty", make_frame().iloc[:0])
    fit_recipe(ws, Recipe([OneHot(columns=["city"])]), "d", "enc")
    fit_recipe(ws, Recipe.from_dict({"steps": [{"kind": "drop_rows", "where": "visits >= 0"}]}), "d", "none")
    for recipe, data in (("enc", "empty"), ("none", "d")):
        out = apply_recipe(ws, recipe, data, f"{recipe}_out", batch_size=50)
        assert out.row_count == 0 and out.columns == load_recipe(ws, recipe).output_columns
