"""Stage 7, evaluation: technical and business metrics, threshold selection, an HTML report.

The core is pure: :func:`evaluate_predictions` takes arrays (true values,
predictions, scores) and returns an :class:`EvaluationResult` with the task's
metrics (scikit-learn underneath), curves, the confusion matrix, a chosen
decision threshold, custom metrics and, given a costs file, the business
table (expected cost and value, savings against a baseline, ROI, payback,
and accuracy next to latency and cost). :func:`render_report` turns a result
into one offline HTML page; :func:`evaluate_dataset` does both for the
predictions stored in a dataset version and records them with lineage, and
:func:`evaluate_model` does it for a trained model (registry ref, run or
package id) that predicts a dataset version, with its measured latency.
"""

from loopml.evaluate.business import (
    BUSINESS_ROWS,
    BusinessCosts,
    business_metrics,
    business_table,
    measure_latency,
)
from loopml.evaluate.classification import ThresholdChoice, classification_metrics, select_threshold
from loopml.evaluate.clustering import clustering_metrics
from loopml.evaluate.custom import (
    CustomMetric,
    MetricRegistry,
    default_registry,
    register_metric,
    unregister_metric,
)
from loopml.evaluate.ranking import ranking_metrics
from loopml.evaluate.regression import forecasting_metrics, regression_metrics
from loopml.evaluate.report import format_number, metric_label, render_report
from loopml.evaluate.result import (
    TASKS,
    EvaluationResult,
    StoredEvaluation,
    evaluate_predictions,
    infer_task,
)
from loopml.evaluate.run import (
    evaluate_dataset,
    evaluate_model,
    evaluations,
    load_evaluation,
    run_metrics,
)

__all__ = [
    "BUSINESS_ROWS",
    "TASKS",
    "BusinessCosts",
    "CustomMetric",
    "EvaluationResult",
    "MetricRegistry",
    "StoredEvaluation",
    "ThresholdChoice",
    "business_metrics",
    "business_table",
    "classification_metrics",
    "clustering_metrics",
    "default_registry",
    "evaluate_dataset",
    "evaluate_model",
    "evaluate_predictions",
    "evaluations",
    "forecasting_metrics",
    "format_number",
    "infer_task",
    "load_evaluation",
    "measure_latency",
    "metric_label",
    "ranking_metrics",
    "register_metric",
    "regression_metrics",
    "render_report",
    "run_metrics",
    "select_threshold",
    "unregister_metric",
]
