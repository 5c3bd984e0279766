"""Experiment tracking: experiments, runs (nested), params, metrics, tags, artifacts, datasets.

>>> from loopml.track import Tracker            # doctest: +SKIP
>>> tracker = Tracker(ws)                       # doctest: +SKIP
>>> with tracker.start_run(experiment="churn") as run:   # doctest: +SKIP
...     run.log_metric("auc", 0.91, step=3)

See :class:`Tracker` and ``docs/tracking.md``.
"""

from loopml.track._env import CodeVersion
from loopml.track.compare import RunComparison
from loopml.track.tracker import (
    RUN_FAILED,
    RUN_FINISHED,
    ExperimentInfo,
    MetricPoint,
    Run,
    RunArtifactInfo,
    RunDataset,
    RunInfo,
    Tracker,
)

__all__ = [
    "RUN_FAILED",
    "RUN_FINISHED",
    "CodeVersion",
    "ExperimentInfo",
    "MetricPoint",
    "Run",
    "RunArtifactInfo",
    "RunComparison",
    "RunDataset",
    "RunInfo",
    "Tracker",
]
