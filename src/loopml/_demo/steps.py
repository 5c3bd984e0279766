"""The Python steps of the champion/challenger retraining pipeline (``retrain.yaml``).

Each is a plain function ``fn(ctx, **args) -> dict`` that a pipeline names as
``loopml._demo.steps:NAME``; built-in step kinds do the rest (train,
evaluate, condition, register, monitor_baseline).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from loopml.errors import LoopmlError
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.pipelines import StepContext

log = logging.getLogger(__name__)

#: the event a challenger that stays out of production leaves
CHALLENGER_NOT_PROMOTED = "model.challenger_not_promoted"


class CanaryRolledBack(LoopmlError):
    """The canary deployment was rolled back (an alarm fired while traffic shifted)."""


def _alarm_list(alarms: str | list[str] | None) -> list[str]:
    if alarms is None:
        return []
    items = alarms.split(",") if isinstance(alarms, str) else [str(a) for a in alarms]
    return [a.strip() for a in items if a.strip()]


def canary_deploy(
    ctx: StepContext, endpoint: str, model: str, strategy: str = "canary:25:10",
    alarms: str | list[str] | None = None,
) -> dict[str, Any]:
    """Shift ``endpoint`` to ``model`` with a deployment strategy, rolled back if an alarm fires.

    Parameters
    ----------
    ctx
        The step's context.
    endpoint
        The endpoint serving the champion.
    model
        The challenger (``NAME:VERSION``).
    strategy
        ``canary:PCT:SECONDS``, ``linear:PCT:SECONDS`` or ``all-at-once``.
    alarms
        Alarms that roll the deployment back (names, comma-separated); none: the
        strategy's defaults.

    Returns
    -------
    dict
        ``endpoint``, ``deployed_model``, ``strategy``, ``status``, ``deployment_id``,
        ``endpoint_version``.

    Raises
    ------
    CanaryRolledBack
        The deployment rolled back (an alarm fired, or it timed out) or failed; traffic is
        back on the champion.
    """
    from loopml.serve import deployments

    names = _alarm_list(alarms)
    ctx.log(f"deploying {model} to {endpoint} with strategy {strategy}"
            + (f", rolled back by {', '.join(names)}" if names else ""))
    d = deployments.update_endpoint(ctx.ws, endpoint, model=model, strategy=strategy, alarms=names,
                                    require_approved=True, by=f"pipeline:{ctx.pipeline}",
                                    reason=f"pipeline execution {ctx.execution_id}")
    ctx.log(f"deployment {d.id} ended {d.status}" + (f": {d.reason}" if d.reason else ""))
    if d.status != deployments.SUCCEEDED:
        raise CanaryRolledBack(f"deploying {model} to {endpoint} ended {d.status}: "
                               f"{d.reason or 'see `loopml endpoints describe ' + endpoint + '`'}; "
                               f"{endpoint} still serves {', '.join(b.get('model', '?') for b in d.blue) or 'its old models'}")
    return {"endpoint": endpoint, "deployed_model": model, "strategy": strategy, "status": d.status,
            "deployment_id": d.id, "endpoint_version": d.to_version}


def promote(ctx: StepContext, model: str, reason: str = "", alias: str = "production") -> dict[str, Any]:
    """Point ``NAME@alias`` at ``model`` (the challenger that now serves all traffic)."""
    from loopml.registry import set_alias

    info = set_alias(ctx.ws, model, alias, by=f"pipeline:{ctx.pipeline}", reason=reason or None)
    ctx.log(f"{info.name}@{alias} -> {info.ref}")
    return {"model": info.ref, "alias": alias, "aliases": list(info.aliases)}


def record_not_promoted(
    ctx: StepContext, run: str, model_name: str, metric: str | None = None, improvement: float | None = None,
    margin: float = 0.0, challenger: dict[str, Any] | None = None, champion: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record why the challenger of training run ``run`` stays out of production.

    Emits the workspace event ``model.challenger_not_promoted`` (entity: the
    run) with the reason and the two models' metrics, and returns the reason
    as the step's output; the execution still succeeds.
    """
    name = metric or "the metric"
    mine = (challenger or {}).get(name) if metric else None
    theirs = (champion or {}).get(name) if metric else None
    if improvement is None:
        reason = f"the challenger's {name} could not be compared with {model_name}@production's"
    else:
        reason = (f"the challenger's {name} {_num(mine)} against {model_name}@production's {_num(theirs)} "
                  f"({improvement:+.4f}) does not beat it by the required margin {margin:g}")
    ctx.log(f"not promoted: {reason}")
    ctx.ws.events.emit(CHALLENGER_NOT_PROMOTED, EntityRef("run", run), {
        "run_id": run, "model": model_name, "metric": metric, "challenger": mine, "champion": theirs,
        "improvement": improvement, "margin": margin, "reason": reason, "pipeline": ctx.pipeline,
        "execution_id": ctx.execution_id,
    })
    return {"promoted": False, "reason": reason, "run_id": run}


def _num(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


__all__ = ["CHALLENGER_NOT_PROMOTED", "CanaryRolledBack", "canary_deploy", "promote", "record_not_promoted"]
