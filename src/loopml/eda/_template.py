"""The Jinja2 page of the EDA report (kept in Python so it ships with the package).

It extends the shared report shell (:mod:`loopml._report`): the CSS here is
what only this page needs.
"""

from __future__ import annotations

TEMPLATE = r"""{% extends "report_shell.html" %}
{% block style %}
nav a .count { background:var(--warnbg); color:var(--warn); border-radius:9px; padding:0 6px; font-size:12px; margin-left:3px; }
th { position:sticky; top:0; }
.badge { display:inline-block; border-radius:4px; padding:0 6px; font-size:11px; font-weight:600; margin:1px 2px; white-space:nowrap; }
.badge.warning { background:var(--warnbg); color:var(--warn); }
.badge.info { background:var(--infobg); color:var(--info); }
.badge.kind { background:#e5e7eb; color:#374151; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(440px,1fr)); gap:14px; }
.col { border:1px solid var(--line); border-radius:6px; padding:10px 12px; }
.col h3 { margin:0 0 6px; font-size:15px; word-break:break-all; }
.kv { display:grid; grid-template-columns:repeat(3,1fr); gap:0 14px; font-size:12.5px; margin-top:4px; }
.kv div { display:flex; justify-content:space-between; gap:6px; border-bottom:1px solid var(--line); padding:2px 0; }
.kv span { color:var(--muted); white-space:nowrap; }
.kv b { font-weight:500; font-variant-numeric:tabular-nums; text-align:right; word-break:break-all; }
table.top { margin-top:8px; }
table.top td { padding:2px 6px; }
.col .chart { height:200px; }
.chart.tall { height:420px; }
.chart.heat { height:460px; }
.ok { color:var(--good); }
@media (max-width:900px) { .kv { grid-template-columns:repeat(2,1fr); } }
{% endblock %}
{% block subtitle %}{% if source %}{{ source }} · {% endif %}{{ ov.rows|n }} rows × {{ ov.columns|n }} columns
    {%- if ov.target %} · target <b>{{ ov.target }}</b>{% endif %}
    · {% if ov.sample.sampled %}correlations, anomaly scores and target plots on a seeded sample of {{ ov.sample.rows|n }} rows (seed {{ ov.sample.seed }}); counts, statistics and histograms are exact{% else %}every figure computed on all rows{% endif %}{% endblock %}
{% block nav %}
  <a href="#warnings">Warnings<span class="count">{{ n_warn }}</span></a>
  <a href="#overview">Overview</a><a href="#columns">Columns</a><a href="#missing">Missing values</a>
  <a href="#outliers">Outliers</a><a href="#correlations">Correlations</a><a href="#target">Target</a>
  <a href="#duplicates">Duplicates &amp; quality</a>
{% endblock %}
{% block main %}

<section id="warnings">
  <h2>Warnings <span class="muted">({{ n_warn }} warning{{ "s" if n_warn != 1 }}, {{ n_info }} note{{ "s" if n_info != 1 }})</span></h2>
  {% if p.warnings %}
  <div class="scroll"><table>
    <tr><th>severity</th><th>kind</th><th>message</th></tr>
    {% for w in p.warnings %}
    <tr><td><span class="badge {{ w.severity }}">{{ w.severity }}</span></td><td>{{ w.kind|replace("_", " ") }}</td><td>{{ w.message }}</td></tr>
    {% endfor %}
  </table></div>
  {% else %}<p class="ok">No warnings: no constant, ID-like or mostly-missing columns, no duplicates.</p>{% endif %}
</section>

<section id="overview">
  <h2>Overview</h2>
  <div class="cards">
    <div class="card"><div class="v">{{ ov.rows|n }}</div><div class="k">rows</div></div>
    <div class="card"><div class="v">{{ ov.columns|n }}</div><div class="k">columns</div></div>
    <div class="card"><div class="v">{{ ov.missing_cells_pct|pct }}</div><div class="k">missing cells ({{ ov.missing_cells|n }})</div></div>
    <div class="card"><div class="v">{{ ov.duplicate_rows|n }}</div><div class="k">duplicate rows</div></div>
    <div class="card"><div class="v">{{ (ov.memory_bytes / 1048576)|n }} MiB</div><div class="k">in memory (Arrow)</div></div>
    {% for k, v in ov.kinds.items() if v %}<div class="card"><div class="v">{{ v }}</div><div class="k">{{ k }}</div></div>{% endfor %}
  </div>
  <div class="scroll"><table>
    <tr><th>column</th><th>kind</th><th>type</th><th class="num">missing</th><th class="num">distinct</th><th class="num">mean / top value</th><th class="num">min</th><th class="num">max</th><th>flags</th></tr>
    {% for c in p.columns %}
    <tr><td><a href="#col-{{ loop.index }}">{{ c.name }}</a></td><td>{{ c.kind }}</td><td class="muted">{{ c.type }}</td>
      <td class="num">{{ c.missing_pct|pct }}</td><td class="num">{{ c.distinct|n }}</td>
      <td class="num">{% if c.kind == "numeric" %}{{ c.stats.mean|n }}{% elif c.top %}{{ c.top[0].value|short }}{% endif %}</td>
      <td class="num">{{ c.stats.min|n }}</td><td class="num">{{ c.stats.max|n }}</td>
      <td>{% for f in c.flags %}<span class="badge {{ 'warning' if f in warn_flags else 'info' }}">{{ f|replace("_", " ") }}</span>{% endfor %}</td></tr>
    {% endfor %}
  </table></div>
</section>

<section id="columns">
  <h2>Columns</h2>
  <div class="grid">
  {% for c in p.columns %}
    <div class="col" id="col-{{ loop.index }}">
      <h3>{{ c.name }} <span class="badge kind">{{ c.kind }}</span> <span class="muted" style="font-weight:400;font-size:12px">{{ c.type }}</span>
        {% for f in c.flags %}<span class="badge {{ 'warning' if f in warn_flags else 'info' }}">{{ f|replace("_", " ") }}</span>{% endfor %}</h3>
      {% if chart_of[c.name] %}<div class="chart" data-fig="{{ chart_of[c.name] }}"></div>{% endif %}
      <div class="kv">
        <div><span>count</span><b>{{ c.count|n }}</b></div>
        <div><span>missing</span><b>{{ c.missing|n }} ({{ c.missing_pct|pct }})</b></div>
        <div><span>distinct</span><b>{{ c.distinct|n }}{% if c.distinct_pct is not none %} ({{ c.distinct_pct|pct }}){% endif %}</b></div>
        {% for k, label in stat_rows[c.kind] %}{% if c.stats[k] is defined and c.stats[k] is not none and not (k in hide_zero and not c.stats[k]) %}
        <div><span>{{ label }}</span><b>{{ c.stats[k]|n }}{% if k + "_pct" in c.stats %} ({{ c.stats[k + "_pct"]|pct }}){% endif %}</b></div>{% endif %}{% endfor %}
        {% if c.kind == "datetime" and c.time %}<div><span>{{ c.time.grain }}s</span><b>{{ c.time.labels|length }} ({{ c.time.empty_buckets|n }} empty)</b></div>{% endif %}
      </div>
      {% if c.top and (c.kind in ("categorical", "boolean") or (c.kind == "numeric" and c.distinct and c.distinct <= 20)) %}
      <table class="top"><tr><th>top values</th><th class="num">count</th><th class="num">%</th></tr>
        {% for t in c.top[:5] %}<tr><td>{{ t.value|short }}</td><td class="num">{{ t.count|n }}</td><td class="num">{{ t.pct|pct }}</td></tr>{% endfor %}
      </table>{% endif %}
    </div>
  {% endfor %}
  </div>
</section>

<section id="missing">
  <h2>Missing values</h2>
  {% set m = p.missing %}
  <div class="cards">
    <div class="card"><div class="v">{{ m.cells|n }}</div><div class="k">missing cells ({{ m.cells_pct|pct }})</div></div>
    <div class="card"><div class="v">{{ m.rows_with_missing|n }}</div><div class="k">rows with a missing value ({{ m.rows_with_missing_pct|pct }})</div></div>
    <div class="card"><div class="v">{{ m.complete_rows|n }}</div><div class="k">complete rows</div></div>
    <div class="card"><div class="v">{{ m.distinct_patterns|n }}</div><div class="k">missing-value patterns</div></div>
  </div>
  {% if m.columns %}
  <div class="pair">
    <div class="chart tall" data-fig="missing_rates"></div>
    {% if figs.nullity %}<div class="chart tall" data-fig="nullity"></div>{% else %}<p class="note">One column has missing values: no co-missing analysis.</p>{% endif %}
  </div>
  <h3>Most common patterns <span class="muted">(columns missing together in the same rows; exact)</span></h3>
  <table><tr><th>missing columns</th><th class="num">rows</th><th class="num">% of rows</th></tr>
    {% for pt in m.patterns %}<tr><td>{{ pt.columns|join(", ") }}</td><td class="num">{{ pt.count|n }}</td><td class="num">{{ pt.pct|pct }}</td></tr>{% endfor %}
  </table>
  {% if m.pairs %}
  <h3>Columns missing together</h3>
  <table><tr><th>column a</th><th>column b</th><th class="num">rows missing both</th><th class="num">overlap (Jaccard)</th><th class="num">nullity correlation</th></tr>
    {% for pr in m.pairs %}<tr><td>{{ pr.a }}</td><td>{{ pr.b }}</td><td class="num">{{ pr.both|n }}</td><td class="num">{{ pr.jaccard|n }}</td><td class="num">{{ pr.phi|n }}</td></tr>{% endfor %}
  </table>{% endif %}
  {% else %}<p class="ok">No missing values.</p>{% endif %}
</section>

<section id="outliers">
  <h2>Outliers</h2>
  {% set o = p.outliers %}
  {% if o.columns %}
  <p class="note">IQR: below Q1 − {{ o.iqr_k }}·IQR or above Q3 + {{ o.iqr_k }}·IQR. z-score: |x − mean| &gt; {{ o.z_threshold }}·std. Counts are exact; the examples are the most extreme rows outside the IQR fences.</p>
  <div class="chart" data-fig="outlier_rates"></div>
  <div class="scroll"><table>
    <tr><th>column</th><th class="num">low fence</th><th class="num">high fence</th><th class="num">IQR outliers</th><th class="num">z-score outliers</th><th>example rows (row: value)</th></tr>
    {% for r in o.columns %}<tr><td>{{ r.column }}</td><td class="num">{{ r.low|n }}</td><td class="num">{{ r.high|n }}</td>
      <td class="num">{{ r.iqr_count|n }} ({{ r.iqr_pct|pct }})</td><td class="num">{{ r.z_count|n }}{% if r.z_pct is not none %} ({{ r.z_pct|pct }}){% endif %}</td>
      <td>{% for e in r.examples %}<a href="#row-{{ e }}">#{{ e }}</a>: {{ rows[e|string][r.column]|n }}{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}
  </table></div>
  {% else %}<p class="muted">No numeric columns.</p>{% endif %}
  <h3>Multivariate: IsolationForest anomaly score</h3>
  {% set f = o.isolation_forest %}
  {% if f %}
  <p class="note">Score between 0 and 1 (higher is stranger), over {{ f.rows_scored|n }} rows and {{ f.features|length }} numeric features (missing values imputed by the median). {{ f.anomalous|n }} rows ({{ f.anomalous_pct|pct }}) score above {{ f.threshold }}; median {{ f.quantiles.median|n }}, 99th percentile {{ f.quantiles.p99|n }}.</p>
  <div class="pair"><div class="chart" data-fig="iforest"></div>
  <div><table><tr><th>row</th><th class="num">score</th></tr>
    {% for t in f.top %}<tr><td><a href="#row-{{ t.row }}">#{{ t.row }}</a></td><td class="num">{{ t.score|n }}</td></tr>{% endfor %}</table></div></div>
  {% else %}<p class="muted">Not computed: no usable numeric columns.</p>{% endif %}
  {% if row_list %}
  <h3>Example rows</h3>
  <div class="scroll"><table>
    <tr><th>row</th>{% for c in p.columns %}<th>{{ c.name }}</th>{% endfor %}</tr>
    {% for r, rec in row_list %}<tr id="row-{{ r }}"><td>#{{ r }}</td>{% for c in p.columns %}<td>{{ rec[c.name]|n }}</td>{% endfor %}</tr>{% endfor %}
  </table></div>{% endif %}
</section>

<section id="correlations">
  <h2>Correlations</h2>
  {% set cr = p.correlations %}
  <p class="note">Computed on {{ ov.sample.rows|n }} rows{% if ov.sample.sampled %} (seeded sample){% endif %}, pairwise-complete. Spearman is Pearson on ranks. Cramér's V (0..1) for text/boolean pairs, the correlation ratio η (0..1) for a category against a number. ID-like, constant and empty columns are left out.</p>
  {% if figs.pearson %}<div class="pair"><div class="chart heat" data-fig="pearson"></div><div class="chart heat" data-fig="spearman"></div></div>{% endif %}
  {% if figs.cramers_v or figs.correlation_ratio %}<div class="pair">{% if figs.cramers_v %}<div class="chart heat" data-fig="cramers_v"></div>{% endif %}{% if figs.correlation_ratio %}<div class="chart heat" data-fig="correlation_ratio"></div>{% endif %}</div>{% endif %}
  {% if cr.top_pairs %}
  <h3>Most associated pairs</h3>
  <table><tr><th>column a</th><th>column b</th><th>measure</th><th class="num">value</th></tr>
    {% for pr in cr.top_pairs %}<tr><td>{{ pr.a }}</td><td>{{ pr.b }}</td><td>{{ pr.method|method }}</td><td class="num">{{ pr.value|n }}</td></tr>{% endfor %}
  </table>{% else %}<p class="muted">Fewer than two usable columns: no correlations.</p>{% endif %}
</section>

<section id="target">
  <h2>Target{% if t %}: {{ t.column }} <span class="muted">({{ t.task }})</span>{% endif %}</h2>
  {% if t %}
  <div class="pair">
    <div class="chart" data-fig="target_dist"></div>
    <div>
      {% if t.task == "classification" %}
      <table><tr><th>class</th><th class="num">rows</th><th class="num">%</th></tr>
        {% for k in t.classes[:15] %}<tr><td>{{ k.value|short }}</td><td class="num">{{ k.count|n }}</td><td class="num">{{ k.pct|pct }}</td></tr>{% endfor %}
      </table>
      {% if t.imbalance_ratio %}<p class="note">Majority / minority ratio {{ t.imbalance_ratio|n }} : 1. Class counts are exact.</p>{% endif %}
      {% else %}
      <table>{% for k, v in t.stats.items() %}<tr><td>{{ k }}</td><td class="num">{{ v|n }}</td></tr>{% endfor %}</table>
      {% endif %}
      {% if t.missing %}<p class="note">{{ t.missing|n }} rows without a target are left out of the associations.</p>{% endif %}
    </div>
  </div>
  <h3>Association of each feature with the target</h3>
  <div class="pair"><div class="chart tall" data-fig="target_assoc"></div>
  <div class="scroll"><table><tr><th>feature</th><th>measure</th><th class="num">value</th></tr>
    {% for a in t.associations %}<tr><td>{{ a.feature }}</td><td>{{ a.method|method }}</td><td class="num">{{ a.value|n }}</td></tr>{% endfor %}
  </table></div></div>
  {% if t.plots %}<h3>Strongest features against the target</h3>
  <div class="grid">{% for pl in t.plots %}<div class="chart" data-fig="target_plot_{{ loop.index0 }}"></div>{% endfor %}</div>{% endif %}
  {% else %}<p class="muted">No target given. Pass <code>--target COLUMN</code> (or <code>target=</code>) for class balance or the target distribution and each feature's association with it.</p>{% endif %}
</section>

<section id="duplicates">
  <h2>Duplicates and column quality</h2>
  {% set d = p.duplicates %}
  <div class="cards">
    <div class="card"><div class="v">{{ d.rows|n }}</div><div class="k">duplicate rows ({{ d.pct|pct }})</div></div>
    <div class="card"><div class="v">{{ d.groups|n }}</div><div class="k">groups of identical rows</div></div>
  </div>
  {% if d.note %}<p class="note">{{ d.note }}</p>{% endif %}
  {% if d.examples %}
  <h3>Most repeated rows</h3>
  <div class="scroll"><table>
    <tr><th>copies</th>{% for c in p.columns %}<th>{{ c.name }}</th>{% endfor %}</tr>
    {% for e in d.examples %}<tr><td>{{ e.copies }} × (first #{{ e.row }})</td>{% for c in p.columns %}<td>{{ rows[e.row|string][c.name]|n }}</td>{% endfor %}</tr>{% endfor %}
  </table></div>{% endif %}
  <h3>Columns to look at</h3>
  <table><tr><th>check</th><th>columns</th></tr>
    {% for label, f in quality %}<tr><td>{{ label }}</td><td>{% for c in p.columns if f in c.flags %}{{ c.name }}{% if not loop.last %}, {% endif %}{% else %}<span class="muted">none</span>{% endfor %}</td></tr>{% endfor %}
  </table>
</section>

{% endblock %}
"""
