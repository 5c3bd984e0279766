"""The Jinja2 page of the evaluation report (kept in Python so it ships with the package).

It extends the shared report shell (:mod:`loopml._report`): the CSS here is
what only this page needs.
"""

from __future__ import annotations

TEMPLATE = r"""{% extends "report_shell.html" %}
{% block style %}
.scroll { max-height:460px; }
.chart { height:360px; }
.chart.tall { height:460px; }
.warn { background:var(--warnbg); color:var(--warn); border-radius:6px; padding:6px 10px; margin:4px 0; font-size:13px; }
.pair > .scroll { align-self:start; }
.neg { color:var(--bad); } .pos { color:var(--good); }
{% endblock %}
{% block subtitle %}{% if source %}{{ source }} · {% endif %}{{ r.task }}{% if r.info.task_inferred %} (inferred){% endif %} · {{ r.n_rows|n }} rows
    {%- if r.pos_label is not none %} · positive class <b>{{ r.pos_label }}</b>{% endif %}
    {%- if r.info.decision_threshold is defined %} · scores cut at {{ r.info.decision_threshold|n }}{% endif %}{% endblock %}
{% block nav %}
  <a href="#metrics">Metrics</a><a href="#curves">Curves</a><a href="#calibration">Calibration</a>
  <a href="#confusion">Confusion matrix</a><a href="#residuals">Residuals</a><a href="#business">Business</a>
{% endblock %}
{% block main %}

<section id="metrics">
  <h2>Metrics</h2>
  {% for w in r.warnings %}<div class="warn">{{ w }}</div>{% endfor %}
  <div class="cards">
    {% for k, v in headline.items() %}<div class="card"><div class="v">{{ v|n }}</div><div class="k">{{ k|label }}</div></div>{% endfor %}
  </div>
  <div class="pair">
  <div><table>
    <tr><th>metric</th><th class="num">value</th><th>better</th></tr>
    {% for k, v in r.metrics.items() %}<tr><td>{{ k|label }}{% if k in r.custom %} <span class="muted">(custom)</span>{% endif %}</td><td class="num">{{ v|n }}</td><td class="muted">{{ direction[k] }}</td></tr>{% endfor %}
  </table></div>
  <div>
  {% if r.threshold %}{% set t = r.threshold %}
    <h3 style="margin-top:0">Decision threshold: {{ t.threshold|n }} <span class="muted">(best {{ "F1" if t.by == "f1" else "expected cost" }})</span></h3>
    <table>
      {% for k in ["precision", "recall", "f1", "accuracy", "positive_rate", "expected_cost"] if t.metrics[k] is defined %}<tr><td>{{ k|label }} at the threshold</td><td class="num">{{ t.metrics[k]|n }}</td></tr>{% endfor %}
      <tr><td>TP / FP / TN / FN</td><td class="num">{{ t.metrics.tp|n }} / {{ t.metrics.fp|n }} / {{ t.metrics.tn|n }} / {{ t.metrics.fn|n }}</td></tr>
    </table>
    <p class="note">Rows scoring at or above the threshold are predicted positive.</p>
  {% endif %}
  {% if figs.cluster_sizes %}<div class="chart" data-fig="cluster_sizes"></div>{% endif %}
  {% if r.info.queries is defined %}<p class="note">{{ r.info.queries|n }} queries; {{ r.info.queries_without_relevant|n }} without a relevant item are left out of the averages.</p>{% endif %}
  </div>
  </div>
  {% if r.per_class %}
  <h3>Per class</h3>
  <div class="scroll"><table>
    <tr><th>class</th><th class="num">precision</th><th class="num">recall</th><th class="num">F1</th><th class="num">support</th>{% if r.per_class[0].roc_auc is defined %}<th class="num">AUC-ROC (one vs rest)</th><th class="num">PR-AUC</th>{% endif %}</tr>
    {% for c in r.per_class %}<tr><td>{{ c.label }}</td><td class="num">{{ c.precision|n }}</td><td class="num">{{ c.recall|n }}</td><td class="num">{{ c.f1|n }}</td><td class="num">{{ c.support|n }}</td>{% if c.roc_auc is defined %}<td class="num">{{ c.roc_auc|n }}</td><td class="num">{{ c.pr_auc|n }}</td>{% endif %}</tr>{% endfor %}
  </table></div>{% endif %}
</section>

<section id="curves">
  <h2>Curves</h2>
  {% if figs.roc %}
  <div class="pair"><div class="chart" data-fig="roc"></div><div class="chart" data-fig="pr"></div></div>
  <p class="note">ROC: true-positive rate against false-positive rate as the threshold falls; PR: precision against recall (the dotted line is the share of positives){% if r.task == "multiclass" %}; one curve per class, one vs rest{% endif %}.</p>
  {% elif figs.at_k %}<div class="chart" data-fig="at_k"></div>
  {% else %}<p class="muted">{{ na.curves }}</p>{% endif %}
</section>

<section id="calibration">
  <h2>Calibration</h2>
  {% if figs.calibration %}
  <div class="pair"><div class="chart" data-fig="calibration"></div><div class="chart" data-fig="score_hist"></div></div>
  <p class="note">Reliability diagram: in each of 10 probability bins, the share of rows that are positive against the mean predicted probability. A calibrated model follows the diagonal. Expected calibration error {{ r.metrics.calibration_error|n }}.</p>
  {% else %}<p class="muted">{{ na.calibration }}</p>{% endif %}
</section>

<section id="confusion">
  <h2>Confusion matrix</h2>
  {% if figs.confusion %}
  <div class="pair"><div class="chart tall" data-fig="confusion"></div>
  <div class="scroll"><table>
    <tr><th>true \ predicted</th>{% for l in r.labels %}<th class="num">{{ l }}</th>{% endfor %}</tr>
    {% for row in r.confusion_matrix %}<tr><th>{{ r.labels[loop.index0] }}</th>{% for v in row %}<td class="num">{{ v|n }}</td>{% endfor %}</tr>{% endfor %}
  </table></div></div>
  {% else %}<p class="muted">{{ na.confusion }}</p>{% endif %}
</section>

<section id="residuals">
  <h2>Residuals</h2>
  {% if figs.resid_scatter %}{% set rs = r.curves.residuals %}
  <div class="pair"><div class="chart" data-fig="resid_scatter"></div><div class="chart" data-fig="resid_hist"></div></div>
  <div class="pair"><div class="chart" data-fig="pred_actual"></div>
  <div><p class="note">Residual = actual − predicted. Mean {{ rs.mean|n }}, standard deviation {{ rs.std|n }}.{% if rs.sampled %} The scatter plots show a seeded sample of {{ rs.predicted|length|n }} rows; the histogram uses every row.{% endif %}</p></div></div>
  {% else %}<p class="muted">{{ na.residuals }}</p>{% endif %}
</section>

<section id="business">
  <h2>Business</h2>
  {% set b = r.business %}
  {% if b %}
  {% for w in b.notes %}<div class="warn">{{ w }}</div>{% endfor %}
  {% if b.scenarios %}
  <p class="note">Baseline: <b>{{ b.baseline }}</b>{% if b.predictions_per_day %} · {{ b.predictions_per_day|n }} predictions per day{% endif %}{% if b.costs.users_per_day %} · {{ b.costs.users_per_day|n }} users per day{% endif %} · ROI over {{ b.costs.horizon_days|n }} days{% if b.costs.development_cost %} of a development cost of {{ b.costs.development_cost|money(cur) }}{% endif %}.</p>
  <div class="scroll"><table>
    <tr><th>{{ cur or "amount" }}</th>{% for s in b.scenarios %}<th class="num">{{ s.name }}</th>{% endfor %}</tr>
    {% if b.scenarios[0].tp is defined %}<tr><td>TP / FP / TN / FN</td>{% for s in b.scenarios %}<td class="num">{{ s.tp|n }} / {{ s.fp|n }} / {{ s.tn|n }} / {{ s.fn|n }}</td>{% endfor %}</tr>{% endif %}
    {% for key, label, kind in rows %}{% if b.scenarios|selectattr(key, "ne", none)|list %}<tr><td>{{ label }}</td>{% for s in b.scenarios %}<td class="num {{ 'neg' if kind == 'money' and s[key] is not none and s[key] < 0 and 'value' in key }}">{{ s[key]|fmt(kind) }}</td>{% endfor %}</tr>{% endif %}{% endfor %}
  </table></div>
  <p class="note">Per prediction: cost of errors = (cost_fp·FP + cost_fn·FN) / n; benefit = (benefit_tp·TP + benefit_tn·TN) / n; operating cost = price_per_prediction + price_per_compute_second × latency (a constant rule runs for free); expected cost = errors + operating; expected value = benefit − cost. Savings = a model's value − the baseline's. ROI = (savings per day × horizon − development cost) / development cost; payback = development cost / savings per day.</p>
  {% if figs.value_per_day %}<div class="chart" data-fig="value_per_day"></div>{% endif %}
  {% endif %}
  <h3>Model–business alignment</h3>
  <div class="scroll"><table>
    <tr><th>predictions</th>{% for m in align_metrics %}<th class="num">{{ m|label }}</th>{% endfor %}<th class="num">latency p50 (ms)</th><th class="num">latency p99 (ms)</th><th class="num">cost per prediction</th><th class="num">value per day</th></tr>
    {% for a in b.alignment %}<tr><td>{{ a.name }}</td>{% for m in align_metrics %}<td class="num">{{ a.metrics[m]|n }}</td>{% endfor %}<td class="num">{{ a.latency_p50_ms|n }}</td><td class="num">{{ a.latency_p99_ms|n }}</td><td class="num">{{ a.cost_per_prediction|n }}</td><td class="num">{{ a.value_per_day|n }}</td></tr>{% endfor %}
  </table></div>
  {% if b.latency %}<p class="note">Latency {{ "measured on " ~ (b.latency.rows|n) ~ " single-row predictions" if b.latency.source == "measured" else "as given" }}.</p>{% endif %}
  {% else %}<p class="muted">No costs given. Pass a costs file (<code>--costs costs.yaml</code> or <code>costs=</code>) with <code>cost_fp</code>, <code>cost_fn</code>, <code>benefit_tp</code>, <code>price_per_prediction</code>, <code>predictions_per_day</code>, <code>development_cost</code>, ... for expected cost, savings against a baseline, ROI and payback, and a latency for the model–business alignment table.</p>{% endif %}
</section>

{% endblock %}
"""
