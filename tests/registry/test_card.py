"""The model card of a version trained for real: data ingested from a file, a catalog recipe, a training job."""

from __future__ import annotations

from pathlib import Path

from loopml import Workspace
from loopml.data.ingest import ingest
from loopml.data.sources.files import FileSource
from loopml.prep import Recipe, fit_recipe
from loopml.prep.steps import OneHot
from loopml.registry import approve, model_card, register_model, set_alias
from loopml.train import Estimator
from tests.train._data import churn


def test_model_card_tells_the_whole_story(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "customers.parquet"
    churn(300).to_parquet(path)
    data = ingest(ws, FileSource(str(path)), "customers")
    recipe = fit_recipe(ws, Recipe([OneHot(columns=["city"])]), data.ref, "enc", target="y")
    result = Estimator("xgboost", {"num_round": 8, "max_depth": 3}, target="y", recipe=recipe.ref,
                       experiment="cards", ws=ws).fit(data.ref, run_name="card-run")
    v = register_model(ws, result, "churn", description="Predicts churn | for the retention team.", by="dana")
    approve(ws, v.ref, by="alice", reason="AUC above the bar")
    set_alias(ws, v.ref, "production", by="alice")

    card = model_card(ws, "churn@production")
    assert card.startswith("# Model card: churn:1\n")
    for expected in [
        "| approval | Approved by alice on ",
        "(AUC above the bar)",
        "| aliases | production |",
        f"| training run | {result.run_id} (card-run, experiment cards) |",
        "Predicts churn | for the retention team.",
        "**xgboost** (binary), `loopml.train.algorithms._boosting:XGBoost`",
        "- target column: `y`",
        "- trained on: train customers:1 (300 rows)",
        "| max_depth | 3 |",
        "| num_round | 8 |",
        "| train:auc | ",
        "| x1 | double | ",
        "| city | ",
        "| prediction | int64 | the most probable class |",
        "(labels: 0, 1)",
        "`city_paris`",
        "Catalog recipe **enc:1**, applied before the model.",
        "| 1 | one_hot | ",
        "| customers:1 | train | ",
        f"- source {path} --ingested_from--> dataset customers:1",
        "| PendingManualApproval |  | dana | registered |",
        "| Approved | PendingManualApproval | alice | AUC above the bar |",
        "| production | version 1 |  | alice |",
    ]:
        assert expected in card, expected
    assert card.count("\n## ") == 9
    # table cells stay on one line: the pipe in the description is only escaped inside tables
    assert "| model package | " + result.model_sha256 + " |" in card
