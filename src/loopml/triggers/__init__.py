"""Triggers, the scheduler, monitoring schedules and infrastructure as code (``loopml apply``).

>>> from loopml.triggers import add_trigger, run_scheduler        # doctest: +SKIP
>>> add_trigger(ws, "retrain-on-drift", pipeline="retrain.yaml",   # doctest: +SKIP
...             event_type="alarm.state_changed", event_filter={"alarm": "churn-drift", "new_state": "ALARM"},
...             params={"reason": "${event.payload.reason}"})
>>> run_scheduler(ws)                                               # doctest: +SKIP

- :mod:`loopml.triggers.rules`: triggers, their firings, :func:`fire_trigger`.
- :mod:`loopml.triggers.scheduler`: :class:`Scheduler` and :func:`run_scheduler`.
- :mod:`loopml.triggers.monitoring`: monitoring schedules and their runs.
- :mod:`loopml.triggers.stack`: :func:`apply_stack` (``loopml apply stack.yaml``).
- :mod:`loopml.triggers.schedules`, :mod:`~loopml.triggers.templates`: the pure parts.

See ``docs/triggers.md``.
"""

from loopml.triggers.definitions import (
    RegisteredPipeline,
    get_registered_pipeline,
    list_registered_pipelines,
    register_pipeline,
    unregister_pipeline,
)
from loopml.triggers.monitoring import (
    MonitorRunInfo,
    MonitorScheduleInfo,
    add_monitor_schedule,
    get_monitor_schedule,
    list_monitor_runs,
    list_monitor_schedules,
    remove_monitor_schedule,
    run_monitor_schedule,
)
from loopml.triggers.rules import (
    FIRING_STATUSES,
    FiringInfo,
    TriggerInfo,
    add_trigger,
    disable_trigger,
    enable_trigger,
    fire_trigger,
    get_firing,
    get_trigger,
    list_firings,
    list_triggers,
    remove_trigger,
)
from loopml.triggers.scheduler import Scheduler, SchedulerStats, TickReport, run_scheduler
from loopml.triggers.schedules import Schedule, due_slot, parse_duration, parse_schedule
from loopml.triggers.stack import Change, Plan, apply_stack, load_stack, plan_stack

__all__ = [
    "FIRING_STATUSES",
    "Change",
    "FiringInfo",
    "MonitorRunInfo",
    "MonitorScheduleInfo",
    "Plan",
    "RegisteredPipeline",
    "Schedule",
    "Scheduler",
    "SchedulerStats",
    "TickReport",
    "TriggerInfo",
    "add_monitor_schedule",
    "add_trigger",
    "apply_stack",
    "disable_trigger",
    "due_slot",
    "enable_trigger",
    "fire_trigger",
    "get_firing",
    "get_monitor_schedule",
    "get_registered_pipeline",
    "get_trigger",
    "list_firings",
    "list_monitor_runs",
    "list_monitor_schedules",
    "list_registered_pipelines",
    "list_triggers",
    "load_stack",
    "parse_duration",
    "parse_schedule",
    "plan_stack",
    "register_pipeline",
    "remove_monitor_schedule",
    "remove_trigger",
    "run_monitor_schedule",
    "run_scheduler",
    "unregister_pipeline",
]
