"""The shared shell of loopml's self-contained, offline HTML reports (EDA, evaluation, monitoring).

A stage's report is a Jinja2 page that extends the shell and fills its blocks;
:func:`render_page` renders it. The shell holds what every report has: the
page chrome and its CSS, the figures stored once as JSON, the plotly.js
bundle embedded inline exactly once (no CDN: the file works offline) and the
script that draws the charts lazily (charts in view first, the rest in the
background, all of them before printing).

A page template::

    {% extends "report_shell.html" %}
    {% block style %}.extra { color:var(--muted); }{% endblock %}
    {% block subtitle %}{{ rows|n }} rows{% endblock %}
    {% block nav %}<a href="#summary">Summary</a>{% endblock %}
    {% block main %}<section id="summary"><div class="chart" data-fig="sizes"></div></section>{% endblock %}

Each ``<div data-fig="KEY">`` is drawn from ``figs[KEY]``, a plain plotly.js
figure spec built with :func:`figure` and :func:`chart_layout`.

This is a base module: it imports only the standard library, jinja2 and
plotly (both lazily, when a page is rendered), so every stage may use it.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.store.lineage import EntityRef, Lineage

#: lineage relation from a stored result to its HTML report
RENDERED_AS = "rendered_as"

#: The name page templates extend: ``{% extends "report_shell.html" %}``.
SHELL_NAME = "report_shell.html"

#: Trace colours, in order (blue, orange, green, red, ...).
COLORS = ["#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#84cc16",
          "#6366f1", "#f97316"]
#: Light grey for reference lines (diagonals, thresholds).
GREY = "#9ca3af"
#: White to dark blue, for heatmaps of values in [0, max].
SEQUENTIAL = [[0.0, "#f7fbff"], [0.5, "#6baed6"], [1.0, "#08306b"]]

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 50, "r": 16, "t": 34, "b": 40},
    "font": {"size": 11},
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
    "bargap": 0.05,
    "xaxis": {"gridcolor": "#eef0f3", "automargin": True},
    "yaxis": {"gridcolor": "#eef0f3", "automargin": True},
}
_JSON = {"sort_keys": False, "allow_nan": False, "separators": (",", ":")}

SHELL = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="loopml {{ version }}">
<title>{{ title }}{% if source %} · {{ source }}{% endif %}</title>
<style>
:root { --fg:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --accent:#2563eb;
        --warn:#b45309; --warnbg:#fef3c7; --info:#1e40af; --infobg:#dbeafe; --good:#047857; --bad:#b91c1c; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--fg); background:var(--bg); }
header { background:#111827; color:#f9fafb; padding:18px 28px; }
header h1 { margin:0 0 4px; font-size:22px; font-weight:600; }
header .sub { color:#cbd2d9; font-size:13px; }
nav { position:sticky; top:0; z-index:10; background:#fff; border-bottom:1px solid var(--line); padding:8px 28px; }
nav a { margin-right:16px; color:var(--accent); text-decoration:none; font-weight:500; }
main { padding:8px 28px 40px; max-width:1400px; }
section { background:#fff; border:1px solid var(--line); border-radius:8px; padding:16px 20px; margin:18px 0; }
section > h2 { margin:0 0 12px; font-size:18px; }
h3 { font-size:15px; margin:18px 0 8px; }
.muted { color:var(--muted); }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-bottom:12px; }
.card { border:1px solid var(--line); border-radius:6px; padding:8px 14px; min-width:130px; }
.card .v { font-size:20px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .k { color:var(--muted); font-size:12px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f9fafb; font-weight:600; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
.scroll { overflow:auto; max-height:420px; border:1px solid var(--line); border-radius:6px; }
.chart { width:100%; height:240px; }
.note { font-size:12px; color:var(--muted); margin:6px 0; }
.pair { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
@media (max-width:900px) { .pair { grid-template-columns:1fr; } }
{% block style %}{% endblock %}
</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <div class="sub">{% block subtitle %}{% endblock %}</div>
</header>
<nav>
{% block nav %}{% endblock %}
</nav>
<main>
{% block main %}{% endblock %}
</main>
<script type="application/json" id="loopml-figures">{{ figs|tojson }}</script>
<script>{{ plotly_js|safe }}</script>
<script>
(function () {
  var figs = JSON.parse(document.getElementById("loopml-figures").textContent);
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  var pending = Array.prototype.slice.call(document.querySelectorAll("[data-fig]"));
  function draw(el) {
    if (el.dataset.drawn) return;
    el.dataset.drawn = "1";
    var f = figs[el.dataset.fig];
    if (f) Plotly.newPlot(el, f.data, f.layout, config);
  }
  // Charts in view are drawn first, the rest one at a time in the background,
  // so a report with hundreds of charts opens at once.
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { io.unobserve(e.target); draw(e.target); } });
    }, {rootMargin: "300px"});
    pending.forEach(function (el) { io.observe(el); });
  }
  var i = 0;
  (function next() {
    while (i < pending.length && pending[i].dataset.drawn) i++;
    if (i < pending.length) { draw(pending[i]); setTimeout(next, 15); }
  })();
  window.addEventListener("beforeprint", function () { pending.forEach(draw); });
})();
</script>
</body>
</html>
"""


# -- figures ---------------------------------------------------------------------------------
def chart_layout(title: str, **extra: Any) -> dict[str, Any]:
    """A plotly layout in the reports' style, titled ``title``.

    ``extra`` keys are plotly layout keys; ``xaxis`` and ``yaxis`` are merged
    into the default axes rather than replacing them.
    """
    out = {**_LAYOUT, "title": {"text": title, "font": {"size": 13}, "x": 0.01}, **extra}
    for axis in ("xaxis", "yaxis"):
        if axis in extra:
            out[axis] = {**_LAYOUT[axis], **extra[axis]}
    return out


def figure(data: list[dict[str, Any]], layout: dict[str, Any]) -> dict[str, Any]:
    """A plotly.js figure spec (``{"data": traces, "layout": layout}``), JSON-ready for ``figs``."""
    return {"data": data, "layout": layout}


def bin_centres(edges: Iterable[float]) -> list[float]:
    """The centres of histogram bins given their ``n + 1`` edges."""
    return [(a + b) / 2 for a, b in pairwise(edges)]


# -- formatting ------------------------------------------------------------------------------
def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when it was longer."""
    return text if len(text) <= width else text[:width - 1] + "…"


def format_number(v: Any) -> str:
    """A number for people: thousands separators, 4 significant digits, ``—`` for None and NaN.

    Anything that is not a number is shown as text, cut to 48 characters.

    Examples
    --------
    >>> [format_number(v) for v in (1234567, 0.000012345, 3.14159, None, float("nan"), 2500.0)]
    ['1,234,567', '1.234e-05', '3.142', '—', '—', '2,500']
    """
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "—"
        a = abs(v)
        if v == 0 or (a >= 1000 and a < 1e15 and v.is_integer()):
            return f"{v:,.0f}"
        if a >= 1e15 or a < 1e-4:
            return f"{v:.3e}"
        if a >= 1000:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    return shorten(str(v), 48)


# -- rendering -------------------------------------------------------------------------------
def render_page(
    template: str,
    *,
    title: str,
    figs: Mapping[str, Any],
    source: str = "",
    filters: Mapping[str, Callable[..., Any]] | None = None,
    **context: Any,
) -> str:
    """Render a page template that extends the shell into one self-contained HTML document.

    Parameters
    ----------
    template
        Jinja2 source starting with ``{% extends "report_shell.html" %}`` and
        filling the blocks ``style`` (extra CSS), ``subtitle``, ``nav`` and ``main``.
    title
        The page and header title.
    figs
        Figure specs by key, drawn into the page's ``data-fig="KEY"`` elements.
    source
        What the report is about (a dataset version), shown in the browser tab.
    filters
        Extra Jinja2 filters; ``n`` (:func:`format_number`) is always there.
    context
        Further template variables.

    Returns
    -------
    str
        The HTML text, autoescaped, with plotly.js inline once.
    """
    import jinja2
    from plotly.offline import get_plotlyjs

    from loopml import __version__

    env = jinja2.Environment(loader=jinja2.DictLoader({SHELL_NAME: SHELL}), autoescape=True,
                             undefined=jinja2.ChainableUndefined)
    env.filters.update({"n": format_number, **(filters or {})})
    env.policies["json.dumps_kwargs"] = _JSON
    return env.from_string(template).render(
        **context, title=title, source=source, figs=figs, version=__version__, plotly_js=get_plotlyjs(),
    )


# -- files -----------------------------------------------------------------------------------
def write_atomic(path: str | os.PathLike[str], data: bytes) -> str:
    """Write ``data`` to ``path`` atomically (a temporary file beside it, then a rename).

    Parent folders are created. On any failure the temporary file is removed
    and ``path`` is left as it was. Returns the path written, ``~`` expanded.
    """
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return str(target)


def stored_results(
    lineage: Lineage, entity: EntityRef, relation: str, kind: str, report_kind: str
) -> list[tuple[str, str | None]]:
    """``(result id, rendered report id or None)`` for each result ``entity --relation--> kind``.

    Reports are linked to their result by ``rendered_as`` edges; the latest wins.
    """
    out: list[tuple[str, str | None]] = []
    for result in lineage.targets(entity, relation, kind):
        html = lineage.targets(result, RENDERED_AS, report_kind)
        out.append((result.id, html[-1].id if html else None))
    return out
