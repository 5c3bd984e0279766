"""Metrics and alarms: the CloudWatch role of loopml.

The serving app and monitoring jobs write time series into the workspace's
metrics table (``ws.metrics``); alarms watch a statistic of one series against a
threshold, change state (``OK``, ``ALARM``, ``INSUFFICIENT_DATA``), record why,
emit an ``alarm.state_changed`` event and run their actions. Deployment
guardrails and retraining triggers read both.
"""

from __future__ import annotations

from loopml.metrics import alarms
from loopml.metrics.alarms import (
    ALARM,
    ALARM_STATE_CHANGED,
    INSUFFICIENT_DATA,
    OK,
    ActionResult,
    AlarmInfo,
    StateChange,
    alarm_history,
    delete_alarm,
    evaluate_alarms,
    get_alarm,
    list_alarms,
    put_alarm,
    set_alarm_state,
)
from loopml.metrics.table import MetricInfo, MetricPoint, MetricsTable, parse_time

__all__ = [
    "ALARM",
    "ALARM_STATE_CHANGED",
    "INSUFFICIENT_DATA",
    "OK",
    "ActionResult",
    "AlarmInfo",
    "MetricInfo",
    "MetricPoint",
    "MetricsTable",
    "StateChange",
    "alarm_history",
    "alarms",
    "delete_alarm",
    "evaluate_alarms",
    "get_alarm",
    "list_alarms",
    "parse_time",
    "put_alarm",
    "set_alarm_state",
]
