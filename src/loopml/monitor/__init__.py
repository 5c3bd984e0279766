"""Model monitoring: baselines, data quality and drift, model quality, bias, attribution drift.

Every monitor records its executions in one shared store
(:mod:`loopml.monitor.results`): a status, a JSON summary, a violation count
and its output files, linked by lineage to the endpoint or dataset version it
watched and to its baseline; each run also writes figures to the metrics
table (``ws.metrics``) so alarms can watch them.

- :mod:`loopml.monitor.data_quality`: :func:`baseline` and :func:`run_data_quality`
  (statistics.json, constraints.json, constraint_violations.json, drift, report).
- :mod:`loopml.monitor.ground_truth`, :mod:`~loopml.monitor.quality`: labels that arrive
  later, joined to captured predictions, and :func:`run_model_quality`.
- :mod:`loopml.monitor.bias`: Clarify-style pre- and post-training bias.
- :mod:`loopml.monitor.attribution`: SHAP attributions and their drift (NDCG).
- :mod:`loopml.monitor.statistics`, :mod:`~loopml.monitor.constraints`,
  :mod:`~loopml.monitor.drift`, :mod:`~loopml.monitor.checks`: the pure parts.

See ``docs/monitor.md``.
"""

from loopml.monitor.attribution import (
    Attributions,
    attribution_baseline,
    explain,
    global_importance,
    ndcg,
    run_attribution_drift,
)
from loopml.monitor.bias import bias_report, posttraining_bias, pretraining_bias, run_bias
from loopml.monitor.checks import CHECK_TYPES, check_data
from loopml.monitor.constraints import check_constraints, suggest_constraints
from loopml.monitor.data_quality import baseline, load_constraints, read_baseline, run_data_quality
from loopml.monitor.ground_truth import (
    GroundTruthUpload,
    ingest_ground_truth,
    labelled_predictions,
    read_ground_truth,
)
from loopml.monitor.quality import quality_metrics, run_model_quality
from loopml.monitor.results import (
    BASELINE_CREATED,
    COMPLETED,
    COMPLETED_WITH_VIOLATIONS,
    FAILED,
    MONITOR_COMPLETED,
    MONITOR_KINDS,
    NO_DATA,
    STATUSES,
    Baseline,
    MonitoringResult,
    Target,
    get_baseline,
    get_result,
    list_baselines,
    list_results,
    save_baseline,
    save_result,
)
from loopml.monitor.statistics import compute_statistics

__all__ = [
    "BASELINE_CREATED",
    "CHECK_TYPES",
    "COMPLETED",
    "COMPLETED_WITH_VIOLATIONS",
    "FAILED",
    "MONITOR_COMPLETED",
    "MONITOR_KINDS",
    "NO_DATA",
    "STATUSES",
    "Attributions",
    "Baseline",
    "GroundTruthUpload",
    "MonitoringResult",
    "Target",
    "attribution_baseline",
    "baseline",
    "bias_report",
    "check_constraints",
    "check_data",
    "compute_statistics",
    "explain",
    "get_baseline",
    "get_result",
    "global_importance",
    "ingest_ground_truth",
    "labelled_predictions",
    "list_baselines",
    "list_results",
    "load_constraints",
    "ndcg",
    "posttraining_bias",
    "pretraining_bias",
    "quality_metrics",
    "read_baseline",
    "read_ground_truth",
    "run_attribution_drift",
    "run_bias",
    "run_data_quality",
    "run_model_quality",
    "save_baseline",
    "save_result",
    "suggest_constraints",
]
