"""Safe deployments: blue/green updates of an endpoint with traffic shifting, guardrail alarms and rollback.

``loopml endpoints update EP --model M:V2 --strategy canary:10:300`` (or
:func:`update_endpoint`) replaces the models of a live endpoint the way
SageMaker's deployment guardrails do:

1. **green beside blue.** The new version runs as extra variants of the same
   endpoint config (blue keeps its variants). Every traffic shift is a new
   config version, which running ``loopml serve`` processes pick up without a
   restart; a server loads green's model before it switches, and a replaced
   backend serves the requests already in flight, so no request fails because
   of a shift.
2. **traffic shifts per the strategy**, each step followed by a *baking*
   period:

   ``all-at-once[:SECONDS]``
       100% to green at once (bake ``SECONDS``, default 0);
   ``canary:PCT:SECONDS``
       ``PCT`` % to green, bake ``SECONDS``, then 100%;
   ``linear:PCT:SECONDS``
       ``PCT`` %, ``2*PCT`` %, ... 100%, baking ``SECONDS`` after each step but the last.

   After 100%, blue stays deployed at weight 0 for ``termination_wait_s``
   (alarms still watched, a rollback still instant), then it is retired and
   the green variants take their final names.
3. **guardrails.** The deployment creates alarms on green's own metrics
   (dimensions ``{"endpoint": EP, "variant": <green>}``): the 5XX error rate
   (``Invocation5XXErrorRate`` above ``max_error_rate``; a model failure, 424
   ``ModelError``, counts as a 5XX) and, if asked, the p99 latency
   (``LatencyP99`` above ``max_p99_ms``). Attached user alarms are watched too.
   The controller evaluates them about every ``poll_s`` seconds (the server
   writes the metrics every few seconds: ``loopml serve --metrics-interval``).
4. **rollback.** If any watched alarm is in ``ALARM``, or the deployment runs
   past ``timeout_s``, all traffic returns to blue (its variants and weights
   as they were) and the deployment is marked ``RolledBack`` with the alarm
   and its reason. (An alarm with a ``rollback:EP`` action needs none: every
   alarm attached to a deployment rolls it back.)

**Crash safety.** The deployment is a row in the metadata store (plan, step,
status, reason, and a lease: the controller's ``host:pid:token`` and
heartbeat); each traffic shift and its step are written in one transaction.
The controller runs in the caller's process (``wait=True``) or as a detached
process (``wait=False``, ``--no-wait``). A controller that dies leaves the
deployment ``InProgress``; :func:`resume_deployment` (``loopml endpoints
resume EP``) takes it over once the old one is gone (its pid is dead on this
host, or its heartbeat is older than ``stale_after_s``) and **continues** it:
it re-applies the traffic split of the step it found and bakes that step
again from the start (no alarm was watched while no controller ran). Past
the deployment's timeout it rolls back instead. :func:`rollback_deployment`
(``loopml endpoints rollback EP``) stops a deployment now and rolls it back.

Examples
--------
>>> from loopml.serve import deployments                                        # doctest: +SKIP
>>> d = deployments.update_endpoint(ws, "churn", model="churn:4", strategy="canary:10:300",
...                                 max_p99_ms=50, alarms=["churn-drift"])     # doctest: +SKIP
>>> d.status, d.reason                                                          # doctest: +SKIP
('RolledBack', "alarm 'dep-...-b-error-rate' went to ALARM: Threshold Crossed: ...")
"""

from __future__ import annotations

import logging
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loopml._util import actor, as_utc, clean_reason, new_id, utcnow
from loopml.errors import Conflict, InvalidInput, LoopmlError, NotFound
from loopml.serve import endpoints as eps
from loopml.serve.models import EndpointDeployment, EndpointRow
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

IN_PROGRESS = "InProgress"
SUCCEEDED = "Succeeded"
ROLLED_BACK = "RolledBack"
FAILED = "Failed"
STATUSES = (IN_PROGRESS, SUCCEEDED, ROLLED_BACK, FAILED)
#: the endpoint's status while a deployment shifts its traffic
UPDATING = "Updating"
KINDS = ("all-at-once", "canary", "linear")
#: the workspace event of every finished deployment (payload: the deployment's dict)
DEPLOYMENT_FINISHED = "endpoint.deployment_finished"

DEFAULT_MAX_ERROR_RATE = 0.05
DEFAULT_TIMEOUT_S = 3600.0
DEFAULT_GUARDRAIL_PERIOD_S = 10
DEFAULT_POLL_S = 1.0
DEFAULT_STALE_AFTER_S = 30.0


# -- strategies -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One traffic shift: green's share of the traffic (0 to 1] and the baking seconds after it."""

    share: float
    bake_s: float


@dataclass(frozen=True)
class Strategy:
    """A traffic-shifting strategy as parsed from ``all-at-once[:S]``, ``canary:PCT:S`` or ``linear:PCT:S``."""

    kind: str
    percent: float
    bake_s: float

    @property
    def text(self) -> str:
        """The strategy as a user writes it."""
        if self.kind == "all-at-once":
            return "all-at-once" if not self.bake_s else f"all-at-once:{self.bake_s:g}"
        return f"{self.kind}:{self.percent:g}:{self.bake_s:g}"

    def steps(self) -> list[Step]:
        """The shifts, in order; the last one gives green 100%.

        Examples
        --------
        >>> [(s.share, s.bake_s) for s in parse_strategy("linear:40:5").steps()]
        [(0.4, 5.0), (0.8, 5.0), (1.0, 0.0)]
        >>> [(s.share, s.bake_s) for s in parse_strategy("canary:10:60").steps()]
        [(0.1, 60.0), (1.0, 0.0)]
        """
        if self.kind == "all-at-once":
            return [Step(1.0, self.bake_s)]
        p = self.percent / 100.0
        if self.kind == "canary":
            return [Step(p, self.bake_s), Step(1.0, 0.0)]
        n = math.ceil(1.0 / p - 1e-9)
        return [Step(round(min(1.0, p * (k + 1)), 6), self.bake_s if k + 1 < n else 0.0) for k in range(n)]


def parse_strategy(text: str) -> Strategy:
    """Parse a strategy: ``all-at-once``, ``all-at-once:SECONDS``, ``canary:PCT:SECONDS`` or ``linear:PCT:SECONDS``.

    Examples
    --------
    >>> parse_strategy("canary:20:300")
    Strategy(kind='canary', percent=20.0, bake_s=300.0)
    >>> parse_strategy("blue-green")
    Traceback (most recent call last):
    ...
    loopml.errors.InvalidInput: unknown strategy 'blue-green'; use all-at-once, canary:PCT:SECONDS (e.g. canary:10:300) or linear:PCT:SECONDS (e.g. linear:25:60)
    """
    usage = ("use all-at-once, canary:PCT:SECONDS (e.g. canary:10:300) or linear:PCT:SECONDS "
             "(e.g. linear:25:60)")
    parts = [p.strip() for p in str(text or "").strip().lower().split(":")]
    kind = parts[0]
    if kind not in KINDS:
        raise InvalidInput(f"unknown strategy {text!r}; {usage}")
    try:
        if kind == "all-at-once":
            if len(parts) > 2:
                raise ValueError
            bake = float(parts[1]) if len(parts) == 2 else 0.0
            pct = 100.0
        else:
            if len(parts) != 3:
                raise ValueError
            pct, bake = float(parts[1]), float(parts[2])
    except ValueError:
        raise InvalidInput(f"strategy {text!r} is malformed; {usage}") from None
    if not math.isfinite(bake) or not 0 <= bake <= 86_400:
        raise InvalidInput(f"the baking period of strategy {text!r} must be 0 to 86400 seconds, got {bake:g}")
    if kind != "all-at-once" and (not math.isfinite(pct) or not 0 < pct < 100):
        raise InvalidInput(f"the percentage of strategy {text!r} must be above 0 and below 100, got {pct:g} "
                           "(use all-at-once to shift everything at once)")
    if kind == "linear" and math.ceil(100.0 / pct - 1e-9) > 100:
        raise InvalidInput(f"strategy {text!r} would take more than 100 steps; use a larger percentage")
    return Strategy(kind, pct, bake)


# -- what a deployment is -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeploymentInfo:
    """A deployment as stored: its plan, how far it got, and how it ended."""

    id: str
    endpoint: str
    status: str
    strategy: str
    plan: dict[str, Any]
    step: int
    from_version: int
    to_version: int | None
    blue: list[dict[str, Any]]
    green: list[dict[str, Any]]
    alarms: list[str]
    guardrail_alarms: list[str]
    alarm: str | None
    reason: str | None
    log: list[dict[str, Any]]
    owner: str | None
    heartbeat_at: datetime | None
    by: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def steps(self) -> int:
        """Number of traffic shifts of the plan."""
        return len(self.plan.get("steps") or ())

    @property
    def green_share(self) -> float:
        """Green's share of the traffic at the current step (0 before the first shift)."""
        steps = self.plan.get("steps") or []
        if self.step < 0:
            return 0.0
        if self.step >= len(steps):
            return 1.0
        return float(steps[self.step]["share"])

    @property
    def phase(self) -> str:
        """``not started``, ``step i/n``, ``termination wait`` or the final status."""
        if self.status != IN_PROGRESS:
            return self.status
        if self.step < 0:
            return "not started"
        if self.step >= self.steps:
            return "termination wait"
        return f"step {self.step + 1}/{self.steps}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {"id": self.id, "endpoint": self.endpoint, "status": self.status, "strategy": self.strategy,
                "plan": self.plan, "step": self.step, "phase": self.phase, "green_share": self.green_share,
                "from_version": self.from_version, "to_version": self.to_version, "blue": self.blue,
                "green": self.green, "alarms": self.alarms, "guardrail_alarms": self.guardrail_alarms,
                "alarm": self.alarm, "reason": self.reason, "log": self.log, "owner": self.owner,
                "heartbeat_at": iso(self.heartbeat_at), "by": self.by, "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at), "finished_at": iso(self.finished_at)}


@dataclass(frozen=True)
class Progress:
    """What a running controller reports to its caller (the CLI draws it), about once per poll."""

    deployment: str
    endpoint: str
    #: ``shift``, ``bake``, ``termination-wait``, ``rollback`` or ``done``
    phase: str
    step: int
    steps: int
    green_share: float
    remaining_s: float
    message: str


ProgressFn = Callable[[Progress], None]


def _info(row: EndpointDeployment) -> DeploymentInfo:
    target = dict(row.target or {})
    blue_cfg = eps.EndpointConfig.from_dict(row.from_config)

    def opt(t: datetime | None) -> datetime | None:
        return None if t is None else as_utc(t)

    return DeploymentInfo(
        id=row.id, endpoint=row.endpoint_name, status=row.status, strategy=row.strategy, plan=dict(row.plan),
        step=int(row.step), from_version=int(row.from_version), to_version=row.to_version,
        blue=[{"name": v.name, "model": v.model, "weight": v.weight} for v in blue_cfg.variants],
        green=[{"name": g["final_name"], "running_as": g["name"], "model": g["model"], "weight": g["weight"]}
               for g in target.get("variants") or ()],
        alarms=list(row.alarms or ()), guardrail_alarms=list(row.guardrail_alarms or ()), alarm=row.alarm,
        reason=row.reason, log=list(row.log or ()), owner=row.owner, heartbeat_at=opt(row.heartbeat_at),
        by=row.by, created_at=as_utc(row.created_at), updated_at=as_utc(row.updated_at),
        finished_at=opt(row.finished_at),
    )


def get_deployment(ws: Workspace, deployment_id: str) -> DeploymentInfo:
    """The deployment ``deployment_id``; NotFound if there is none."""
    with ws.meta.session() as s:
        row = s.get(EndpointDeployment, deployment_id)
        if row is None:
            raise NotFound(f"no deployment {deployment_id!r}; see `loopml endpoints describe EP`")
        return _info(row)


def list_deployments(ws: Workspace, endpoint: str, *, limit: int = 50) -> list[DeploymentInfo]:
    """The deployments of endpoint ``endpoint`` (deleted ones too), newest first."""
    eps.check_endpoint_name(endpoint)
    with ws.meta.session() as s:
        rows = s.scalars(select(EndpointDeployment).where(EndpointDeployment.endpoint_name == endpoint)
                         .order_by(EndpointDeployment.created_at.desc(), EndpointDeployment.id.desc()).limit(limit))
        return [_info(r) for r in rows]


def current_deployment(ws: Workspace, endpoint: str) -> DeploymentInfo | None:
    """The deployment of ``endpoint`` in progress, if any."""
    with ws.meta.session() as s:
        row = s.scalar(select(EndpointDeployment).where(EndpointDeployment.endpoint_name == endpoint,
                                                        EndpointDeployment.status == IN_PROGRESS))
        return None if row is None else _info(row)


# -- starting -----------------------------------------------------------------------------------------
def _number(what: str, value: Any, lo: float, hi: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not lo <= value <= hi:
        raise InvalidInput(f"{what} must be a number from {lo:g} to {hi:g}, got {value!r}")
    return float(value)


def _green_names(blue: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Names the green variants run under beside blue (their final names where those are free)."""
    taken = set(blue)
    out = []
    for w in wanted:
        name = w
        k = 1
        while name in taken:
            suffix = "-green" if k == 1 else f"-green{k}"
            name = w[:63 - len(suffix)] + suffix
            k += 1
        taken.add(name)
        out.append(name)
    return out


def _log(event: str, **fields: Any) -> dict[str, Any]:
    return {"at": utcnow().isoformat(), "event": event, **fields}


def start_deployment(
    ws: Workspace,
    name: str,
    *,
    model: str | None = None,
    variants: Sequence[eps.VariantSpec] | None = None,
    strategy: str | Strategy = "all-at-once",
    alarms: Sequence[str] = (),
    max_error_rate: float | None = DEFAULT_MAX_ERROR_RATE,
    max_p99_ms: float | None = None,
    termination_wait_s: float = 0.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    guardrail_period_s: int = DEFAULT_GUARDRAIL_PERIOD_S,
    poll_s: float = DEFAULT_POLL_S,
    require_approved: bool = False,
    by: str | None = None,
    reason: str | None = None,
) -> DeploymentInfo:
    """Record a blue/green deployment of ``name`` (and its guardrail alarms) without running it.

    :func:`run_deployment` drives it; :func:`update_endpoint` does both. See
    :func:`update_endpoint` for the parameters.
    """
    from loopml.metrics import alarms as alarms_api

    strat = strategy if isinstance(strategy, Strategy) else parse_strategy(strategy)
    if model is not None and variants:
        raise InvalidInput("give model= (one new model) or variants=[...] (a new set of variants), not both")
    if model is None and not variants:
        raise InvalidInput(f"say what to deploy: --model M:V (or variants=[...]); "
                           f"see `loopml endpoints describe {name}` for what runs now")
    if max_error_rate is not None:
        _number("--max-error-rate", max_error_rate, 0, 1)
    if max_p99_ms is not None:
        _number("--max-p99-ms", max_p99_ms, 0.001, 3_600_000)
    term = _number("--termination-wait", termination_wait_s, 0, 86_400)
    timeout = _number("--timeout", timeout_s, 1, 7 * 86_400)
    poll = _number("poll_s", poll_s, 0.01, 60)
    if isinstance(guardrail_period_s, bool) or not isinstance(guardrail_period_s, int) \
            or not 1 <= guardrail_period_s <= 86_400:
        raise InvalidInput(f"guardrail_period_s must be a whole number of seconds from 1 to 86400, "
                           f"got {guardrail_period_s!r}")
    names = list(dict.fromkeys(alarms or ()))
    cur = eps.get_endpoint(ws, name)
    blue = cur.config
    if blue.multi_model is not None or not blue.variants:
        raise InvalidInput(f"endpoint {name!r} is a multi-model endpoint; it has no variants to shift traffic "
                           "between (redeploy it with `loopml endpoints deploy`)")
    if model is not None:
        final = [blue.variants[0].name if len(blue.variants) == 1 else eps.DEFAULT_VARIANT]
        specs = [eps.VariantSpec(final[0], model, 1.0)]
    else:
        specs = list(variants or ())
        final = [v.name for v in specs]
    # resolve and check the green models with the endpoint's own settings (limits, placement)
    place = eps.placement_of(blue)
    from loopml.serve.autoscale import ScalingConfig
    from loopml.serve.serverless import ServerlessConfig

    resolved = eps.build_config(
        ws, variants=specs, capture_percentage=blue.capture.percentage, api_key_required=blue.auth.required,
        micro_batching=blue.micro_batching.enabled, max_batch_rows=blue.micro_batching.max_batch_rows,
        max_wait_ms=blue.micro_batching.max_wait_ms, max_rows=blue.limits.max_rows,
        max_payload_bytes=blue.limits.max_payload_bytes, require_approved=require_approved,
        scaling=ScalingConfig.from_dict(place["scaling"]) if "scaling" in place else None,
        serverless=ServerlessConfig.from_dict(place["serverless"]) if "serverless" in place else None,
        backend=place["backend"])
    if len(blue.variants) + len(resolved.variants) > eps.MAX_VARIANTS:
        raise InvalidInput(f"blue ({len(blue.variants)}) and green ({len(resolved.variants)}) variants together "
                           f"exceed {eps.MAX_VARIANTS}, the most an endpoint runs at once")
    running = _green_names([v.name for v in blue.variants], final)
    for alarm_name in names:
        alarms_api.get_alarm(ws, alarm_name)  # NotFound names it
    if names:
        alarms_api.evaluate_alarms(ws, names=names)
        firing = [a for a in alarms_api.list_alarms(ws, state=alarms_api.ALARM) if a.name in names]
        if firing:
            raise InvalidInput(f"alarm {firing[0].name!r} is in ALARM now ({firing[0].state_reason}); a deployment "
                               "it watches would roll back at once: resolve it first or do not attach it")
    dep_id = new_id("dep")
    who = actor(by)
    why = clean_reason(reason)
    guardrails: list[str] = []
    for green in running:
        dims = {"endpoint": name, "variant": green}
        if max_error_rate is not None:
            a = f"{dep_id}-{green}-error-rate"[:200]
            alarms_api.put_alarm(
                ws, a, metric="Invocation5XXErrorRate", threshold=float(max_error_rate), comparison=">",
                dimensions=dims, statistic="Average", period_s=guardrail_period_s, evaluation_periods=1,
                description=f"guardrail of deployment {dep_id}: 5XX error rate of green variant {green} of "
                            f"endpoint {name} above {max_error_rate:g}")
            guardrails.append(a)
        if max_p99_ms is not None:
            a = f"{dep_id}-{green}-p99"[:200]
            alarms_api.put_alarm(
                ws, a, metric="LatencyP99", threshold=float(max_p99_ms), comparison=">", dimensions=dims,
                statistic="Average", period_s=guardrail_period_s, evaluation_periods=1,
                description=f"guardrail of deployment {dep_id}: p99 latency of green variant {green} of "
                            f"endpoint {name} above {max_p99_ms:g} ms")
            guardrails.append(a)
    plan = {"steps": [{"share": s.share, "bake_s": s.bake_s} for s in strat.steps()],
            "termination_wait_s": term, "timeout_s": timeout, "poll_s": poll,
            "guardrail_period_s": guardrail_period_s, "max_error_rate": max_error_rate, "max_p99_ms": max_p99_ms,
            "reason": why}
    target = {"variants": [{**v.to_dict(), "name": run, "final_name": fin}
                           for v, run, fin in zip(resolved.variants, running, final, strict=True)]}
    now = utcnow()
    try:
        with ws.meta.session(write=True) as s:
            ep = s.scalar(select(EndpointRow).where(EndpointRow.name == name).with_for_update())
            if ep is None:
                raise NotFound(f"endpoint {name!r} was deleted meanwhile")
            busy = s.scalar(select(EndpointDeployment).where(EndpointDeployment.endpoint_name == name,
                                                             EndpointDeployment.status == IN_PROGRESS))
            if busy is not None:
                info = _info(busy)
                raise Conflict(f"endpoint {name!r} already has deployment {info.id} in progress ({info.strategy}, "
                               f"{info.phase}); watch it with `loopml endpoints describe {name}` or roll it back "
                               f"with `loopml endpoints rollback {name}`")
            if ep.version != cur.version:
                raise Conflict(f"endpoint {name!r} changed while the deployment was prepared; try again")
            s.add(EndpointDeployment(
                id=dep_id, endpoint_name=name, endpoint_id=ep.id, status=IN_PROGRESS, strategy=strat.text, plan=plan,
                from_version=ep.version, from_config=dict(ep.config), target=target, alarms=[*guardrails, *names],
                guardrail_alarms=guardrails, step=-1, last_version=ep.version, log=[_log("created", by=who)],
                by=who, created_at=now, updated_at=now))
            ep.status = UPDATING
    except BaseException:
        _delete_alarms(ws, guardrails)
        raise
    return get_deployment(ws, dep_id)


# -- the controller ---------------------------------------------------------------------------------
class _LostLease(Exception):
    """Another controller took the deployment over (or it was rolled back by hand)."""


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def _owner_gone(owner: str | None, heartbeat: datetime | None, stale_after_s: float) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host == socket.gethostname() and pid_text.isdigit() and not _pid_alive(int(pid_text)):
        return True
    if heartbeat is None:
        return True
    return (utcnow() - as_utc(heartbeat)).total_seconds() > stale_after_s


def _delete_alarms(ws: Workspace, names: Sequence[str]) -> None:
    from loopml.metrics import alarms as alarms_api

    for a in names:
        try:
            alarms_api.delete_alarm(ws, a)
        except NotFound:
            pass
        except Exception as e:  # cleanup must not hide how the deployment ended
            log.warning("could not delete guardrail alarm %s: %s", a, e)


class _Controller:
    """Drives one deployment: shifts traffic, bakes, watches alarms, finishes or rolls back."""

    def __init__(self, ws: Workspace, deployment_id: str, *, progress: ProgressFn | None,
                 stale_after_s: float, steal: bool = False) -> None:
        self.ws = ws
        self.id = deployment_id
        self.progress = progress
        self.stale_after_s = float(stale_after_s)
        self.steal = steal
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.d = get_deployment(ws, deployment_id)
        self.last_version = 0
        self.from_config: dict[str, Any] = {}
        self.target: dict[str, Any] = {}
        self._deadline = 0.0

    # -- the lease ------------------------------------------------------------------------------
    def claim(self) -> bool:
        """Take the lease; False if the deployment is over; Conflict if a live controller holds it."""
        with self.ws.meta.session(write=True) as s:
            row = s.get(EndpointDeployment, self.id, with_for_update=True)
            if row is None:
                raise NotFound(f"no deployment {self.id!r}")
            if row.status != IN_PROGRESS:
                self.d = _info(row)
                return False
            if row.owner and row.owner != self.owner and not self.steal \
                    and not _owner_gone(row.owner, row.heartbeat_at, self.stale_after_s):
                host, _, rest = row.owner.partition(":")
                age = (utcnow() - as_utc(row.heartbeat_at)).total_seconds() if row.heartbeat_at else math.inf
                raise Conflict(f"deployment {self.id} of endpoint {row.endpoint_name!r} is driven by controller pid "
                               f"{rest.partition(':')[0]} on {host} (heartbeat {age:.0f} s ago); watch it with "
                               f"`loopml endpoints describe {row.endpoint_name}` or stop it with "
                               f"`loopml endpoints rollback {row.endpoint_name}`")
            if row.owner and row.owner != self.owner:
                row.log = [*row.log, _log("taken_over", previous=row.owner, by=self.owner)]
            row.owner = self.owner
            row.heartbeat_at = utcnow()
            row.updated_at = utcnow()
            self.d = _info(row)
            self.last_version = int(row.last_version)
            self.from_config = dict(row.from_config)
            self.target = dict(row.target)
        return True

    def release(self) -> None:
        with self.ws.meta.session(write=True) as s:
            s.execute(update(EndpointDeployment).where(EndpointDeployment.id == self.id,
                                                       EndpointDeployment.owner == self.owner)
                      .values(owner=None, heartbeat_at=utcnow()))

    def heartbeat(self) -> None:
        with self.ws.meta.session(write=True) as s:
            n = (s.execute(update(EndpointDeployment).where(
                EndpointDeployment.id == self.id, EndpointDeployment.owner == self.owner,
                EndpointDeployment.status == IN_PROGRESS).values(heartbeat_at=utcnow()))
                .rowcount)  # type: ignore[attr-defined]
        if not n:
            raise _LostLease()

    # -- progress ---------------------------------------------------------------------------------
    def report(self, phase: str, step: int, share: float, remaining_s: float, message: str) -> None:
        if self.progress is not None:
            try:
                self.progress(Progress(self.id, self.d.endpoint, phase, step, self.d.steps, share,
                                       max(remaining_s, 0.0), message))
            except Exception:  # a drawing problem must not stop a deployment
                log.exception("the deployment progress callback failed")

    # -- configs ------------------------------------------------------------------------------------
    def _variants(self, share: float) -> tuple[eps.Variant, ...]:
        blue = eps.EndpointConfig.from_dict(self.from_config).variants
        green = [eps.Variant.from_dict(g) for g in self.target["variants"]]
        wb = sum(v.weight for v in blue) or 1.0
        wg = sum(v.weight for v in green) or 1.0
        out = [replace(v, weight=round((1.0 - share) * v.weight / wb, 9)) for v in blue]
        out += [replace(v, weight=round(share * v.weight / wg, 9)) for v in green]
        return tuple(out)

    def _endpoint(self) -> eps.EndpointInfo | None:
        try:
            return eps.get_endpoint(self.ws, self.d.endpoint)
        except NotFound:
            return None

    def _write(self, config: eps.EndpointConfig, *, action: str, status: str, reason: str,
               details: Mapping[str, Any], row_update: Callable[[Session, EndpointDeployment], None],
               expected: int | None) -> eps.EndpointInfo:
        owner = self.owner

        def on_write(s: Session, ep: EndpointRow) -> None:
            row = s.get(EndpointDeployment, self.id, with_for_update=True)
            if row is None or row.owner != owner or row.status != IN_PROGRESS:
                raise _LostLease()
            row.last_version = ep.version
            row.updated_at = utcnow()
            row_update(s, row)

        info = eps.apply_config(self.ws, self.d.endpoint, config, action=action, status=status, by=self.d.by,
                                reason=reason, details={"deployment": self.id, **details}, expected_version=expected,
                                on_write=on_write)
        self.last_version = info.version
        self.d = get_deployment(self.ws, self.id)
        return info

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> DeploymentInfo:
        if not self.claim():
            _delete_alarms(self.ws, self.d.guardrail_alarms)
            return self.d
        try:
            return self._drive()
        except _LostLease:
            return get_deployment(self.ws, self.id)
        except KeyboardInterrupt:
            self.rollback("the controller was interrupted (Ctrl+C); traffic went back to blue", None)
            raise
        finally:
            try:
                self.release()
            except Exception as e:  # the database may be what failed
                log.warning("could not release deployment %s: %s", self.id, e)

    def _drive(self) -> DeploymentInfo:
        d = self.d
        plan = d.plan
        steps = plan["steps"]
        elapsed = (utcnow() - d.created_at).total_seconds()
        self._deadline = time.monotonic() + float(plan["timeout_s"]) - elapsed
        resumed = d.step >= 0
        for i in range(max(d.step, 0), len(steps) + 1):
            last = i >= len(steps)
            share = 1.0 if last else float(steps[i]["share"])
            bake = float(plan["termination_wait_s"] if last else steps[i]["bake_s"])
            outcome = self.shift(i, share, resumed=resumed and i == d.step)
            if outcome is None:
                outcome = self.bake(i, share, bake)
            if outcome is not None:
                return outcome
        return self.finish()

    def _external_change(self, cur: eps.EndpointInfo | None) -> DeploymentInfo | None:
        if cur is None:
            return self.fail(f"endpoint {self.d.endpoint!r} was deleted during the deployment")
        if cur.version != self.last_version:
            return self.fail(
                f"endpoint {self.d.endpoint!r} was changed outside this deployment (version {self.last_version} -> "
                f"{cur.version}, see `loopml endpoints history {self.d.endpoint}`); the deployment stopped and left "
                "the endpoint as that change made it")
        return None

    def shift(self, i: int, share: float, *, resumed: bool) -> DeploymentInfo | None:
        cur = self._endpoint()
        stop = self._external_change(cur)
        if stop is not None:
            return stop
        assert cur is not None
        n = self.d.steps
        what = "termination wait: green 100%, blue at weight 0" if i >= n else f"step {i + 1}/{n}: green {share:.0%}"
        variants = self._variants(share)

        def mark(_s: Session, row: EndpointDeployment) -> None:
            row.step = i
            row.step_started_at = utcnow()
            row.log = [*row.log, _log("shift", step=i, green_share=share, resumed=resumed)]

        self.report("shift", i, share, 0.0, what)
        if resumed and cur.config.variants == variants:
            # a controller taking over: the split is in place already, only the bake starts again
            with self.ws.meta.session(write=True) as s:
                row = s.get(EndpointDeployment, self.id, with_for_update=True)
                if row is None or row.owner != self.owner:
                    raise _LostLease()
                mark(s, row)
            self.d = get_deployment(self.ws, self.id)
            return None
        try:
            self._write(replace(cur.config, variants=variants), action="deployment_shift", status=UPDATING,
                        reason=f"deployment {self.id} ({self.d.strategy}) {what}",
                        details={"step": i, "green_share": share}, row_update=mark, expected=self.last_version)
        except Conflict:
            return self._external_change(self._endpoint()) or self.fail("the endpoint changed meanwhile")
        return None

    def bake(self, i: int, share: float, seconds: float) -> DeploymentInfo | None:
        poll = float(self.d.plan["poll_s"])
        end = time.monotonic() + seconds
        phase = "termination-wait" if i >= self.d.steps else "bake"
        while True:
            outcome = self.check()
            if outcome is not None:
                return outcome
            left = end - time.monotonic()
            self.report(phase, i, share, left, f"{phase}: green {share:.0%}, {max(left, 0):.0f} s left")
            if left <= 0:
                return None
            time.sleep(min(poll, left))

    def check(self) -> DeploymentInfo | None:
        from loopml.metrics import alarms as alarms_api

        self.heartbeat()
        if time.monotonic() > self._deadline:
            return self.rollback(f"the deployment ran past its timeout ({self.d.plan['timeout_s']:g} s)", None)
        cur = self._endpoint()
        stop = self._external_change(cur)
        if stop is not None:
            return stop
        names = self.d.alarms
        if not names:
            return None
        for a in names:
            try:
                alarms_api.evaluate_alarms(self.ws, names=[a])
            except NotFound:
                continue  # deleted by hand: nothing to watch
        firing = {a.name: a for a in alarms_api.list_alarms(self.ws, state=alarms_api.ALARM)}
        for a in names:
            if a in firing:
                return self.rollback(f"alarm {a!r} went to ALARM: {firing[a].state_reason}", a)
        return None

    def rollback(self, why: str, alarm: str | None) -> DeploymentInfo:
        self.report("rollback", self.d.step, 0.0, 0.0, f"rolling back: {why}")
        blue = eps.EndpointConfig.from_dict(self.from_config).variants
        cur = self._endpoint()
        if cur is None:
            return self.fail(f"endpoint {self.d.endpoint!r} was deleted during the deployment")

        def mark(s: Session, row: EndpointDeployment) -> None:
            self._end(s, row, ROLLED_BACK, why, alarm)

        self._write(replace(cur.config, variants=blue), action="deployment_rollback", status=eps.IN_SERVICE,
                    reason=f"deployment {self.id} rolled back: {why}", details={"alarm": alarm}, row_update=mark,
                    expected=None)
        return self._finished()

    def finish(self) -> DeploymentInfo:
        cur = self._endpoint()
        stop = self._external_change(cur)
        if stop is not None:
            return stop
        assert cur is not None
        green = tuple(replace(eps.Variant.from_dict(g), name=g["final_name"])
                      for g in self.target["variants"])

        def mark(s: Session, row: EndpointDeployment) -> None:
            self._end(s, row, SUCCEEDED, None, None)
            row.to_version = row.last_version

        try:
            self._write(replace(cur.config, variants=green), action="deployment_complete", status=eps.IN_SERVICE,
                        reason=f"deployment {self.id} ({self.d.strategy}) succeeded: blue retired",
                        details={}, row_update=mark, expected=self.last_version)
        except Conflict:
            return self._external_change(self._endpoint()) or self.fail("the endpoint changed meanwhile")
        self.report("done", self.d.steps, 1.0, 0.0, "succeeded: blue retired")
        return self._finished()

    def fail(self, why: str) -> DeploymentInfo:
        with self.ws.meta.session(write=True) as s:
            row = s.get(EndpointDeployment, self.id, with_for_update=True)
            if row is None or row.owner != self.owner or row.status != IN_PROGRESS:
                raise _LostLease()
            self._end(s, row, FAILED, why, None)
            ep = s.scalar(select(EndpointRow).where(EndpointRow.name == row.endpoint_name).with_for_update())
            if ep is not None and ep.status == UPDATING:
                ep.status = eps.IN_SERVICE
        self.report("done", self.d.step, 0.0, 0.0, f"failed: {why}")
        return self._finished()

    def _end(self, s: Session, row: EndpointDeployment, status: str, why: str | None, alarm: str | None) -> None:
        now = utcnow()
        row.status = status
        row.reason = why
        row.alarm = alarm
        row.finished_at = now
        row.updated_at = now
        row.log = [*row.log, _log(status, reason=why, alarm=alarm)]
        self.ws.events.emit(DEPLOYMENT_FINISHED, EntityRef(eps.ENDPOINT_KIND, row.endpoint_id),
                            {"deployment": row.id, "endpoint": row.endpoint_name, "status": status, "reason": why,
                             "alarm": alarm, "strategy": row.strategy}, session=s)

    def _finished(self) -> DeploymentInfo:
        d = get_deployment(self.ws, self.id)
        _delete_alarms(self.ws, d.guardrail_alarms)
        self.d = d
        return d


def run_deployment(ws: Workspace, deployment_id: str, *, progress: ProgressFn | None = None,
                   stale_after_s: float = DEFAULT_STALE_AFTER_S) -> DeploymentInfo:
    """Drive deployment ``deployment_id`` to its end in this process (blocking); return how it ended.

    Raises
    ------
    Conflict
        Another controller drives it and is alive.
    """
    return _Controller(ws, deployment_id, progress=progress, stale_after_s=stale_after_s).run()


def resume_deployment(ws: Workspace, endpoint: str, *, progress: ProgressFn | None = None,
                      stale_after_s: float = DEFAULT_STALE_AFTER_S) -> DeploymentInfo:
    """Take over the deployment of ``endpoint`` in progress whose controller is gone, and continue it.

    The step it was at is applied again and baked from the start; past the
    deployment's timeout it rolls back. A deployment already over is returned as it is.

    Raises
    ------
    NotFound
        ``endpoint`` has no deployment.
    Conflict
        Its controller is still alive (pid alive on this host, or a heartbeat newer than ``stale_after_s``).
    """
    d = current_deployment(ws, endpoint)
    if d is None:
        past = list_deployments(ws, endpoint, limit=1)
        if not past:
            raise NotFound(f"endpoint {endpoint!r} has no deployment; start one with "
                           f"`loopml endpoints update {endpoint} --model M:V --strategy ...`")
        return past[0]
    return run_deployment(ws, d.id, progress=progress, stale_after_s=stale_after_s)


def rollback_deployment(ws: Workspace, endpoint: str, *, reason: str | None = None) -> DeploymentInfo:
    """Stop the deployment of ``endpoint`` in progress now and return all traffic to blue.

    Its controller (if one runs) notices at its next poll and exits.

    Raises
    ------
    NotFound
        No deployment of ``endpoint`` is in progress.
    """
    d = current_deployment(ws, endpoint)
    if d is None:
        raise NotFound(f"endpoint {endpoint!r} has no deployment in progress; see `loopml endpoints describe "
                       f"{endpoint}`")
    c = _Controller(ws, d.id, progress=None, stale_after_s=0, steal=True)
    if not c.claim():
        return c.d
    try:
        return c.rollback(f"rolled back by hand{': ' + reason if reason else ''}", None)
    except _LostLease:
        return get_deployment(ws, d.id)
    finally:
        c.release()


def spawn_controller(ws: Workspace, deployment_id: str) -> int:
    """Run the controller of ``deployment_id`` as a detached process; return its pid.

    Its output goes to ``.loopml/logs/deployments/<id>.log``.
    """
    logs = Path(ws.home) / "logs" / "deployments"
    logs.mkdir(parents=True, exist_ok=True)
    code = ("import sys; from loopml.serve.deployments import _detached_main; "
            "sys.exit(_detached_main(sys.argv[1], sys.argv[2]))")
    with open(logs / f"{deployment_id}.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, str(ws.home), deployment_id], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    # reap it when it ends, so a long-lived caller keeps no zombie
    threading.Thread(target=proc.wait, name="loopml-deployment-reaper", daemon=True).start()
    return int(proc.pid)


def _detached_main(home: str, deployment_id: str) -> int:
    """The detached controller's entry point (see :func:`spawn_controller`)."""
    from loopml.workspace import Workspace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with Workspace.open(home) as ws:
        try:
            d = run_deployment(ws, deployment_id)
        except LoopmlError as e:
            log.error("deployment %s: %s", deployment_id, e)
            return 1
    log.info("deployment %s ended: %s %s", deployment_id, d.status, d.reason or "")
    return 0 if d.status == SUCCEEDED else 3


def update_endpoint(
    ws: Workspace,
    name: str,
    *,
    model: str | None = None,
    variants: Sequence[eps.VariantSpec] | None = None,
    strategy: str | Strategy = "all-at-once",
    alarms: Sequence[str] = (),
    max_error_rate: float | None = DEFAULT_MAX_ERROR_RATE,
    max_p99_ms: float | None = None,
    termination_wait_s: float = 0.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    guardrail_period_s: int = DEFAULT_GUARDRAIL_PERIOD_S,
    poll_s: float = DEFAULT_POLL_S,
    require_approved: bool = False,
    wait: bool = True,
    progress: ProgressFn | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> DeploymentInfo:
    """Replace the models of endpoint ``name`` by a blue/green deployment with guardrails.

    Parameters
    ----------
    ws
        The workspace.
    name
        The endpoint (it keeps its settings: capture, limits, auth, replicas).
    model
        The new model (``M:V``, ``M@alias``, ``M``): one variant, named as blue's single variant
        (``AllTraffic`` by default).
    variants
        Or a new set of variants (their names and weights are the final ones).
    strategy
        ``all-at-once[:SECONDS]``, ``canary:PCT:SECONDS`` or ``linear:PCT:SECONDS`` (a
        :class:`Strategy` works too).
    alarms
        Names of existing alarms that also roll the deployment back when in ALARM.
    max_error_rate
        Guardrail: green's 5XX error rate (0 to 1) above which it rolls back (None: no such alarm).
    max_p99_ms
        Guardrail: green's p99 latency in ms above which it rolls back (None: no such alarm).
    termination_wait_s
        Seconds blue stays deployed (at weight 0) after green gets 100%.
    timeout_s
        The whole deployment rolls back if it is not done after this long.
    guardrail_period_s
        Period of the guardrail alarms, whole seconds (at least the server's metrics interval).
    poll_s
        Seconds between two evaluations of the alarms.
    require_approved
        Refuse model versions that are not ``Approved``.
    wait
        Drive the deployment in this process until it ends; False: in a detached process
        (watch it with :func:`list_deployments` or ``loopml endpoints describe``).
    progress
        Called with a :class:`Progress` at each shift and about once per poll.
    by, reason
        Who deploys and why (in the history).

    Returns
    -------
    DeploymentInfo
        How it ended (``Succeeded``, ``RolledBack`` with the alarm and reason, ``Failed``), or,
        with ``wait=False``, as it starts.

    Raises
    ------
    InvalidInput
        A bad strategy or threshold, an unknown or Rejected model, an attached alarm in ALARM now.
    NotFound
        No such endpoint or alarm.
    Conflict
        A deployment of the endpoint is already in progress.
    """
    d = start_deployment(
        ws, name, model=model, variants=variants, strategy=strategy, alarms=alarms, max_error_rate=max_error_rate,
        max_p99_ms=max_p99_ms, termination_wait_s=termination_wait_s, timeout_s=timeout_s,
        guardrail_period_s=guardrail_period_s, poll_s=poll_s, require_approved=require_approved, by=by,
        reason=reason)
    if not wait:
        spawn_controller(ws, d.id)
        return d
    return run_deployment(ws, d.id, progress=progress)


__all__ = [
    "DEPLOYMENT_FINISHED",
    "FAILED",
    "IN_PROGRESS",
    "KINDS",
    "ROLLED_BACK",
    "STATUSES",
    "SUCCEEDED",
    "UPDATING",
    "DeploymentInfo",
    "Progress",
    "ProgressFn",
    "Step",
    "Strategy",
    "current_deployment",
    "get_deployment",
    "list_deployments",
    "parse_strategy",
    "resume_deployment",
    "rollback_deployment",
    "run_deployment",
    "spawn_controller",
    "start_deployment",
    "update_endpoint",
]
