"""The shared report shell (``loopml._report``): offline page, figure helpers, atomic writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loopml._report import (
    SHELL_NAME,
    bin_centres,
    chart_layout,
    figure,
    format_number,
    render_page,
    write_atomic,
)

PAGE = """{% extends "report_shell.html" %}
{% block style %}.extra { color:red; }{% endblock %}
{% block subtitle %}{{ rows|n }} rows{% endblock %}
{% block nav %}<a href="#one">One</a>{% endblock %}
{% block main %}<section id="one"><h2>{{ name|shout }}</h2><div class="chart" data-fig="bars"></div></section>
{% endblock %}"""


@pytest.fixture(scope="module")
def page() -> str:
    figs = {"bars": figure([{"type": "bar", "x": [1, 2], "y": [3, 4]}], chart_layout("bars", height=200))}
    return render_page(PAGE, title="T <&>", source="ds:1", figs=figs, filters={"shout": str.upper},
                       rows=12345, name="<b>x</b>")


def test_shell_embeds_plotly_once_and_loads_nothing_from_the_network(page: str) -> None:
    from plotly.offline import get_plotlyjs

    assert f'{{% extends "{SHELL_NAME}" %}}' in PAGE
    assert page.count(get_plotlyjs()) == 1  # plotly.js inline, exactly once
    assert not re.search(r"<script[^>]*\bsrc\s*=", page)  # no script loaded from anywhere
    assert not re.search(r"""src\s*=\s*["']?https?://""", page)
    rest = page.replace(get_plotlyjs(), "")
    assert "http://" not in rest and "https://" not in rest and "<link" not in rest
    assert rest.count("Plotly.newPlot") == 1 and "IntersectionObserver" in rest  # the lazy drawer


def test_page_blocks_filters_and_figures(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>T &lt;&amp;&gt; · ds:1</title>" in page and "<h1>T &lt;&amp;&gt;</h1>" in page
    assert ".extra { color:red; }" in page and "12,345 rows" in page and 'href="#one"' in page
    assert "&lt;B&gt;X&lt;/B&gt;" in page  # the page's own filter ran, and its output is escaped
    m = re.search(r'<script type="application/json" id="loopml-figures">(.*?)</script>', page, re.S)
    assert m
    figs = json.loads(m.group(1))
    assert set(figs) == set(re.findall(r'data-fig="([^"]+)"', page)) == {"bars"}
    assert figs["bars"]["layout"]["height"] == 200 and figs["bars"]["layout"]["title"]["text"] == "bars"


def test_figure_helpers() -> None:
    lay = chart_layout("t", xaxis={"type": "category"})
    assert lay["xaxis"] == {"gridcolor": "#eef0f3", "automargin": True, "type": "category"}  # merged
    assert lay["yaxis"]["gridcolor"] == "#eef0f3"
    assert bin_centres([0.0, 1.0, 3.0]) == [0.5, 2.0]
    assert [format_number(v) for v in (None, float("inf"), True, 1234, 1234.0, 1234.5, 0.5, 1e-6, "x" * 60)] == [
        "—", "—", "True", "1,234", "1,234", "1,234.5", "0.5", "1.000e-06", "x" * 47 + "…"]


def test_write_atomic_writes_and_makes_folders(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "report.html"
    assert write_atomic(out, b"one") == str(out)
    assert write_atomic(out, b"two") == str(out)
    assert out.read_bytes() == b"two"
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]


def test_write_atomic_leaves_no_temp_file_and_the_old_file_on_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.html"
    out.write_bytes(b"old")

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("loopml._report.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(out, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no .report.html.tmp-*
    assert out.read_bytes() == b"old"


def test_write_atomic_onto_a_folder_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "report.html").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "report.html", b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
