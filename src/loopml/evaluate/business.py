"""Business metrics: what a model's errors cost, what it saves against a baseline, ROI, payback.

A costs file (YAML) gives the price of each kind of error and the benefit of
each kind of correct prediction, the price of running the model, the volume
and the development cost. :func:`business_metrics` turns a confusion matrix
and those numbers into expected cost and value per prediction and per day,
savings against a baseline (a constant rule or a second set of predictions,
such as the current production model's), ROI over a horizon and the payback
period; :func:`measure_latency` times a predict function so the
model–business alignment table can put accuracy next to latency and cost.
"""

from __future__ import annotations

import difflib
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from loopml.errors import InvalidInput, NotFound

ALWAYS_NEGATIVE = "always-negative"
ALWAYS_POSITIVE = "always-positive"
#: a baseline that is another registered model: ``model:churn@production``
MODEL_PREFIX = "model:"

#: rows of the business table: (key, label, kind) — kind is "money", "days", "ratio" or "count"
BUSINESS_ROWS: tuple[tuple[str, str, str], ...] = (
    ("error_cost_per_prediction", "cost of errors / prediction", "money"),
    ("benefit_per_prediction", "benefit / prediction", "money"),
    ("operating_cost_per_prediction", "operating cost / prediction", "money"),
    ("cost_per_prediction", "expected cost / prediction", "money"),
    ("value_per_prediction", "expected value / prediction", "money"),
    ("cost_per_day", "expected cost / day", "money"),
    ("value_per_day", "expected value / day", "money"),
    ("savings_per_prediction", "savings / prediction vs baseline", "money"),
    ("savings_per_day", "savings / day vs baseline", "money"),
    ("cost_per_user_per_day", "cost / user / day", "money"),
    ("operating_cost_per_user_per_day", "operating cost / user / day", "money"),
    ("roi", "ROI over the horizon", "ratio"),
    ("payback_days", "payback period (days)", "days"),
)

_NUMBER_KEYS = ("cost_fp", "cost_fn", "benefit_tp", "benefit_tn", "price_per_prediction",
                "price_per_compute_second", "development_cost")
_POSITIVE_KEYS = ("predictions_per_day", "users_per_day", "predictions_per_user", "horizon_days")


@dataclass(frozen=True)
class BusinessCosts:
    """The business side of an evaluation, as read from a costs YAML file.

    Every amount is in one currency (``currency`` is only a label); volumes
    are per day.

    Attributes
    ----------
    cost_fp, cost_fn
        Cost of one false positive / false negative.
    benefit_tp, benefit_tn
        Benefit of one true positive / true negative.
    price_per_prediction
        Price of serving one prediction.
    price_per_compute_second
        Price of one second of compute; multiplied by the mean (or median)
        inference latency.
    predictions_per_day
        Predictions made per day (default: ``users_per_day × predictions_per_user``).
    users_per_day, predictions_per_user
        Users served per day, and predictions per user (default 1).
    development_cost
        One-off cost of building the model (for ROI and payback).
    horizon_days
        The period ROI is computed over (default 365 days).
    baseline
        What the model is compared with: ``always-negative`` (default),
        ``always-positive``, or the name of a column holding a second set of
        predictions (e.g. the current production model's).
    currency
        Label printed next to amounts (e.g. ``EUR``).

    Examples
    --------
    >>> c = BusinessCosts.from_mapping({"cost_fp": 5, "cost_fn": 50, "users_per_day": 2000})
    >>> c.daily_predictions
    2000.0
    """

    cost_fp: float = 0.0
    cost_fn: float = 0.0
    benefit_tp: float = 0.0
    benefit_tn: float = 0.0
    price_per_prediction: float = 0.0
    price_per_compute_second: float = 0.0
    predictions_per_day: float | None = None
    users_per_day: float | None = None
    predictions_per_user: float = 1.0
    development_cost: float = 0.0
    horizon_days: float = 365.0
    baseline: str = ALWAYS_NEGATIVE
    currency: str = ""

    @property
    def has_error_costs(self) -> bool:
        """True if any of cost_fp, cost_fn, benefit_tp, benefit_tn is set."""
        return any((self.cost_fp, self.cost_fn, self.benefit_tp, self.benefit_tn))

    @property
    def daily_predictions(self) -> float | None:
        """Predictions per day: ``predictions_per_day``, else users × predictions per user."""
        if self.predictions_per_day is not None:
            return self.predictions_per_day
        if self.users_per_day is not None:
            return self.users_per_day * self.predictions_per_user
        return None

    @property
    def baseline_is_rule(self) -> bool:
        """True for ``always-negative`` / ``always-positive``; False for a column or a model."""
        return self.baseline in (ALWAYS_NEGATIVE, ALWAYS_POSITIVE)

    @property
    def baseline_model(self) -> str | None:
        """The registered model the baseline names (``model:NAME[:VERSION|@ALIAS]``), if any."""
        if self.baseline.startswith(MODEL_PREFIX):
            return self.baseline[len(MODEL_PREFIX):].strip() or None
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (round-trips through :meth:`from_mapping`)."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "costs") -> BusinessCosts:
        """Check a mapping of costs; every error names the key.

        Raises
        ------
        InvalidInput
            Not a mapping, an unknown key, or a value of the wrong type or range.
        """
        if not isinstance(data, Mapping):
            what = "nothing" if data is None else f"a {type(data).__name__}"
            raise InvalidInput(f"{source} must be a mapping of key: value (e.g. 'cost_fp: 5'); got {what}")
        known = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidInput(f"{source}: unknown key {key!r}{hint}; known keys are {', '.join(known)}")
            if key in ("baseline", "currency"):
                if not isinstance(value, str) or (key == "baseline" and not value.strip()):
                    raise InvalidInput(
                        f"{source}: {key} must be text"
                        + (f" ({ALWAYS_NEGATIVE}, {ALWAYS_POSITIVE}, a column of baseline predictions or "
                           f"{MODEL_PREFIX}NAME[:VERSION|@ALIAS])"
                           if key == "baseline" else "")
                        + f"; got {value!r}"
                    )
                values[key] = value.strip()
                continue
            if key in ("predictions_per_day", "users_per_day") and value is None:
                values[key] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InvalidInput(f"{source}: {key} must be a number; got {value!r}")
            if key in _POSITIVE_KEYS and value <= 0:
                raise InvalidInput(f"{source}: {key} must be a number above 0; got {value!r}")
            if key in _NUMBER_KEYS and value < 0:
                raise InvalidInput(
                    f"{source}: {key} must be a number ≥ 0; got {value!r} "
                    "(write gains as benefit_tp / benefit_tn)"
                )
            values[key] = float(value)
        return cls(**values)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BusinessCosts:
        """Read a costs YAML file.

        Raises
        ------
        NotFound
            The file does not exist.
        InvalidInput
            The file is not YAML, or its content is not valid (see :meth:`from_mapping`).
        """
        import yaml

        p = Path(path).expanduser()
        if not p.is_file():
            raise NotFound(f"costs file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise InvalidInput(f"costs file {str(path)!r} is not valid YAML: {e}") from e
        except UnicodeDecodeError as e:
            raise InvalidInput(f"costs file {str(path)!r} is not a text file") from e
        return cls.from_mapping(data, source=f"costs file {str(path)!r}")

    @classmethod
    def coerce(cls, value: BusinessCosts | Mapping[str, Any] | str | os.PathLike[str] | None) -> BusinessCosts | None:
        """A :class:`BusinessCosts` from itself, a mapping or a YAML file path (None stays None)."""
        if value is None or isinstance(value, BusinessCosts):
            return value
        if isinstance(value, Mapping):
            return cls.from_mapping(value)
        if isinstance(value, (str, os.PathLike)):
            return cls.load(value)
        raise InvalidInput(f"costs must be a mapping, a BusinessCosts or a YAML file path; got {type(value).__name__}")


# -- latency ---------------------------------------------------------------------------------
def measure_latency(
    predict: Callable[[Any], Any],
    X: Any,
    *,
    rows: int = 100,
    warmup: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``predict`` on single rows of ``X``: p50, p99 and mean latency in milliseconds.

    Parameters
    ----------
    predict
        A function taking a batch of rows (a one-row DataFrame, array slice or list).
    X
        Sample rows: a pandas DataFrame, a numpy array or a list.
    rows
        How many rows to time (a seeded sample, with replacement when ``X`` is smaller).
    warmup
        Untimed calls first (caches, lazy initialisation).
    seed
        Seed of the row sample.

    Returns
    -------
    dict
        ``p50_ms``, ``p99_ms``, ``mean_ms``, ``rows`` and ``source: "measured"``.

    Examples
    --------
    >>> import numpy as np
    >>> lat = measure_latency(lambda x: x.sum(axis=1), np.ones((20, 3)), rows=10)
    >>> sorted(lat)
    ['mean_ms', 'p50_ms', 'p99_ms', 'rows', 'source']
    """
    n = len(X)
    if n == 0:
        raise InvalidInput("measure_latency needs at least one sample row")
    if rows < 1:
        raise InvalidInput(f"rows must be at least 1; got {rows}")
    idx = np.random.default_rng(seed).choice(n, size=rows, replace=n < rows)
    take: Callable[[int], Any]
    if hasattr(X, "iloc"):
        def take(i: int) -> Any:
            return X.iloc[[i]]
    elif isinstance(X, np.ndarray):
        def take(i: int) -> Any:
            return X[i:i + 1]
    else:
        def take(i: int) -> Any:
            return [X[i]]
    for i in idx[:warmup]:
        predict(take(int(i)))
    times = np.empty(rows)
    for j, i in enumerate(idx):
        row = take(int(i))
        t0 = time.perf_counter()
        predict(row)
        times[j] = time.perf_counter() - t0
    ms = times * 1000.0
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "rows": int(rows), "source": "measured"}


def check_latency(latency: Mapping[str, Any]) -> dict[str, Any]:
    """A caller-given latency mapping (``p50_ms``, ``p99_ms``, optional ``mean_ms``), checked."""
    if not isinstance(latency, Mapping):
        raise InvalidInput(f"latency must be a mapping such as {{'p50_ms': 3.1, 'p99_ms': 9.0}}; got {latency!r}")
    out: dict[str, Any] = {}
    for key, value in latency.items():
        if key in ("rows", "source"):
            out[key] = value
            continue
        if key not in ("p50_ms", "p99_ms", "mean_ms"):
            raise InvalidInput(f"latency: unknown key {key!r}; known keys are p50_ms, p99_ms, mean_ms")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"latency: {key} must be a number of milliseconds ≥ 0; got {value!r}")
        out[key] = float(value)
    out.setdefault("source", "given")
    return out


# -- the business table ----------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    """One column of the business table: a set of predictions and how it is run."""

    name: str
    #: "baseline" or "model"
    role: str
    #: (tp, fp, tn, fn) for binary classification, None otherwise
    counts: tuple[float, float, float, float] | None
    #: pays the price per prediction and compute (False for a constant rule)
    operated: bool = True
    #: accuracy metrics shown in the alignment table
    metrics: Mapping[str, float | None] | None = None


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, pos_label: Any) -> tuple[float, float, float, float]:
    """(tp, fp, tn, fn) of binary labels."""
    t = np.asarray(y_true) == pos_label
    p = np.asarray(y_pred) == pos_label
    return (float(np.sum(t & p)), float(np.sum(~t & p)), float(np.sum(~t & ~p)), float(np.sum(t & ~p)))


def business_table(
    costs: BusinessCosts,
    scenarios: Sequence[Scenario],
    *,
    latency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Expected cost and value of each scenario, and savings/ROI/payback of the models vs the baseline.

    Per prediction: the cost of errors ``(cost_fp·FP + cost_fn·FN) / n``, the
    benefit ``(benefit_tp·TP + benefit_tn·TN) / n``, the operating cost
    ``price_per_prediction + price_per_compute_second × latency`` (a constant
    rule runs for free), the expected cost (errors + operating) and value
    (benefit − cost). Per day: times the daily predictions. A model's savings
    are its value minus the baseline's; ROI is ``(savings_per_day × horizon_days
    − development_cost) / development_cost`` and the payback period
    ``development_cost / savings_per_day`` days.
    """
    notes: list[str] = []
    volume = costs.daily_predictions
    lat = dict(latency) if latency else None
    compute_s = None
    if lat:
        ms = lat.get("mean_ms", lat.get("p50_ms"))
        compute_s = ms / 1000.0 if ms is not None else None
    if costs.price_per_compute_second and compute_s is None:
        notes.append("price_per_compute_second is left out: no latency was measured or given")
    operating = costs.price_per_prediction + costs.price_per_compute_second * (compute_s or 0.0)
    binary = all(s.counts is not None for s in scenarios)
    if not binary and costs.has_error_costs:
        notes.append("cost_fp, cost_fn, benefit_tp and benefit_tn apply to binary classification only")
    if volume is None:
        notes.append("give predictions_per_day or users_per_day for per-day figures, ROI and payback")

    rows: list[dict[str, Any]] = []
    for s in scenarios:
        r: dict[str, Any] = {"name": s.name, "role": s.role}
        op = operating if s.operated else 0.0
        if s.counts is not None:
            tp, fp, tn, fn = s.counts
            n = tp + fp + tn + fn
            r.update(tp=tp, fp=fp, tn=tn, fn=fn)
            err = (costs.cost_fp * fp + costs.cost_fn * fn) / n
            ben = (costs.benefit_tp * tp + costs.benefit_tn * tn) / n
            r.update(error_cost_per_prediction=err, benefit_per_prediction=ben)
            r["value_per_prediction"] = ben - err - op
        else:
            r.update(error_cost_per_prediction=None, benefit_per_prediction=None, value_per_prediction=None)
            err = 0.0
        r["operating_cost_per_prediction"] = op
        r["cost_per_prediction"] = err + op
        r["cost_per_day"] = r["cost_per_prediction"] * volume if volume is not None else None
        r["value_per_day"] = (r["value_per_prediction"] * volume
                              if volume is not None and r["value_per_prediction"] is not None else None)
        users = costs.users_per_day
        r["cost_per_user_per_day"] = r["cost_per_day"] / users if users and r["cost_per_day"] is not None else None
        r["operating_cost_per_user_per_day"] = op * volume / users if users and volume is not None else None
        rows.append(r)

    base = next((r for r in rows if r["role"] == "baseline"), None)
    for r in rows:
        r.update(savings_per_prediction=None, savings_per_day=None, roi=None, payback_days=None)
        if r["role"] != "model" or base is None or r["value_per_prediction"] is None:
            continue
        r["savings_per_prediction"] = r["value_per_prediction"] - base["value_per_prediction"]
        if volume is None:
            continue
        save = r["savings_per_prediction"] * volume
        r["savings_per_day"] = save
        dev = costs.development_cost
        if dev > 0:
            r["roi"] = (save * costs.horizon_days - dev) / dev
            r["payback_days"] = dev / save if save > 0 else None
        else:
            r["payback_days"] = 0.0 if save > 0 else None
    model = next((r for r in rows if r["role"] == "model"), None)
    if model is not None and model["savings_per_day"] is not None:
        if model["savings_per_day"] <= 0:
            notes.append("the model does not save anything over the baseline: it never pays back")
        if costs.development_cost == 0:
            notes.append("give development_cost for the ROI")
    summary = {k: model.get(k) for k, _, _ in BUSINESS_ROWS} if model else {}
    alignment = [
        {"name": s.name, "role": s.role, "metrics": dict(s.metrics or {}),
         "latency_p50_ms": lat.get("p50_ms") if lat and s.role == "model" else None,
         "latency_p99_ms": lat.get("p99_ms") if lat and s.role == "model" else None,
         "cost_per_prediction": r["cost_per_prediction"], "value_per_day": r["value_per_day"]}
        for s, r in zip(scenarios, rows, strict=True)
    ]
    return {
        "currency": costs.currency,
        "costs": costs.to_dict(),
        "baseline": costs.baseline,
        "predictions_per_day": volume,
        "latency": lat,
        "scenarios": rows,
        "summary": summary,
        "alignment": alignment,
        "notes": notes,
    }


def business_metrics(
    y_true: Any,
    y_pred: Any,
    costs: BusinessCosts | Mapping[str, Any] | str | os.PathLike[str],
    *,
    pos_label: Any = None,
    baseline_pred: Any = None,
    latency: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The business table of binary predictions against the baseline of the costs.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels (binary).
    costs
        A :class:`BusinessCosts`, a mapping, or the path of a costs YAML file.
    pos_label
        The positive class (default: the last sorted class).
    baseline_pred
        A second set of predictions to compare with (overrides the costs'
        ``always-negative`` / ``always-positive`` baseline).
    latency
        ``{"p50_ms": ..., "p99_ms": ...}`` (see :func:`measure_latency`).

    Returns
    -------
    dict
        ``scenarios`` (baseline, then model: every row of :data:`BUSINESS_ROWS`),
        ``summary`` (the model's figures), ``alignment``, ``notes`` and the costs used.

    Examples
    --------
    >>> b = business_metrics([1, 0, 0, 1], [1, 0, 1, 1], {"cost_fp": 1, "cost_fn": 10,
    ...                      "predictions_per_day": 100})
    >>> b["summary"]["cost_per_prediction"], b["summary"]["savings_per_day"]
    (0.25, 475.0)
    """
    from loopml.evaluate.classification import prepare

    c = BusinessCosts.coerce(costs)
    assert c is not None
    p = prepare(y_true, y_pred, pos_label=pos_label, task="binary")
    base = baseline_scenario(c, p.y_true, p.classes, p.pos_label, baseline_pred)
    model = Scenario("model", "model", confusion_counts(p.y_true, p.y_pred, p.pos_label))
    return business_table(c, [base, model], latency=check_latency(latency) if latency else None)


def baseline_scenario(
    costs: BusinessCosts, y_true: np.ndarray, classes: np.ndarray, pos_label: Any, baseline_pred: Any = None,
) -> Scenario:
    """The baseline column: a constant rule, or a second set of predictions."""
    from loopml.evaluate._arrays import as_1d

    if baseline_pred is not None:
        bp = as_1d("baseline predictions", baseline_pred)
        if len(bp) != len(y_true):
            raise InvalidInput(f"the baseline predictions have {len(bp)} rows but y_true has {len(y_true)}")
        extra = sorted(set(bp.tolist()) - set(classes.tolist()), key=str)
        if extra:
            raise InvalidInput(f"the baseline predictions hold label(s) {extra[:5]} that are not classes {classes.tolist()}")
        name = "baseline" if costs.baseline_is_rule else f"baseline: {costs.baseline}"
        return Scenario(name, "baseline", confusion_counts(y_true, bp, pos_label))
    if costs.baseline_model is not None:
        raise InvalidInput(
            f"the costs name the baseline model {costs.baseline_model!r}; evaluate_model (loopml evaluate MODEL) "
            "scores it on the same rows; with stored predictions, name a column of baseline predictions instead"
        )
    if not costs.baseline_is_rule:
        raise InvalidInput(
            f"the costs name the baseline column {costs.baseline!r}; pass its predictions as baseline_pred "
            f"(evaluate_dataset reads the column), or use {ALWAYS_NEGATIVE} / {ALWAYS_POSITIVE}"
        )
    neg = next(c for c in classes.tolist() if c != pos_label)
    fill = pos_label if costs.baseline == ALWAYS_POSITIVE else neg
    const = np.full(len(y_true), fill, dtype=object)
    return Scenario(costs.baseline, "baseline",
                    confusion_counts(y_true, const, pos_label), operated=False)
