from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from loopml.evaluate import EvaluationResult, evaluate_predictions, render_report
from tests._chromium import rendered_dom

SECTIONS = ("metrics", "curves", "calibration", "confusion", "residuals", "business")
COSTS = {"cost_fp": 5, "cost_fn": 50, "benefit_tp": 10, "predictions_per_day": 1000,
         "development_cost": 5000, "currency": "EUR"}


@pytest.fixture(scope="module")
def binary_result() -> EvaluationResult:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 800)
    s = np.clip(0.35 * y + 0.65 * rng.random(800), 0, 1)
    return evaluate_predictions(y, y_score=s, costs=COSTS, latency={"p50_ms": 2.0, "p99_ms": 7.5})


@pytest.fixture(scope="module")
def regression_result() -> EvaluationResult:
    rng = np.random.default_rng(2)
    y = rng.normal(50, 10, 300)
    return evaluate_predictions(y, y + rng.normal(0, 3, 300))


def _figures(page: str) -> dict[str, dict[str, object]]:
    m = re.search(r'<script type="application/json" id="loopml-figures">(.*?)</script>', page, re.S)
    assert m
    figs: dict[str, dict[str, object]] = json.loads(m.group(1))
    return figs


def test_sections_and_self_contained(binary_result: EvaluationResult) -> None:
    from plotly.offline import get_plotlyjs

    page = render_report(binary_result)
    for sec in SECTIONS:
        assert f'id="{sec}"' in page
    assert page.count(get_plotlyjs()) == 1  # plotly.js inline, once
    assert len(re.findall(r"<script[^>]*\bsrc=", page)) == 0
    rest = page.replace(get_plotlyjs(), "")
    assert "http://" not in rest and "https://" not in rest and "<link" not in rest
    figs = _figures(page)
    charts = set(re.findall(r'data-fig="([^"]+)"', page))
    assert {"roc", "pr", "calibration", "score_hist", "confusion", "value_per_day"} == charts <= set(figs)
    assert figs["confusion"]["data"][0]["type"] == "heatmap"  # type: ignore[index]
    business = page[page.index('id="business"'):]
    assert "always-negative" in business and "payback period (days)" in business and "EUR" in business
    assert "Model–business alignment" in business and "7.5" in business


def test_not_applicable_sections_say_so(regression_result: EvaluationResult) -> None:
    page = render_report(regression_result)
    assert set(re.findall(r'data-fig="([^"]+)"', page)) == {"resid_scatter", "resid_hist", "pred_actual"}
    assert "apply to classification" in page[page.index('id="curves"'):page.index('id="calibration"')]
    assert "No costs given" in page[page.index('id="business"'):]


def test_text_is_escaped() -> None:
    r = evaluate_predictions(["<b>x</b>", "<script>alert(1)</script>"] * 5, ["<b>x</b>"] * 10)
    page = render_report(r)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_reports_render_in_headless_chromium(binary_result: EvaluationResult,
                                             regression_result: EvaluationResult, tmp_path: Path) -> None:
    dom = rendered_dom(render_report(binary_result), tmp_path, "binary")
    for sec in SECTIONS:
        assert f'id="{sec}"' in dom, sec
    assert "js-plotly-plot" in dom and 'class="main-svg"' in dom  # plotly drew charts
    assert len(re.findall(r'data-drawn="1"', dom)) == 6
    dom = rendered_dom(render_report(regression_result), tmp_path, "regression")
    assert len(re.findall(r'data-drawn="1"', dom)) == 3 and 'class="main-svg"' in dom
