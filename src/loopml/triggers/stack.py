"""Infrastructure as code: ``loopml apply stack.yaml`` declares endpoints, monitoring, alarms and triggers.

A stack file::

    name: churn                       # default: the file's name
    pipelines:                        # registered pipelines, by name
      retrain: pipelines/retrain.yaml
    endpoints:                        # the arguments of loopml.serve.endpoints.deploy
      churn-ep: {model: churn@production, capture_percentage: 100}
    monitoring_schedules:
      churn-ep-drift: {endpoint: churn-ep, kind: data_quality, every: 1h, baseline: churn-1}
    alarms:                           # the arguments of loopml.metrics.alarms.put_alarm
      churn-drift:
        metric: dataset_drift_share
        dimensions: {endpoint: churn-ep, monitor: data_quality}
        threshold: 0.3
        comparison: ">"
        period_s: 3600
    triggers:
      retrain-on-drift:
        pipeline: retrain             # a registered pipeline of the stack, or a file
        event: alarm.state_changed
        where: {alarm: churn-drift, new_state: ALARM}
        params: {reason: "${event.payload.reason}"}
        cooldown: 1h
      nightly: {pipeline: retrain, cron: "0 3 * * *"}

The whole file is checked first — unknown keys (with a suggestion), bad
values, references to models, baselines, pipelines, endpoints and alarms that
do not exist — and nothing is applied if anything is wrong. The plan compares
each declared resource with what the workspace holds: ``create``, ``update``
(with what differs) or ``unchanged``; with ``prune``, resources this stack
made earlier and no longer declares are deleted. Applying the same file twice
changes nothing.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import select

from loopml._util import check_name, utcnow
from loopml.errors import InvalidInput, LoopmlError, NotFound
from loopml.triggers import monitoring, rules
from loopml.triggers.definitions import (
    absolute_source,
    get_registered_pipeline,
    register_pipeline,
    unregister_pipeline,
)
from loopml.triggers.models import StackResourceRow
from loopml.triggers.rules import did_you_mean

if TYPE_CHECKING:
    from loopml.workspace import Workspace

#: the sections of a stack file, in the order they are applied (deletions go the other way)
SECTIONS = ("pipelines", "endpoints", "alarms", "monitoring_schedules", "triggers")
_KIND = {"pipelines": "pipeline", "endpoints": "endpoint", "alarms": "alarm",
         "monitoring_schedules": "monitoring_schedule", "triggers": "trigger"}
_SECTION = {v: k for k, v in _KIND.items()}
TOP_KEYS = ("name", "description", *SECTIONS)
CREATE, UPDATE, UNCHANGED, DELETE = "create", "update", "unchanged", "delete"
_PIPELINE_KEYS = ("file", "description")
_SCHEDULE_KEYS = ("endpoint", "kind", "every", "cron", "baseline", "window", "options", "enabled")
_TRIGGER_KEYS = ("pipeline", "cron", "every", "event", "where", "params", "cooldown", "enabled", "executor",
                 "description")
_APPLIED_BY = "loopml apply"


@dataclass(frozen=True)
class Change:
    """One line of a plan: what happens to one resource, and what differs for an update."""

    action: str
    kind: str
    name: str
    details: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"action": self.action, "kind": self.kind, "name": self.name, "details": list(self.details)}


@dataclass(frozen=True)
class Plan:
    """What applying a stack does (or did, when ``applied``).

    ``orphans`` are resources the stack made earlier and no longer declares
    (deleted only with ``prune``).
    """

    stack: str
    changes: tuple[Change, ...]
    applied: bool = False
    orphans: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def counts(self) -> dict[str, int]:
        """Changes per action."""
        out = {CREATE: 0, UPDATE: 0, UNCHANGED: 0, DELETE: 0}
        for c in self.changes:
            out[c.action] += 1
        return out

    @property
    def changed(self) -> bool:
        """Whether anything is (or was) created, updated or deleted."""
        return any(c.action != UNCHANGED for c in self.changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"stack": self.stack, "applied": self.applied, "counts": self.counts,
                "changes": [c.to_dict() for c in self.changes], "orphans": [c.to_dict() for c in self.orphans]}


# -- reading ---------------------------------------------------------------------------------------------
def load_stack(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a stack file (YAML or JSON) into a dict; InvalidInput if it is missing or not a mapping."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"stack file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read stack file {p}: {e}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidInput(f"{p}: not valid YAML: {' '.join(str(e).split())}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidInput(f"{p}: a stack file is a mapping with {', '.join(TOP_KEYS)}")
    return doc


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def _diff(current: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[str, ...]:
    out = []
    for k in desired:
        if k in current and current[k] != desired[k]:
            out.append(f"{k}: {_yaml_scalar(current[k])} -> {_yaml_scalar(desired[k])}")
        elif k not in current:
            out.append(f"{k}: -> {_yaml_scalar(desired[k])}")
    return tuple(out)


# -- one resource kind at a time ----------------------------------------------------------------------------
@dataclass
class _Item:
    kind: str
    name: str
    desired: dict[str, Any]
    current: dict[str, Any] | None
    apply: Callable[[], Any]
    raw: dict[str, Any]


class _Checker:
    """Collects every problem of a stack file (so the user sees them all at once)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def keys(self, where: str, value: Mapping[str, Any], known: tuple[str, ...] | list[str]) -> bool:
        ok = True
        for k in value:
            if k not in known:
                hint = did_you_mean(str(k), list(known))
                self.add(where, f"unknown key {k!r}{hint}; known keys: {', '.join(known)}")
                ok = False
        return ok

    def run(self, where: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except LoopmlError as e:
            self.add(where, str(e))
            return None


def _section(doc: Mapping[str, Any], key: str, check: _Checker) -> dict[str, Any]:
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        check.add(key, f"must map names to their settings, got {type(value).__name__}")
        return {}
    out: dict[str, Any] = {}
    for name, spec in value.items():
        where = f"{key}.{name}"
        if not isinstance(name, str):
            check.add(where, "a name must be text")
            continue
        if spec is None:
            spec = {}
        if key == "pipelines" and isinstance(spec, str):
            spec = {"file": spec}
        if not isinstance(spec, Mapping):
            check.add(where, f"must be a mapping of settings, got {_yaml_scalar(spec)}")
            continue
        out[name] = dict(spec)
    return out


def _deploy_keys() -> list[str]:
    from loopml.serve.endpoints import deploy

    return [n for n in inspect.signature(deploy).parameters if n not in ("ws", "name", "by", "reason")]


def _alarm_keys() -> list[str]:
    from loopml.metrics.alarms import put_alarm

    return [n for n in inspect.signature(put_alarm).parameters if n not in ("ws", "name")]


def _endpoint_items(ws: Workspace, specs: dict[str, Any], stack: str, check: _Checker) -> list[_Item]:
    from loopml.serve import endpoints as eps

    items = []
    keys = _deploy_keys()
    for name, spec in specs.items():
        where = f"endpoints.{name}"
        if not check.keys(where, spec, keys):
            continue
        kwargs = dict(spec)
        if "variants" in kwargs:
            vs = kwargs["variants"]
            if not isinstance(vs, list) or not all(isinstance(v, Mapping) for v in vs):
                check.add(where, "variants must be a list of {name, model, weight}")
                continue
            bad = [k for v in vs for k in v if k not in ("name", "model", "weight")]
            if bad:
                check.add(where, f"variant key {bad[0]!r} is unknown{did_you_mean(bad[0], ['name', 'model', 'weight'])}; "
                                 "use name, model, weight")
                continue
            try:
                kwargs["variants"] = [eps.VariantSpec(str(v["name"]), str(v["model"]), v.get("weight", 1.0))
                                      for v in vs]
            except KeyError as e:
                check.add(where, f"each variant needs {e.args[0]!r}")
                continue
        def build(n: str = name, kw: dict[str, Any] = kwargs) -> Any:
            eps.check_endpoint_name(n)
            return eps.build_config(ws, **kw)

        config = check.run(where, build)
        if config is None:
            continue
        desired = {k: v for k, v in config.to_dict().items() if k in ("variants", "multi_model", "capture",
                                                                        "micro_batching", "limits", "auth")}
        current = None
        try:
            cur = eps.get_endpoint(ws, name).config.to_dict()
            current = {k: cur.get(k) for k in desired}
        except NotFound:
            pass

        def apply(n: str = name, kw: dict[str, Any] = kwargs) -> Any:
            return eps.deploy(ws, n, **kw, by=_APPLIED_BY, reason=f"stack {stack}")

        items.append(_Item("endpoint", name, desired, current, apply, spec))
    return items


def _check_alarm(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    from loopml.metrics.alarms import TREAT_MISSING, normalize_comparison
    from loopml.metrics.table import check_dimensions, normalize_statistic

    check_name(name, "alarm")
    for req in ("metric", "threshold", "comparison"):
        if req not in spec:
            raise InvalidInput(f"needs {req!r}")
    check_name(str(spec["metric"]), "metric")
    threshold = spec["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise InvalidInput(f"threshold must be a number, got {_yaml_scalar(threshold)}")

    def whole(key: str, default: int | None) -> int | None:
        v = spec.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InvalidInput(f"{key} must be a positive whole number, got {_yaml_scalar(v)}")
        return v

    period = whole("period_s", 60)
    m = whole("evaluation_periods", 1)
    n = whole("datapoints_to_alarm", None)
    assert m is not None
    n = m if n is None else n
    if n > m:
        raise InvalidInput(f"datapoints_to_alarm ({n}) cannot exceed evaluation_periods ({m})")
    treat = str(spec.get("treat_missing", "missing"))
    match = [t for t in TREAT_MISSING if t.lower() == treat.strip().lower()]
    if not match:
        raise InvalidInput(f"treat_missing {treat!r} is not one of {', '.join(TREAT_MISSING)}")
    actions = spec.get("actions", [])
    if isinstance(actions, str):
        actions = [actions]
    if not isinstance(actions, list) or not all(isinstance(a, str) and (a == "event" or a.startswith(
            ("webhook:http://", "webhook:https://"))) for a in actions):
        raise InvalidInput("actions must be a list of 'event' or 'webhook:https://host/path'")
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise InvalidInput("description must be text")
    return {"metric": str(spec["metric"]), "dimensions": check_dimensions(spec.get("dimensions"), "dimensions"),
            "statistic": normalize_statistic(str(spec.get("statistic", "Average"))), "period_s": period,
            "threshold": float(threshold), "comparison": normalize_comparison(str(spec["comparison"])),
            "evaluation_periods": m, "datapoints_to_alarm": n, "treat_missing": match[0],
            "actions": [a for a in actions if a != "event"], "description": description}


def _alarm_items(ws: Workspace, specs: dict[str, Any], check: _Checker) -> list[_Item]:
    from loopml.metrics import alarms

    items = []
    keys = _alarm_keys()
    for name, spec in specs.items():
        where = f"alarms.{name}"
        if not check.keys(where, spec, keys):
            continue
        desired = check.run(where, _check_alarm, name, spec)
        if desired is None:
            continue
        current = None
        try:
            a = alarms.get_alarm(ws, name).to_dict()
            current = {k: a.get(k) for k in desired}
            current["actions"] = [x for x in current.get("actions") or [] if x != "event"]
        except NotFound:
            pass

        def apply(n: str = name, d: dict[str, Any] = desired) -> Any:
            return alarms.put_alarm(ws, n, **d)

        items.append(_Item("alarm", name, desired, current, apply, spec))
    return items


def _pipeline_items(ws: Workspace, specs: dict[str, Any], base: str, check: _Checker) -> list[_Item]:
    from loopml.pipelines import load_pipeline

    items = []
    for name, spec in specs.items():
        where = f"pipelines.{name}"
        if not check.keys(where, spec, _PIPELINE_KEYS):
            continue
        if check.run(where, check_name, name, "pipeline") is None:
            continue
        if not spec.get("file"):
            check.add(where, "needs file: (a YAML or Python pipeline file, or module:attr)")
            continue
        source = absolute_source(str(spec["file"]), base)
        p = check.run(where, load_pipeline, source)
        if p is None:
            continue
        desired = {"source": source, "version": p.version}
        current = None
        try:
            reg = get_registered_pipeline(ws, name)
            current = {"source": reg.source, "version": reg.version}
        except NotFound:
            pass

        def apply(n: str = name, src: str = source) -> Any:
            return register_pipeline(ws, n, src)

        items.append(_Item("pipeline", name, desired, current, apply, spec))
    return items


def _schedule_items(ws: Workspace, specs: dict[str, Any], endpoints: set[str], check: _Checker) -> list[_Item]:
    items = []
    for name, spec in specs.items():
        where = f"monitoring_schedules.{name}"
        if not check.keys(where, spec, _SCHEDULE_KEYS):
            continue
        if ("every" in spec) == ("cron" in spec):
            check.add(where, "give exactly one of every: (e.g. 1h) or cron: (e.g. '0 * * * *')")
            continue
        if not spec.get("endpoint"):
            check.add(where, "needs endpoint:")
            continue
        endpoint = str(spec["endpoint"])
        text = str(spec["cron"]) if "cron" in spec else f"every {spec['every']}"

        def build(n: str = name, sp: dict[str, Any] = spec, ep: str = endpoint, t: str = text) -> Any:
            info = monitoring.build_monitor_schedule_spec(
                ws, ep, schedule=t, kind=str(sp.get("kind", "data_quality")), baseline=sp.get("baseline"),
                window=sp.get("window"), options=sp.get("options"), enabled=sp.get("enabled", True), name=n,
                check_refs=False)
            if ep not in endpoints:
                monitoring.check_endpoint_ref(ws, ep)
            if info.baseline is not None:
                from loopml.monitor import get_baseline

                get_baseline(ws, info.baseline, kind=info.kind)
            return info

        info = check.run(where, build)
        if info is None:
            continue
        desired = info.spec()
        current = None
        with contextlib.suppress(NotFound):
            current = monitoring.get_monitor_schedule(ws, name).spec()

        def apply(i: monitoring.MonitorScheduleInfo = info) -> Any:
            return monitoring.put_monitor_schedule(ws, i, replace=True)

        items.append(_Item("monitoring_schedule", name, desired, current, apply, spec))
    return items


def _trigger_items(ws: Workspace, specs: dict[str, Any], pipelines: dict[str, str], alarm_names: set[str],
                   base: str, check: _Checker) -> list[_Item]:
    from loopml.metrics import alarms

    items = []
    for name, spec in specs.items():
        where = f"triggers.{name}"
        if not check.keys(where, spec, _TRIGGER_KEYS):
            continue
        rule = [k for k in ("cron", "every", "event") if k in spec]
        if len(rule) != 1:
            check.add(where, "give exactly one of cron:, every: or event:")
            continue
        if "where" in spec and "event" not in spec:
            check.add(where, "where: applies to event triggers (event:) only")
            continue
        if not spec.get("pipeline"):
            check.add(where, "needs pipeline: (a pipeline of this stack, a registered one, or a file)")
            continue
        ref = str(spec["pipeline"])
        registered = ref in pipelines
        schedule = str(spec["cron"]) if "cron" in spec else (f"every {spec['every']}" if "every" in spec else None)

        def build(n: str = name, sp: dict[str, Any] = spec, r: str = ref, reg: bool = registered,
                  sc: str | None = schedule) -> Any:
            t = rules.build_trigger_spec(
                ws, n, pipeline=pipelines[r] if reg else r, params=sp.get("params"), schedule=sc,
                event_type=sp.get("event"), event_filter=sp.get("where"), enabled=sp.get("enabled", True),
                cooldown_s=sp.get("cooldown", 0), executor=str(sp.get("executor", "local")),
                description=str(sp.get("description", "")), base=base)
            if reg:
                t = replace(t, pipeline_source=r)
            if t.event_type == "alarm.state_changed" and "alarm" in t.event_filter:
                wanted = t.event_filter["alarm"]
                for a in wanted if isinstance(wanted, list) else [wanted]:
                    if str(a) not in alarm_names:
                        try:
                            alarms.get_alarm(ws, str(a))
                        except NotFound:
                            raise NotFound(f"where: alarm {a!r} is neither in this stack nor in the workspace"
                                           f"{did_you_mean(str(a), alarm_names)}") from None
            return t

        t = check.run(where, build)
        if t is None:
            continue
        desired = t.spec()
        current = None
        with contextlib.suppress(NotFound):
            current = rules.get_trigger(ws, name).spec()

        def apply(ts: rules.TriggerSpec = t) -> Any:
            return rules.put_trigger(ws, ts, replace=True)

        items.append(_Item("trigger", name, desired, current, apply, spec))
    return items


def _delete(ws: Workspace, kind: str, name: str) -> None:
    try:
        if kind == "trigger":
            rules.remove_trigger(ws, name)
        elif kind == "monitoring_schedule":
            monitoring.remove_monitor_schedule(ws, name)
        elif kind == "alarm":
            from loopml.metrics import alarms

            alarms.delete_alarm(ws, name)
        elif kind == "endpoint":
            from loopml.serve import endpoints as eps

            eps.delete_endpoint(ws, name, by=_APPLIED_BY, reason="removed from its stack (--prune)")
        elif kind == "pipeline":
            unregister_pipeline(ws, name)
    except NotFound:
        pass  # already gone


def _exists(ws: Workspace, kind: str, name: str) -> bool:
    try:
        if kind == "trigger":
            rules.get_trigger(ws, name)
        elif kind == "monitoring_schedule":
            monitoring.get_monitor_schedule(ws, name)
        elif kind == "alarm":
            from loopml.metrics import alarms

            alarms.get_alarm(ws, name)
        elif kind == "endpoint":
            from loopml.serve import endpoints as eps

            eps.get_endpoint(ws, name)
        elif kind == "pipeline":
            get_registered_pipeline(ws, name)
    except NotFound:
        return False
    return True


def _resolve(doc: Mapping[str, Any] | str | os.PathLike[str], base: str | os.PathLike[str] | None,
             ) -> tuple[dict[str, Any], str, str]:
    if isinstance(doc, (str, os.PathLike)):
        path = Path(doc).expanduser()
        data = load_stack(path)
        default_name = path.stem
        folder = str(path.resolve().parent)
    elif isinstance(doc, Mapping):
        data = dict(doc)
        default_name = "default"
        folder = str(Path(base).resolve()) if base is not None else os.getcwd()
    else:
        raise InvalidInput(f"a stack is a file path or a mapping, got {type(doc).__name__}")
    if base is not None:
        folder = str(Path(base).resolve())
    return data, default_name, folder


def _prepare(ws: Workspace, doc: Mapping[str, Any] | str | os.PathLike[str],
             base: str | os.PathLike[str] | None, label: str | None) -> tuple[str, list[_Item], list[Change]]:
    data, default_name, folder = _resolve(doc, base)
    check = _Checker(label or "stack")
    check.keys("stack", data, TOP_KEYS)
    stack = data.get("name", default_name)
    if not isinstance(stack, str):
        check.add("name", f"the stack's name must be text, got {_yaml_scalar(stack)}")
        stack = default_name
    else:
        check.run("name", check_name, stack, "stack")
    sections = {key: _section(data, key, check) for key in SECTIONS}
    pipelines = {n: absolute_source(str(s.get("file", "")), folder) for n, s in sections["pipelines"].items()
                 if s.get("file")}
    items: list[_Item] = []
    items += _pipeline_items(ws, sections["pipelines"], folder, check)
    items += _endpoint_items(ws, sections["endpoints"], str(stack), check)
    items += _alarm_items(ws, sections["alarms"], check)
    items += _schedule_items(ws, sections["monitoring_schedules"], set(sections["endpoints"]), check)
    items += _trigger_items(ws, sections["triggers"], pipelines, set(sections["alarms"]), folder, check)
    # ownership: a resource another stack manages is not taken over silently
    with ws.meta.session() as s:
        owned = list(s.scalars(select(StackResourceRow)))
    mine = {(r.kind, r.name) for r in owned if r.stack == stack}
    others = {(r.kind, r.name): r.stack for r in owned if r.stack != stack}
    for it in items:
        other = others.get((it.kind, it.name))
        if other is not None:
            check.add(f"{_SECTION[it.kind]}.{it.name}", f"belongs to stack {other!r}; remove it there first or "
                                                           "choose another name")
    if check.problems:
        n = len(check.problems)
        raise InvalidInput(f"{label or 'the stack'} is invalid ({n} problem{'s' if n > 1 else ''}; nothing was "
                           f"applied): " + "; ".join(check.problems))
    declared = {(it.kind, it.name) for it in items}
    order = {k: i for i, k in enumerate(_KIND.values())}
    orphans = sorted(((k, n) for k, n in mine - declared), key=lambda x: (-order[x[0]], x[1]))
    return str(stack), items, [Change(DELETE, k, n) for k, n in orphans]


def plan_stack(
    ws: Workspace, doc: Mapping[str, Any] | str | os.PathLike[str], *, prune: bool = False,
    base: str | os.PathLike[str] | None = None,
) -> Plan:
    """Validate a stack and say what applying it would do (nothing is written)."""
    return apply_stack(ws, doc, dry_run=True, prune=prune, base=base)


def apply_stack(
    ws: Workspace,
    doc: Mapping[str, Any] | str | os.PathLike[str],
    *,
    dry_run: bool = False,
    prune: bool = False,
    base: str | os.PathLike[str] | None = None,
) -> Plan:
    """Validate a stack, plan it, and (unless ``dry_run``) apply the plan.

    Parameters
    ----------
    ws
        The workspace.
    doc
        A stack file (YAML) or its parsed mapping.
    dry_run
        Only plan.
    prune
        Delete the resources this stack made earlier and no longer declares.
    base
        The folder relative paths are read against (default: the stack file's folder, or the current one).

    Returns
    -------
    Plan
        Every declared resource as ``create``, ``update`` (with what differs) or
        ``unchanged``, plus ``delete`` for pruned ones; ``applied`` is True
        when the changes were made.

    Raises
    ------
    InvalidInput
        Anything wrong in the file (every problem is listed; nothing is applied).

    Examples
    --------
    >>> import tempfile, loopml
    >>> from loopml.triggers import apply_stack
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> stack = {"name": "demo", "alarms": {"slow": {"metric": "ModelLatency", "threshold": 200,
    ...                                              "comparison": ">", "dimensions": {"endpoint": "churn"}}}}
    >>> [(c.action, c.kind, c.name) for c in apply_stack(ws, stack).changes]
    [('create', 'alarm', 'slow')]
    >>> [(c.action, c.kind, c.name) for c in apply_stack(ws, stack).changes]
    [('unchanged', 'alarm', 'slow')]
    >>> ws.close()
    """
    label = str(doc) if isinstance(doc, (str, os.PathLike)) else None
    stack, items, orphans = _prepare(ws, doc, base, label)
    changes: list[Change] = []
    if prune:
        changes += [c for c in orphans if _exists(ws, c.kind, c.name)]
    for it in items:
        if it.current is None:
            changes.append(Change(CREATE, it.kind, it.name))
        elif it.current != it.desired:
            changes.append(Change(UPDATE, it.kind, it.name, _diff(it.current, it.desired)))
        else:
            changes.append(Change(UNCHANGED, it.kind, it.name))
    leftover = () if prune else tuple(orphans)
    if dry_run:
        return Plan(stack, tuple(changes), False, leftover)
    now: datetime = utcnow()
    by_key = {(it.kind, it.name): it for it in items}
    for c in changes:
        if c.action == DELETE:
            _delete(ws, c.kind, c.name)
            with ws.meta.session(write=True) as s:
                row = s.get(StackResourceRow, (stack, c.kind, c.name))
                if row is not None:
                    s.delete(row)
            continue
        it = by_key[(c.kind, c.name)]
        if c.action != UNCHANGED:
            try:
                it.apply()
            except LoopmlError as e:
                done = sum(1 for x in changes[:changes.index(c)] if x.action != UNCHANGED)
                raise type(e)(f"{_SECTION[c.kind]}.{c.name}: {e} ({done} earlier change(s) were applied; fix it "
                              "and apply again)") from None
        with ws.meta.session(write=True) as s:
            row = s.get(StackResourceRow, (stack, c.kind, c.name))
            if row is None:
                s.add(StackResourceRow(stack=stack, kind=c.kind, name=c.name, spec=_jsonable(it.raw), applied_at=now))
            else:
                row.spec, row.applied_at = _jsonable(it.raw), now
    if prune:
        # orphans already gone from the workspace are forgotten too
        with ws.meta.session(write=True) as s:
            for o in orphans:
                row = s.get(StackResourceRow, (stack, o.kind, o.name))
                if row is not None:
                    s.delete(row)
    return Plan(stack, tuple(changes), True, leftover)


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def stack_resources(ws: Workspace, stack: str | None = None) -> list[dict[str, Any]]:
    """The resources stacks manage (of one stack if given): ``stack``, ``kind``, ``name``, ``applied_at``."""
    q = select(StackResourceRow).order_by(StackResourceRow.stack, StackResourceRow.kind, StackResourceRow.name)
    if stack is not None:
        q = q.where(StackResourceRow.stack == stack)
    with ws.meta.session() as s:
        return [{"stack": r.stack, "kind": r.kind, "name": r.name, "applied_at": r.applied_at.isoformat()}
                for r in s.scalars(q)]


__all__ = ["CREATE", "DELETE", "SECTIONS", "UNCHANGED", "UPDATE", "Change", "Plan", "apply_stack", "load_stack",
           "plan_stack", "stack_resources"]
