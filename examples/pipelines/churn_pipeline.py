"""A churn retraining pipeline in Python: data -> validation -> training -> evaluation -> gates -> registry.

Run it with the CLI (steps run in worker processes)::

    loopml pipelines run examples/pipelines/churn_pipeline.py --param rows=2000 --param threshold=0.75

or from Python: ``run_pipeline(ws, "examples/pipelines/churn_pipeline.py", {"rows": 2000})``.

The model is registered, approved and made ``churn@production`` only if its
AUC on the holdout clears ``threshold`` *and* it beats the current production
model on the same holdout by ``margin`` (champion/challenger); a challenger that
loses is recorded with the reason (the ``beats_production`` condition's
``detail``), an AUC below the threshold fails the execution.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loopml.data import Catalog
from loopml.pipelines import Param, Pipeline, StepContext, step


def customers(rows: int, seed: int) -> pd.DataFrame:
    """Generated customers with a learnable churn label."""
    r = np.random.default_rng(seed)
    tenure = r.integers(1, 72, rows)
    charges = r.normal(70, 20, rows).round(2)
    plan = r.choice(np.array(["basic", "plus", "pro"], dtype=object), rows)
    logit = -0.05 * tenure + 0.03 * (charges - 70) + (plan == "basic") * 0.8
    churned = (r.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"tenure": tenure, "monthly_charges": charges, "plan": plan, "churned": churned})


@step(cache="P1D", outputs=["dataset", "holdout"])
def make_data(ctx: StepContext, rows: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Store a training set and a holdout as dataset versions (cached for a day)."""
    cat = Catalog(ctx.ws)
    train = cat.write("churn_train", customers(rows, seed))
    holdout = cat.write("churn_holdout", customers(max(200, rows // 4), seed + 1))
    print(f"wrote {train.ref} ({train.row_count} rows) and {holdout.ref}")
    return {"dataset": train.ref, "holdout": holdout.ref}


pipeline = Pipeline("churn", params={
    "rows": Param(int, 1000, "training rows to generate"),
    "threshold": Param(float, 0.7, "the least holdout AUC worth registering"),
    "margin": Param(float, 0.01, "how much better than production a new model must be"),
}, description="Train a churn model and promote it if it beats production.")

data = pipeline.add(make_data, rows=pipeline.param("rows"))
checked = pipeline.add("validate", data=data.output("dataset"),
                       expectations={"columns": {"churned": {"allowed": [0, 1], "nullable": False},
                                                 "tenure": {"min": 0}}})
train = pipeline.add("train", algo="xgboost", data=checked.output("dataset"), target="churned",
                     hyperparameters={"num_round": 30, "max_depth": 3}, cache="P1D", retries=1)
evaluate = pipeline.add("evaluate", model=train.output("run_id"), data=data.output("holdout"), target="churned",
                        baseline="churn@production", metric="roc_auc", margin=pipeline.param("margin"),
                        latency_rows=20)
register = pipeline.add("register", run=train.output("run_id"), model="churn", approve=True, alias="production")
beats = pipeline.condition(evaluate.output("beats_baseline"), if_steps=[register], name="beats_production")
pipeline.condition(evaluate.output("metrics.roc_auc") >= pipeline.param("threshold"), name="good_enough",
                   if_steps=[beats], else_steps=[pipeline.fail(
                       "holdout AUC ${steps.evaluate.outputs.metrics.roc_auc} is below ${params.threshold}")])
