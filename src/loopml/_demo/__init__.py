"""What ``loopml demo``, ``examples/churn`` and the end-to-end test share (private to loopml).

- :mod:`loopml._demo.data`: :func:`make_churn`, generated customer-churn data with an injected drift.
- ``retrain.yaml`` (:func:`retrain_pipeline_text`): the champion/challenger retraining pipeline.
- :mod:`loopml._demo.steps`: its Python steps (canary deployment, promotion, recording why a
  challenger was not promoted).
- :mod:`loopml._demo.server`: ``loopml serve``'s app on 127.0.0.1 in a thread, and HTTP clients.
- :mod:`loopml._demo.lifecycle`: the demo itself, stage by stage (:class:`ChurnDemo`).

See ``docs/lifecycle.md``.
"""

from loopml._demo.data import FEATURES, TARGET, make_churn
from loopml._demo.lifecycle import (
           ChurnDemo,
           DemoFailed,
           DemoSettings,
           retrain_pipeline_text,
           run_demo,
)

__all__ = ["FEATURES", "TARGET", "ChurnDemo", "DemoFailed", "DemoSettings", "make_churn",
           "retrain_pipeline_text", "run_demo"]
