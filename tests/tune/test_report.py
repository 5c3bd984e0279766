"""The tuning report: one offline HTML page with history, iterations, parallel coordinates, importance, trials."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from loopml import Workspace
from loopml.errors import NotFound
from loopml.train import Estimator
from loopml.tune import HyperparameterTuner
from loopml.tune.report import param_importances, render_report, tuning_report, write_report
from tests._chromium import rendered_dom

SECTIONS = ("summary", "history", "curves", "parallel", "importance", "trials")


def _figs(page: str) -> dict[str, dict[str, object]]:
    raw = re.search(r'<script type="application/json" id="loopml-figures">(.*?)</script>', page, re.S)
    assert raw is not None
    figs: dict[str, dict[str, object]] = json.loads(raw.group(1))
    return figs


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory, churn_df: pd.DataFrame,
        churn_val: pd.DataFrame) -> tuple[Workspace, str]:
    ws = Workspace.init(tmp_path_factory.mktemp("report-ws"))
    est = Estimator("xgboost", {"num_round": 20, "nthread": 1}, target="y", ws=ws)
    HyperparameterTuner(est, ranges={"max_depth": (1, 6), "eta": (0.02, 0.5), "grow_policy": ["depthwise",
                                                                                                "lossguide"]},
                        max_trials=8, strategy="random", name="rep",
                        early_stopping={"pruner": "median", "n_startup_trials": 2, "warmup_fraction": 0.0},
                        ).fit(churn_df, churn_val)
    yield ws, "rep"
    ws.close()


def test_report_of_a_job(job: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, job_id = job
    path = write_report(ws, job_id, tmp_path / "sub" / "tuning.html")
    page = Path(path).read_text()
    assert all(f'id="{s}"' in page for s in SECTIONS)
    assert not re.search(r"<script[^>]*\bsrc=", page) and "Plotly" in page  # plotly.js inline: works offline
    figs = _figs(page)
    assert set(figs) == {"history", "curves", "parallel", "importance"}
    result_rows = re.findall(r'<td class="num">(\d+)</td><td class="state-(\w+)">', page)
    assert len(result_rows) == 8 and {s for _, s in result_rows} <= {"COMPLETE", "PRUNED"}

    history = figs["history"]["data"]
    assert history[0]["name"] == "completed" and history[-1]["name"] == "best so far"  # type: ignore[index]
    best_line = history[-1]["y"]  # type: ignore[index]
    assert best_line == sorted(best_line)  # maximised: the best so far never falls
    parcoords = figs["parallel"]["data"][0]  # type: ignore[index]
    labels = [d["label"] for d in parcoords["dimensions"]]
    assert set(labels[:-1]) == {"max_depth", "eta (log10)", "grow_policy"} and labels[-1] == "validation:auc"
    cat = parcoords["dimensions"][labels.index("grow_policy")]
    assert set(cat["ticktext"]) <= {"depthwise", "lossguide"} and cat["tickvals"] == list(range(len(cat["ticktext"])))
    importance = figs["importance"]["data"][0]  # type: ignore[index]
    assert set(importance["y"]) == {"max_depth", "eta", "grow_policy"}
    assert sum(importance["x"]) == pytest.approx(1.0)
    curves = figs["curves"]["data"]  # type: ignore[index]
    assert len(curves) == 8 and {c["legendgroup"] for c in curves} <= {"COMPLETE", "PRUNED"}

    # the importances are Optuna's fANOVA, keyed by our names, the same each time
    import optuna

    from loopml.tune._storage import open_studies

    with open_studies(ws.settings.metadata_url) as studies:
        study = optuna.load_study(study_name=job_id, storage=studies.storage(job_id))
        first = param_importances(study)
        assert first == param_importances(study) and set(first) == {"max_depth", "eta", "grow_policy"}

    with pytest.raises(NotFound, match="no tuning job 'nope'"):
        tuning_report(ws, "nope")


def test_report_renders_in_headless_chromium(job: tuple[Workspace, str], tmp_path: Path) -> None:
    ws, job_id = job
    dom = rendered_dom(tuning_report(ws, job_id), tmp_path, "tuning")
    assert 'class="main-svg"' in dom and len(re.findall(r'data-drawn="1"', dom)) == 4


def test_report_of_a_job_without_enough_trials(ws: Workspace, churn_df: pd.DataFrame) -> None:
    est = Estimator("xgboost", {"num_round": 4, "nthread": 1}, target="y", ws=ws)
    HyperparameterTuner(est, ranges={"max_depth": (2, 4)}, max_trials=1, name="one").fit(churn_df)
    page = tuning_report(ws, "one")
    assert set(_figs(page)) == {"history"}
    assert "Needs at least two completed trials; the job has 1." in page
    assert "Needs at least two completed trials." in page  # parallel coordinates


def test_text_in_the_report_is_escaped() -> None:
    from loopml.tune.jobs import TrialInfo, TuningResult

    t = TrialInfo(0, "FAIL", None, {"tree_method": "<script>alert(1)</script>"}, message="<b>bad</b>")
    page = render_report(TuningResult("j", "r", "Failed", "validation:auc", "maximize", "random", "xgboost", 1,
                                      trials=[t], error="<i>x</i>"))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page and "&lt;b&gt;bad" in page
