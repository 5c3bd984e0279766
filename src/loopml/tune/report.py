"""The tuning report: one self-contained, offline HTML page of a tuning job.

The page has the job's summary and best hyperparameters, the optimization
history (each trial's objective and the best so far), the per-iteration
values that pruning decided on, a parallel-coordinates plot of the completed
trials, the hyperparameters' importance (Optuna's fANOVA evaluator,
:class:`optuna.importance.FanovaImportanceEvaluator`) and the table of every
trial. The figures are plain plotly.js specs drawn in the shared report shell
of :mod:`loopml._report` (plotly.js inline, no CDN).

>>> from loopml.tune.jobs import TrialInfo, TuningResult
>>> trials = [TrialInfo(0, "COMPLETE", 0.71, {"max_depth": 3}), TrialInfo(1, "PRUNED", None, {"max_depth": 8}),
...           TrialInfo(2, "COMPLETE", 0.74, {"max_depth": 5})]
>>> result = TuningResult("demo", "run-1", "Completed", "validation:auc", "maximize", "bayesian", "xgboost", 3,
...                       trials=trials, best_trial=trials[2])
>>> html = render_report(result, curves={1: [(5, 0.6), (10, 0.62)]}, importances={"max_depth": 1.0})
>>> all(f'id="{s}"' in html for s in ("summary", "history", "parallel", "importance", "trials"))
True
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loopml._report import COLORS, GREY, chart_layout, figure, render_page, write_atomic

if TYPE_CHECKING:
    import optuna

    from loopml.tune.jobs import TrialInfo, TuningResult
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: at most this many trials' per-iteration curves are drawn (the most recent ones)
MAX_CURVES = 300
_STATE_COLOR = {"COMPLETE": COLORS[0], "PRUNED": COLORS[1], "FAIL": COLORS[3], "RUNNING": GREY, "WAITING": GREY}

TEMPLATE = r"""{% extends "report_shell.html" %}
{% block style %}
.chart { height:380px; }
.chart.wide { height:440px; }
.state-COMPLETE { color:var(--good); } .state-PRUNED { color:var(--warn); } .state-FAIL { color:var(--bad); }
.best td { background:#ecfdf5; }
td.msg { max-width:420px; color:var(--muted); font-size:12px; }
{% endblock %}
{% block subtitle %}{{ r.algorithm }} · {{ r.strategy }} · {{ r.objective }} ({{ r.direction }})
  {%- if r.cv_folds %} · {{ r.cv_folds }}-fold cross-validation{% endif %} · {{ r.status }}{% endblock %}
{% block nav %}
  <a href="#summary">Summary</a><a href="#history">History</a>{% if figs.curves %}<a href="#curves">Iterations</a>{% endif %}
  <a href="#parallel">Parallel coordinates</a><a href="#importance">Importance</a><a href="#trials">Trials</a>
{% endblock %}
{% block main %}
<section id="summary">
  <h2>Summary</h2>
  <div class="cards">
    <div class="card"><div class="v">{{ r.best_value|n }}</div><div class="k">best {{ r.objective }}</div></div>
    <div class="card"><div class="v">{{ r.best_trial.number if r.best_trial else "—" }}</div><div class="k">best trial</div></div>
    {% for state, n in counts %}<div class="card"><div class="v">{{ n|n }}</div><div class="k">{{ state|lower }}</div></div>{% endfor %}
    <div class="card"><div class="v">{{ r.duration_s|n }}</div><div class="k">seconds</div></div>
  </div>
  {% if r.stopped_reason %}<p class="note">Stopped early: {{ r.stopped_reason }}</p>{% endif %}
  {% if r.error %}<p class="note">Error: {{ r.error }}</p>{% endif %}
  <div class="pair">
  <div>
    <h3 style="margin-top:0">Best hyperparameters</h3>
    {% if r.best_trial %}<table>
      <tr><th>hyperparameter</th><th class="num">value</th><th>searched over</th></tr>
      {% for k, v in r.best_params.items() %}<tr><td>{{ k }}</td><td class="num">{{ v|n }}</td><td class="muted">{{ ranges.get(k, "") }}</td></tr>{% endfor %}
      {% for k, v in fixed.items() %}<tr><td>{{ k }}</td><td class="num">{{ v|n }}</td><td class="muted">fixed</td></tr>{% endfor %}
    </table>{% else %}<p class="muted">No trial completed.</p>{% endif %}
  </div>
  <div>
    <h3 style="margin-top:0">Job</h3>
    <table>
      <tr><td>job</td><td>{{ r.job_id }}</td></tr>
      <tr><td>run</td><td>{{ r.run_id }}</td></tr>
      {% if r.best_run_id %}<tr><td>best trial's run</td><td>{{ r.best_run_id }}</td></tr>{% endif %}
      {% if r.model_run_id %}<tr><td>model run</td><td>{{ r.model_run_id }}</td></tr>{% endif %}
      {% if r.model_version %}<tr><td>registered as</td><td>{{ r.model_version }}</td></tr>{% endif %}
      <tr><td>trials</td><td>{{ r.trials|length }} of {{ r.max_trials }}{% if warm %} (+{{ warm }} from warm start){% endif %}</td></tr>
      <tr><td>early stopping</td><td>{{ early }}</td></tr>
    </table>
  </div>
  </div>
</section>

<section id="history">
  <h2>Optimization history</h2>
  {% if figs.history %}<div class="chart" data-fig="history"></div>
  <p class="note">Each completed trial's {{ r.objective }} by trial number, and the best so far. A pruned trial is drawn at the last value it reported before it was stopped.</p>
  {% else %}<p class="muted">No trial has a value yet.</p>{% endif %}
</section>

{% if figs.curves %}
<section id="curves">
  <h2>Per-iteration values</h2>
  <div class="chart wide" data-fig="curves"></div>
  <p class="note">The values each trial reported while it trained ({{ r.objective }}{% if r.cv_folds %}, averaged over the folds{% endif %}): what early stopping compared. Pruned trials end where they were stopped.</p>
</section>
{% endif %}

<section id="parallel">
  <h2>Parallel coordinates</h2>
  {% if figs.parallel %}<div class="chart wide" data-fig="parallel"></div>
  <p class="note">One line per completed trial through its hyperparameters and its objective, coloured by the objective{% if logged %}; {{ logged|join(", ") }} on a log10 axis{% endif %}. Drag along an axis to filter.</p>
  {% else %}<p class="muted">Needs at least two completed trials.</p>{% endif %}
</section>

<section id="importance">
  <h2>Hyperparameter importance</h2>
  {% if figs.importance %}<div class="chart" style="height:{{ figs.importance.layout.height }}px" data-fig="importance"></div>
  <p class="note">Share of the objective's variance over the completed trials explained by each hyperparameter (fANOVA: Optuna's <code>FanovaImportanceEvaluator</code>, a random forest fitted to the trials; normalised to sum to 1).</p>
  {% else %}<p class="muted">{{ importance_note }}</p>{% endif %}
</section>

<section id="trials">
  <h2>Trials</h2>
  <div class="scroll"><table>
    <tr><th class="num">trial</th><th>state</th><th class="num">{{ r.objective }}</th>{% for p in params %}<th class="num">{{ p }}</th>{% endfor %}<th class="num">seconds</th><th class="num">stopped at</th><th>run</th><th>note</th></tr>
    {% for t in trials %}<tr{% if r.best_trial and t.number == r.best_trial.number %} class="best"{% endif %}>
      <td class="num">{{ t.number }}</td><td class="state-{{ t.state }}">{{ t.state }}{% if t.warm_start_from %} (warm){% endif %}</td>
      <td class="num">{{ t.value|n if t.value is not none else ("(" ~ (t.last_value|n) ~ ")" if t.last_value is not none else "") }}</td>
      {% for p in params %}<td class="num">{{ t.params[p]|n if p in t.params else "" }}</td>{% endfor %}
      <td class="num">{{ t.duration_s|n if t.duration_s is not none else "" }}</td><td class="num">{{ t.pruned_step if t.pruned_step is not none else "" }}</td>
      <td>{{ t.run_id or "" }}</td><td class="msg">{{ t.message or "" }}</td></tr>{% endfor %}
  </table></div>
  <p class="note">A pruned trial's value in parentheses is the last it reported.</p>
</section>
{% endblock %}
"""


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


def _history(result: TuningResult) -> dict[str, Any] | None:
    trials = sorted((t for t in result.trials if t.warm_start_from is None), key=lambda t: t.number)
    done = [t for t in trials if t.state == "COMPLETE" and _finite(t.value)]
    pruned = [t for t in trials if t.state == "PRUNED" and _finite(t.last_value)]
    if not done and not pruned:
        return None
    better = max if result.direction == "maximize" else min
    best_x: list[int] = []
    best_y: list[float] = []
    best: float | None = None
    for t in done:
        assert t.value is not None
        best = t.value if best is None else better(best, t.value)
        best_x.append(t.number)
        best_y.append(best)
    data: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "markers", "name": "completed", "x": [t.number for t in done],
         "y": [t.value for t in done], "marker": {"color": COLORS[0], "size": 7},
         "hovertemplate": "trial %{x}: %{y:.5g}<extra></extra>"},
    ]
    if pruned:
        data.append({"type": "scatter", "mode": "markers", "name": "pruned (last value)",
                     "x": [t.number for t in pruned], "y": [t.last_value for t in pruned],
                     "marker": {"color": COLORS[1], "symbol": "x", "size": 7},
                     "hovertemplate": "trial %{x} pruned at %{y:.5g}<extra></extra>"})
    if best_x:
        data.append({"type": "scatter", "mode": "lines", "name": "best so far", "x": best_x, "y": best_y,
                     "line": {"color": COLORS[2], "width": 2, "shape": "hv"}, "hoverinfo": "skip"})
    return figure(data, chart_layout("Objective by trial", xaxis={"title": {"text": "trial"}},
                                     yaxis={"title": {"text": result.objective}}))


def _curves(result: TuningResult, curves: Mapping[int, Sequence[tuple[int, float]]]) -> dict[str, Any] | None:
    by_number = {t.number: t for t in result.trials}
    numbers = [n for n in sorted(curves) if curves[n] and n in by_number][-MAX_CURVES:]
    if not numbers:
        return None
    data: list[dict[str, Any]] = []
    shown: set[str] = set()
    for n in numbers:
        state = by_number[n].state
        pts = sorted(curves[n])
        data.append({"type": "scatter", "mode": "lines+markers" if len(pts) < 3 else "lines",
                     "marker": {"size": 4}, "name": state.lower(), "legendgroup": state,
                     "showlegend": state not in shown, "x": [p[0] for p in pts], "y": [p[1] for p in pts],
                     "line": {"color": _STATE_COLOR.get(state, GREY), "width": 1}, "opacity": 0.7,
                     "hovertemplate": f"trial {n}: %{{y:.5g}} at %{{x}}<extra></extra>"})
        shown.add(state)
    return figure(data, chart_layout("Reported values while training", xaxis={"title": {"text": "iteration"}},
                                     yaxis={"title": {"text": result.objective}}))


def _parallel(result: TuningResult, params: list[str], logged: set[str]) -> dict[str, Any] | None:
    done = [t for t in result.trials if t.state == "COMPLETE" and _finite(t.value)]
    if len(done) < 2 or not params:
        return None
    dims: list[dict[str, Any]] = []
    for p in params:
        vals = [t.params.get(p) for t in done]
        if all(_finite(v) for v in vals):
            nums = [float(v) for v in vals]  # type: ignore[arg-type]
            if p in logged and all(v > 0 for v in nums):
                dims.append({"label": f"{p} (log10)", "values": [math.log10(v) for v in nums]})
            else:
                dims.append({"label": p, "values": nums})
        else:
            labels = sorted({str(v) for v in vals})
            index = {v: i for i, v in enumerate(labels)}
            dims.append({"label": p, "values": [index[str(v)] for v in vals], "tickvals": list(range(len(labels))),
                         "ticktext": labels})
    values = [float(t.value) for t in done if t.value is not None]
    dims.append({"label": result.objective, "values": values})
    scale = "Viridis" if result.direction == "maximize" else "Viridis_r"
    trace = {"type": "parcoords", "dimensions": dims,
             "line": {"color": values, "colorscale": scale, "showscale": True,
                      "colorbar": {"title": {"text": result.objective.partition(":")[2]}}}}
    layout = chart_layout("", margin={"l": 70, "r": 70, "t": 50, "b": 30})
    layout.pop("title", None)  # the axis labels sit where a title would
    return figure([trace], layout)


def _importance(importances: Mapping[str, float]) -> dict[str, Any] | None:
    if not importances:
        return None
    items = sorted(importances.items(), key=lambda kv: kv[1])
    return figure([{"type": "bar", "orientation": "h", "x": [v for _, v in items], "y": [k for k, _ in items],
                    "marker": {"color": COLORS[0]}, "hovertemplate": "%{y}: %{x:.3f}<extra></extra>"}],
                  chart_layout("Importance (fANOVA)", height=max(220, 60 + 28 * len(items)),
                               xaxis={"title": {"text": "share of variance"}, "rangemode": "tozero"},
                               yaxis={"type": "category"}))


def render_report(
    result: TuningResult,
    *,
    curves: Mapping[int, Sequence[tuple[int, float]]] | None = None,
    importances: Mapping[str, float] | None = None,
    importance_note: str = "",
    title: str | None = None,
) -> str:
    """Render a tuning job as one self-contained HTML page (plotly.js inline, works offline).

    The sections have stable ids: ``summary``, ``history``, ``curves`` (when
    trials reported per-iteration values), ``parallel``, ``importance`` and ``trials``.

    Parameters
    ----------
    result
        The job (:func:`loopml.tune.get_tuning_job`).
    curves
        Trial number -> ``[(iteration, value), ...]`` reported while training.
    importances
        Hyperparameter -> importance (:func:`param_importances`).
    importance_note
        Shown instead of the importance chart when there is none (why).
    title
        Page title (default: "Tuning job JOB").

    Returns
    -------
    str
        The HTML text.
    """
    from loopml.tune.ranges import SearchSpace

    spec = result.spec
    space = SearchSpace.from_dict(spec.space) if spec is not None else None
    params: list[str] = [r.name for r in space.ranges] if space is not None else []
    for t in result.trials:
        params += [k for k in t.params if k not in params]
    logged = {r.name for r in space.ranges if getattr(r, "scaling_used", "") == "log"} if space else set()
    figs: dict[str, Any] = {}
    for key, fig in (("history", _history(result)), ("curves", _curves(result, curves or {})),
                     ("parallel", _parallel(result, params, logged)), ("importance", _importance(importances or {}))):
        if fig is not None:
            figs[key] = fig
    order = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
    counts = sorted(result.counts().items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9)
    early = "off"
    if spec is not None and spec.early_stopping:
        early = str(spec.early_stopping.get("pruner", "on"))
    trials: list[TrialInfo] = sorted(result.trials, key=lambda t: t.number)
    note = importance_note or "Needs at least two completed trials that differ in their hyperparameters."
    return render_page(
        TEMPLATE, title=title or f"Tuning job {result.job_id}", source=result.job_id, figs=figs,
        r={**result.to_dict(), "best_trial": result.best_trial, "trials": result.trials}, counts=counts,
        ranges={r.name: r.describe() for r in space.ranges} if space else {},
        fixed=dict(spec.hyperparameters) if spec is not None else {}, params=params, trials=trials,
        logged=sorted(p for p in logged if p in params), early=early, importance_note=note,
        warm=sum(1 for t in result.trials if t.warm_start_from),
    )


def param_importances(study: optuna.study.Study, *, seed: int = 0) -> dict[str, float]:
    """Each searched hyperparameter's importance over the study's completed trials (fANOVA).

    Optuna's :class:`~optuna.importance.FanovaImportanceEvaluator` (seeded, so
    a report reads the same each time), normalised to sum to 1, keyed by
    loopml's hyperparameter names.

    Raises
    ------
    ValueError, RuntimeError
        From Optuna: too few completed trials, or nothing that varies.
    """
    import optuna

    from loopml.tune.jobs import SPEC_ATTR, JobSpec
    from loopml.tune.ranges import SearchSpace

    names: dict[str, str] = {}
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is not None:
        names = {r.optuna_name: r.name for r in SearchSpace.from_dict(JobSpec.from_dict(raw).space).ranges}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    got = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return {names.get(k, k): float(v) for k, v in got.items()}


def tuning_report(ws: Workspace, job_id: str, *, title: str | None = None) -> str:
    """The HTML report of a stored tuning job (finished or running).

    Raises
    ------
    NotFound
        No such job.
    """
    from loopml.tune._storage import open_studies
    from loopml.tune.jobs import load_study, result_of

    studies = open_studies(ws.settings.metadata_url)
    try:
        study = load_study(studies, job_id)
        result = result_of(study)
        curves = {t.number: [(int(k), float(v)) for k, v in t.intermediate_values.items() if _finite(v)]
                  for t in study.get_trials(deepcopy=False) if t.intermediate_values}
        importances: dict[str, float] = {}
        note = ""
        complete = [t for t in result.trials if t.state == "COMPLETE"]
        if len(complete) < 2:
            note = f"Needs at least two completed trials; the job has {len(complete)}."
        else:
            try:
                importances = param_importances(study)
            except (ValueError, RuntimeError) as e:
                note = f"Optuna could not assess importance: {e}"
                log.info("tuning job %s: no importances: %s", job_id, e)
    finally:
        studies.close()
    return render_report(result, curves=curves, importances=importances, importance_note=note, title=title)


def write_report(ws: Workspace, job_id: str, path: str | os.PathLike[str], *, title: str | None = None) -> str:
    """Write the HTML report of a tuning job to ``path`` (atomically); return the path written.

    Examples
    --------
    >>> write_report(ws, "churn-xgb", "tuning.html")  # doctest: +SKIP
    'tuning.html'
    """
    return write_atomic(path, tuning_report(ws, job_id, title=title).encode("utf-8"))


__all__ = ["param_importances", "render_report", "tuning_report", "write_report"]
