"""The data-quality HTML report: violations, drift scores, and baseline vs current distributions.

One self-contained, offline page on the shared report shell
(:mod:`loopml._report`); figures are built from the two statistics.json
documents (numbers: shares per bucket read off the quantile sketches over one
common range; categories: shares of the most frequent values).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from loopml._report import COLORS, bin_centres, chart_layout, figure, render_page, shorten
from loopml.monitor.constraints import ALL_METHODS
from loopml.monitor.drift import align_counts, sketch_cdf
from loopml.monitor.statistics import category_counts, common, feature_map, sketch_of

_BASE, _CUR = COLORS[0], COLORS[1]
_BUCKETS = 30
_TOP = 20

TEMPLATE = r"""{% extends "report_shell.html" %}
{% block style %}
.bad { color:var(--bad); font-weight:600; } .good { color:var(--good); }
.primary { font-weight:600; }
td.flag { white-space:nowrap; }
.feature { border-top:1px solid var(--line); padding-top:8px; margin-top:8px; }
.feature h3 { margin:4px 0; }
{% endblock %}
{% block subtitle %}{{ sub.target }} against baseline {{ sub.baseline }}
  {%- if sub.since or sub.until %} · window {{ sub.since or "…" }} → {{ sub.until or "…" }}{% endif %}
  · {{ rows|n }} rows{% endblock %}
{% block nav %}<a href="#summary">Summary</a><a href="#violations">Violations</a><a href="#drift">Drift</a><a href="#features">Features</a>{% endblock %}
{% block main %}
<section id="summary">
  <h2>Summary</h2>
  <div class="cards">
    <div class="card"><div class="v">{{ rows|n }}</div><div class="k">rows checked</div></div>
    <div class="card"><div class="v">{{ base_rows|n }}</div><div class="k">baseline rows</div></div>
    <div class="card"><div class="v">{{ n_features|n }}</div><div class="k">features</div></div>
    <div class="card"><div class="v {{ 'bad' if violations else 'good' }}">{{ violations|length }}</div><div class="k">violations</div></div>
    <div class="card"><div class="v {{ 'bad' if drift.dataset_drift else '' }}">{{ drift.drifted_features|length }} / {{ drift.compared_features }}</div><div class="k">features drifted</div></div>
    <div class="card"><div class="v {{ 'bad' if drift.dataset_drift else 'good' }}">{{ (100 * drift.drift_share)|round(1) }}%</div><div class="k">drift share (dataset drift at {{ (100 * drift.dataset_drift_share_threshold)|round(1) }}%)</div></div>
  </div>
</section>
<section id="violations">
  <h2>Violations</h2>
  {% if violations %}
  <div class="scroll"><table>
    <tr><th>feature</th><th>check</th><th>description</th></tr>
    {% for v in violations %}<tr><td><a href="#feature-{{ v.feature_name }}">{{ v.feature_name }}</a></td><td>{{ v.constraint_check_type }}</td><td>{{ v.description }}</td></tr>{% endfor %}
  </table></div>
  {% else %}<p class="good">No violations: every constraint holds.</p>{% endif %}
</section>
<section id="drift">
  <h2>Drift scores</h2>
  <p class="note">Each cell: the distance, and ✗ when it exceeds its threshold ({{ comparison }} comparison{% if comparison == "Robust" %}: the larger of the threshold and the noise bound for these sample sizes{% endif %}). Bold methods decide the feature's verdict.</p>
  <div class="scroll"><table>
    <tr><th>feature</th><th>type</th><th>verdict</th>{% for m in methods %}<th class="num">{{ m }}</th>{% endfor %}</tr>
    {% for name, d in drift.features.items() %}<tr>
      <td><a href="#feature-{{ name }}">{{ name }}</a></td><td>{{ d.kind }}</td>
      <td class="flag">{% if not d.compared %}<span class="muted">{{ d.reason }}</span>{% elif d.drift %}<span class="bad">drift</span>{% else %}<span class="good">no drift</span>{% endif %}</td>
      {% for m in methods %}{% set s = d.methods[m] if d.methods and m in d.methods else none %}
      <td class="num{% if s and m in d.primary_methods %} primary{% endif %}" {% if s %}title="threshold {{ s.threshold|n }}{% if s.critical is not none %}, noise bound {{ s.critical|n }}{% endif %}{% if s.p_value is not none %}, p-value {{ s.p_value|n }}{% endif %}"{% endif %}>{% if s %}{{ s.distance|n }}{% if s.drift %} <span class="bad">✗</span>{% endif %}{% else %}<span class="muted">—</span>{% endif %}</td>
      {% endfor %}</tr>{% endfor %}
  </table></div>
</section>
<section id="features">
  <h2>Features: baseline vs current</h2>
  {% for f in features %}<div class="feature" id="feature-{{ f.name }}">
    <h3>{{ f.name }} <span class="muted">{{ f.type }} · completeness {{ f.base_complete|pct }} → {{ f.cur_complete|pct }}</span>
      {% if f.flags %}<span class="bad">· {{ f.flags|join(", ") }}</span>{% endif %}</h3>
    {% if f.fig %}<div class="chart" data-fig="{{ f.fig }}"></div>{% else %}<p class="muted">No distribution to show.</p>{% endif %}
  </div>{% endfor %}
</section>
{% endblock %}
"""


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * float(v):.1f}%"


def _numeric_figure(name: str, bf: Mapping[str, Any], cf: Mapping[str, Any]) -> dict[str, Any] | None:
    sb, sc = sketch_of(bf), sketch_of(cf)
    if sb is None:
        return None
    lo, hi = float(sb[0][0]), float(sb[0][-1])
    if sc is not None:
        lo, hi = min(lo, float(sc[0][0])), max(hi, float(sc[0][-1]))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, _BUCKETS + 1)
    traces = []
    for label, sk, color in (("baseline", sb, _BASE), ("current", sc, _CUR)):
        if sk is None:
            continue
        cdf = sketch_cdf(sk[0], edges)
        cdf[0], cdf[-1] = sketch_cdf(sk[0], edges[:1], left=True)[0], 1.0
        shares = np.clip(np.diff(cdf), 0.0, 1.0)
        traces.append({"type": "bar", "name": label, "x": bin_centres(edges.tolist()), "y": shares.round(5).tolist(),
                       "width": float(edges[1] - edges[0]), "marker": {"color": color}, "opacity": 0.6,
                       "hovertemplate": "%{x:.4g}: %{y:.2%}<extra>" + label + "</extra>"})
    return figure(traces, chart_layout(f"{shorten(name, 60)}: share of values", barmode="overlay", bargap=0.02,
                                       yaxis={"tickformat": ".0%"}, legend={"orientation": "h", "y": 1.12}))


def _categorical_figure(name: str, bf: Mapping[str, Any], cf: Mapping[str, Any]) -> dict[str, Any] | None:
    bc, cc = category_counts(bf), category_counts(cf) or {}
    if not bc:
        return None
    cats, b, c = align_counts(bc, cc)
    p = b / b.sum() if b.sum() else b
    q = c / c.sum() if c.sum() else c
    order = np.argsort(-np.maximum(p, q), kind="stable")
    top = order[:_TOP]
    rest = order[_TOP:]
    labels = [shorten(cats[i], 30) for i in top]
    pb, pc = p[top].tolist(), q[top].tolist()
    if len(rest):
        labels.append(f"{len(rest)} others")
        pb.append(float(p[rest].sum()))
        pc.append(float(q[rest].sum()))
    traces = [{"type": "bar", "name": label, "x": labels, "y": [round(v, 5) for v in vals], "marker": {"color": color},
               "hovertemplate": "%{x}: %{y:.2%}<extra>" + label + "</extra>"}
              for label, vals, color in (("baseline", pb, _BASE), ("current", pc, _CUR))]
    return figure(traces, chart_layout(f"{shorten(name, 60)}: share of values", barmode="group",
                                       yaxis={"tickformat": ".0%"}, legend={"orientation": "h", "y": 1.12}))


def render_report(
    baseline_statistics: Mapping[str, Any],
    constraints: Mapping[str, Any],
    current_statistics: Mapping[str, Any],
    violations_doc: Mapping[str, Any],
    *,
    title: str = "Data quality",
    subtitle: Mapping[str, Any] | None = None,
) -> str:
    """The HTML report of one data-quality run.

    Parameters
    ----------
    baseline_statistics, constraints, current_statistics
        The baseline's statistics.json and constraints.json, and the current data's statistics.json.
    violations_doc
        The run's constraint_violations.json (with its ``drift`` block).
    title
        The page title.
    subtitle
        ``target``, ``baseline``, ``since``, ``until`` shown under the title.
    """
    base = feature_map(baseline_statistics)
    cur = feature_map(current_statistics)
    n_cur = int(current_statistics.get("dataset", {}).get("item_count") or 0)
    n_base = int(baseline_statistics.get("dataset", {}).get("item_count") or 0)
    flags: dict[str, list[str]] = {}
    for v in violations_doc.get("violations", []):
        flags.setdefault(v["feature_name"], []).append(v["constraint_check_type"])
    figs: dict[str, Any] = {}
    features = []
    for i, c in enumerate(constraints["features"]):
        name = c["name"]
        bf, cf = base.get(name, {}), cur.get(name, {})
        fig = None
        if bf and cf:
            fig = (_numeric_figure(name, bf, cf) if "numerical_statistics" in bf
                   else _categorical_figure(name, bf, cf) if "string_statistics" in bf else None)
        key = f"f{i}"
        if fig is not None:
            figs[key] = fig
        features.append({
            "name": name, "type": c["inferred_type"], "fig": key if fig is not None else None,
            "base_complete": common(bf)["num_present"] / n_base if bf and n_base else c.get("completeness"),
            "cur_complete": common(cf)["num_present"] / n_cur if cf and n_cur else None,
            "flags": flags.get(name, []),
        })
    sub = dict(subtitle or {})
    for k in ("since", "until"):
        if isinstance(sub.get(k), datetime):
            sub[k] = sub[k].strftime("%Y-%m-%d %H:%M:%S")
    comparison = constraints["monitoring_config"]["distribution_constraints"].get("comparison_method", "Robust")
    return render_page(
        TEMPLATE, title=title, source=str(sub.get("target") or ""), figs=figs, filters={"pct": _pct},
        sub=sub, rows=n_cur, base_rows=n_base, n_features=len(constraints["features"]),
        violations=list(violations_doc.get("violations", [])), drift=violations_doc.get("drift", {}),
        methods=list(ALL_METHODS), comparison=comparison, features=features,
    )


__all__ = ["render_report"]
