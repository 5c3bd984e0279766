from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from loopml.eda import Profile, profile, render_html
from tests._chromium import rendered_dom

SECTIONS = ("warnings", "overview", "columns", "missing", "outliers", "correlations", "target", "duplicates")


@pytest.fixture(scope="module")
def html(frame: pd.DataFrame) -> str:
    return render_html(profile(frame.iloc[:600], target="label"))


def _figures(page: str) -> dict[str, dict[str, object]]:
    m = re.search(r'<script type="application/json" id="loopml-figures">(.*?)</script>', page, re.S)
    assert m
    figs: dict[str, dict[str, object]] = json.loads(m.group(1))
    return figs


def test_sections_figures_and_self_contained(html: str) -> None:
    for sec in SECTIONS:
        assert f'id="{sec}"' in html
    assert html.count("Plotly.newPlot") == 1
    assert len(re.findall(r"<script[^>]*\bsrc=", html)) == 0  # nothing loaded from elsewhere
    from plotly.offline import get_plotlyjs

    assert html.count(get_plotlyjs()) == 1  # plotly.js inline, once
    rest = html.replace(get_plotlyjs(), "")
    assert "http://" not in rest and "https://" not in rest and "<link" not in rest
    figs = _figures(html)
    charts = set(re.findall(r'data-fig="([^"]+)"', html))
    assert charts <= set(figs) and len(charts) >= 20
    assert {"pearson", "spearman", "cramers_v", "correlation_ratio", "missing_rates", "iforest",
            "target_dist", "target_assoc", "target_plot_0"} <= charts
    assert figs["pearson"]["data"][0]["type"] == "heatmap"  # type: ignore[index]
    assert len(html) < 6_000_000  # one plotly.js (~4.8 MB) plus the figures


def test_warnings_are_at_the_top_and_text_is_escaped() -> None:
    df = pd.DataFrame({"<b>bad</b>": ["<script>alert(1)</script>"] * 30, "v": range(30)})
    page = render_html(profile(df))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
    assert page.index('id="warnings"') < page.index('id="overview"') < page.index('id="columns"')
    assert "is constant" in page[page.index('id="warnings"'):page.index('id="overview"')]


def test_without_target_says_how_to_get_one(frame: pd.DataFrame) -> None:
    page = render_html(profile(frame[["x", "color"]]))
    section = page[page.index('id="target"'):page.index('id="duplicates"')]
    assert "No target given" in section and "--target" in section


def test_renders_a_profile_read_back_from_json(frame: pd.DataFrame) -> None:
    p = profile(frame.iloc[:200, :5])
    assert render_html(Profile.from_json(p.to_json())) == render_html(p)


def test_report_renders_in_headless_chromium(html: str, tmp_path: Path) -> None:
    dom = rendered_dom(html, tmp_path)
    for sec in SECTIONS:
        assert f'id="{sec}"' in dom, sec
    assert "js-plotly-plot" in dom and 'class="main-svg"' in dom  # plotly drew charts
    drawn = len(re.findall(r'data-drawn="1"', dom))
    assert drawn >= 5, f"only {drawn} charts drawn"
