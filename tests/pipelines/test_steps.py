"""Built-in step kinds on real data: a churn pipeline end to end, and each stage's kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopml import Workspace
from loopml.data import Catalog
from loopml.errors import Conflict, InvalidInput
from loopml.pipelines import (
    ExecutionInfo,
    Pipeline,
    StepContext,
    get_step_kind,
    list_step_kinds,
    load_pipeline,
    register_step_kind,
    run_pipeline,
)
from loopml.registry import get_model_version
from tests.train._data import churn

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pipelines"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ExecutionInfo]]:
    """A workspace where the churn example ran once (and made churn@production)."""
    ws = Workspace.init(tmp_path_factory.mktemp("trained") / "ws")
    first = run_pipeline(ws, load_pipeline(EXAMPLES / "churn_pipeline.py"), {"rows": "400", "threshold": "0.6"},
                         executor="thread")
    yield ws, first
    ws.close()


def test_the_churn_example_trains_gates_and_registers(trained: tuple[Workspace, ExecutionInfo]) -> None:
    ws, first = trained
    p = load_pipeline(EXAMPLES / "churn_pipeline.py")
    assert first.status == "Succeeded", first.error
    ev = first.step("evaluate").outputs
    assert ev["task"] == "binary" and ev["n_rows"] == 200 and ev["metrics"]["roc_auc"] > 0.6
    assert ev["beats_baseline"] is True and ev["baseline_metrics"] is None  # no production model yet
    assert first.step("good_enough").outputs["result"] is True
    reg = first.step("register").outputs
    assert reg["model"] == "churn:1" and reg["approval_status"] == "Approved" and reg["aliases"] == ["production"]
    assert first.step("fail").status == "Skipped"
    version = get_model_version(ws, "churn@production")
    assert version.run_id == first.step("train").outputs["run_id"]
    produced = {str(e.dst) for e in ws.lineage.downstream(first.entity, depth=1) if e.relation == "produced"}
    assert f"model_version:{version.id}" in produced
    assert f"run:{version.run_id}" in produced
    assert f"dataset_version:{Catalog(ws).get('churn_train:1').id}" in produced

    # again: data and training come from the cache; the challenger is the champion itself, so it does
    # not beat production by the margin and is not registered — and the record says why
    second = run_pipeline(ws, p, {"rows": "400", "threshold": "0.6"}, executor="thread")
    assert second.status == "Succeeded"
    assert second.step("make_data").status == "Cached" and second.step("train").status == "Cached"
    ev2 = second.step("evaluate").outputs
    assert ev2["improvement"] == 0.0 and ev2["beats_baseline"] is False
    assert ev2["baseline_metrics"]["roc_auc"] == ev["metrics"]["roc_auc"]
    assert second.step("beats_production").outputs == {
        "result": False, "detail": "${steps.evaluate.outputs.beats_baseline} = false -> false"}
    assert second.step("register").status == "Skipped"

    # a threshold nothing clears fails the execution with the fail step's message
    third = run_pipeline(ws, p, {"rows": "400", "threshold": "0.999"}, executor="thread")
    assert third.status == "Failed"
    assert third.step("fail").error.startswith("holdout AUC 0.")  # type: ignore[union-attr]
    assert third.step("fail").error.endswith("is below 0.999")  # type: ignore[union-attr]
    assert third.step("beats_production").status == "Skipped" and third.step("register").status == "Skipped"


def test_stage_kinds_eda_prep_features(ws: Workspace, tmp_path: Path) -> None:
    df = churn(120, seed=3).reset_index(names="customer_id")
    df["event_time"] = pd.Timestamp("2025-01-01")
    csv = tmp_path / "customers.csv"
    df.to_csv(csv, index=False)
    recipe = {"steps": [{"kind": "impute", "columns": ["x2"], "strategy": "median"},
                        {"kind": "standardize", "columns": ["x1", "x2"]}]}
    p = Pipeline("stages")
    raw = p.add("ingest", source=str(csv), dataset="customers",
                expectations={"columns": {"y": {"type": "int", "allowed": [0, 1]}}})
    eda = p.add("eda", data=raw.output("dataset"), target="y", out=str(tmp_path / "eda.html"))
    fit = p.add("prep_fit", recipe=recipe, data=raw.output("dataset"), recipe_name="scale", out="customers_fit")
    applied = p.add("prep_apply", recipe=fit.output("recipe"), data=raw.output("dataset"), out="customers_scaled")
    p.add("features_ingest", group="customer_features", data=applied.output("dataset"),
          create={"record_id": "customer_id", "event_time": "event_time",
                  "features": {"x1": "fractional", "x2": "fractional"}, "id_type": "integral"})
    p.add("validate", name="check", data=applied.output("dataset"),
          expectations={"columns": {"x1": {"min": -100, "max": 100}}}, depends_on=[eda])
    ex = run_pipeline(ws, p, executor="thread")
    assert ex.status == "Succeeded", ex.error
    assert ex.step("ingest").outputs["dataset"] == "customers:1" and ex.step("ingest").outputs["rows"] == 120
    assert Path(ex.step("eda").outputs["out"]).read_text().startswith("<!DOCTYPE html>")
    assert ex.step("prep_fit").outputs["recipe"] == "scale:1"
    assert ex.step("prep_fit").outputs["dataset"] == "customers_fit:1"
    assert ex.step("prep_apply").outputs["dataset"] == "customers_scaled:1"
    assert ex.step("features_ingest").outputs["rows"] == 120
    assert ex.step("check").outputs["passed"] is True
    scaled = Catalog(ws).read_pandas("customers_scaled:1")
    assert abs(float(scaled["x1"].mean())) < 1e-6

    # validation failure is a clear, non-retried error
    q = Pipeline("strict")
    q.add("validate", data="customers:1", expectations={"columns": {"x1": {"min": 0}}}, retries=2)
    bad = run_pipeline(ws, q, executor="thread")
    step = bad.step("validate")
    assert bad.status == "Failed" and step.attempt == 1
    assert step.error is not None and "rows of customers:1 break the expectations (x1: min 0" in step.error
    q2 = Pipeline("lenient")
    q2.add("validate", data="customers:1", expectations={"columns": {"x1": {"min": 0}}}, fail=False)
    out = run_pipeline(ws, q2, executor="thread").step("validate").outputs
    assert out["passed"] is False and out["rows_failed"] > 0 and "x1: min 0" in out["failures"]


@pytest.mark.slow
def test_tune_kind_registers_the_best_model(ws: Workspace) -> None:
    Catalog(ws).write("tune_data", churn(200, seed=0))
    p = Pipeline("tuning")
    t = p.add("tune", algo="xgboost", data="tune_data", target="y", objective="validation:auc",
              hyperparameters={"num_round": 10, "nthread": 1}, ranges={"max_depth": [2, 3]}, strategy="grid",
              register_as="tuned")
    p.add("evaluate", model=t.output("model"), data="tune_data", target="y", latency_rows=0)
    ex = run_pipeline(ws, p, executor="thread")
    assert ex.status == "Succeeded", ex.error
    out = ex.step("tune").outputs
    assert out["status"] == "Completed" and out["model"] == "tuned:1" and out["best_params"]["max_depth"] in (2, 3)
    assert ex.step("evaluate").outputs["metrics"]["roc_auc"] > 0.5


def shout(ctx: StepContext, text: str) -> dict[str, Any]:
    """A custom step kind."""
    return {"text": text.upper(), "step": ctx.step}


def test_custom_step_kinds(ws: Workspace) -> None:
    kind = register_step_kind("shout_test", shout, outputs=["text", "step"], replace=True)
    assert get_step_kind("shout_test") is kind and kind in list_step_kinds()
    with pytest.raises(Conflict, match="step kind 'shout_test' exists; pass replace=True"):
        register_step_kind("shout_test", shout)
    with pytest.raises(InvalidInput, match="step kind name 'Bad Name' must be lower-case"):
        register_step_kind("Bad Name", shout)
    p = Pipeline("custom")
    a = p.add("shout_test", text="hi")
    with pytest.raises(InvalidInput, match="step 'shout_test' has no output 'txt'; its outputs: text, step"):
        p.add("shout_test", name="b", text=a.output("txt"))
        p.validate()
    ex = run_pipeline(ws, _custom(), executor="thread")
    assert ex.step("shout_test").outputs == {"text": "HI", "step": "shout_test"}


def _custom() -> Pipeline:
    p = Pipeline("custom")
    p.add("shout_test", text="hi")
    return p




def test_deploy_kind_creates_an_endpoint(trained: tuple[Workspace, ExecutionInfo]) -> None:
    from loopml.serve import endpoints

    ws, _ = trained
    q = Pipeline("deploy")
    q.add("deploy", endpoint="churn-ep", model="churn@production")
    ex = run_pipeline(ws, q, executor="thread")
    assert ex.status == "Succeeded", ex.error
    assert ex.step("deploy").outputs["endpoint"] == "churn-ep"
    assert endpoints.get_endpoint(ws, "churn-ep").version == ex.step("deploy").outputs["endpoint_version"]
    bad = Pipeline("deploy_bad")
    bad.add("deploy", endpoint="churn-ep", model="churn@production", colour="blue")
    failed = run_pipeline(ws, bad, executor="thread")
    assert "the deploy step does not take colour" in (failed.step("deploy").error or "")
    # a strategy shifts traffic on the existing endpoint through a guarded deployment
    canary = Pipeline("deploy_canary")
    canary.add("deploy", endpoint="churn-ep", model="churn@production", strategy="canary:50:0.2")
    ex = run_pipeline(ws, canary, executor="thread")
    assert ex.status == "Succeeded", ex.error
    out = ex.step("deploy").outputs
    assert out["deployment_status"] == "Succeeded" and out["endpoint_version"] > 1
    fresh = Pipeline("deploy_canary_new")
    fresh.add("deploy", endpoint="nowhere-ep", model="churn@production", strategy="canary:50:1")
    failed = run_pipeline(ws, fresh, executor="thread")
    assert "does not exist yet; deploy it first" in (failed.step("deploy").error or "")


def test_transform_kind_scores_a_dataset(trained: tuple[Workspace, ExecutionInfo], tmp_path: Path) -> None:
    ws, _ = trained
    q = Pipeline("batch")
    q.add("transform", model="churn@production", input="dataset:churn_holdout:1", output=str(tmp_path / "out"),
          workers=1, executor="inline")
    ex = run_pipeline(ws, q, executor="thread")
    assert ex.status == "Succeeded", ex.error
    out = ex.step("transform").outputs
    assert out["rows_in"] == out["rows_out"] == 200 and out["errors"] == 0 and out["transformed_with"] == \
        "churn@production"
    assert [(tmp_path / "out" / Path(f).name).exists() for f in out["files"]] == [True]


def test_monitor_baseline_kind_stores_a_baseline(trained: tuple[Workspace, ExecutionInfo]) -> None:
    from loopml.monitor import get_baseline

    ws, _ = trained
    q = Pipeline("baseline")
    q.add("monitor_baseline", data="churn_train:1", args={"name": "churn-train"})  # name= names the step
    ex = run_pipeline(ws, q, executor="thread")
    assert ex.status == "Succeeded", ex.error
    out = ex.step("monitor_baseline").outputs
    assert out["baseline"] == "churn-train" and out["data"] == "churn_train:1"
    assert get_baseline(ws, "churn-train").statistics_sha256 == out["statistics_sha256"]
