"""The ``loopml demo`` lifecycle, stage by stage, on generated customer-churn data.

:class:`ChurnDemo` runs every stage of loopml on the embedded defaults, the
way a user would: ingest with validation, EDA, a recipe, the feature store,
training, tuning, evaluation with business metrics, registration and
approval, a real-time endpoint over real HTTP, a batch transform, a
monitoring run that catches injected drift and raises an alarm, the trigger
that starts the champion/challenger retraining pipeline, the canary that
replaces the model, and the readiness report of the new version. Every stage
checks what it did and raises :class:`DemoFailed` when something is off, so
the demo exits 0 only if everything worked.

It talks to the user through a :class:`DemoUI` (the CLI renders it with
rich); it never prints itself.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loopml._demo.data import FEATURES, TARGET, make_churn
from loopml._util import utcnow
from loopml.errors import InvalidInput, LoopmlError

if TYPE_CHECKING:

    from loopml._demo.server import Client
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

#: the file that marks a folder as a demo workspace (which a new run may replace)
MARKER = ".loopml-demo"
ENDPOINT = "churn"
MODEL = "churn"
DRIFT_ALARM = "churn-drift"
ERRORS_ALARM = "churn-5xx"
TRIGGER = "retrain-on-drift"
#: the drift alarm fires when more than this share of the features drifted (any one of the six)
DRIFT_SHARE_THRESHOLD = 0.1

EXPECTATIONS = """\
row_count: {min: 100}
columns:
  customer_id: {type: int, nullable: false, unique: true}
  tenure_months: {type: int, min: 0, max: 120}
  monthly_charges: {type: float, min: 0}
  support_calls: {type: int, min: 0}
  contract: {allowed: [monthly, annual, two_year]}
  plan: {allowed: [basic, plus, premium, enterprise]}
  churn: {type: int, allowed: [0, 1]}
"""

RECIPE = """\
target: churn
steps:
  - kind: impute
    columns: [monthly_charges]
    strategy: median
  - kind: standardize
    columns: [tenure_months, monthly_charges, support_calls]
  - kind: one_hot
    columns: [contract, plan, region]
  - kind: date_parts
    columns: [event_time]
    parts: [dow, month, hour, weekend]
  - kind: expression
    name: charges_per_month_of_tenure
    expr: monthly_charges / (tenure_months + 1)
"""

#: the recipe fitted inside each training job (new plans are ignored by one_hot, not refused)
TRAIN_RECIPE: dict[str, Any] = {"steps": [
    {"kind": "impute", "columns": ["monthly_charges"], "strategy": "median"},
    {"kind": "one_hot", "columns": ["contract", "plan", "region"]},
]}

COSTS = """\
# what a churn prediction is worth: a retention offer costs 5, a lost customer 40
cost_fp: 5
cost_fn: 40
benefit_tp: 10
price_per_prediction: 0.001
users_per_day: 1000
development_cost: 2000
horizon_days: 365
baseline: always-negative
currency: EUR
"""


class DemoFailed(LoopmlError):
    """A stage of the demo did not do what it should (the message says which and why)."""


class DemoUI(Protocol):
    """How the demo talks to the user."""

    def stage(self, title: str) -> None:
        """A new stage starts."""

    def say(self, text: str) -> None:
        """One line of what happened."""

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A small table."""


class SilentUI:
    """A :class:`DemoUI` that keeps the lines (tests, scripts)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def stage(self, title: str) -> None:
        """Record the stage's title."""
        self.lines.append(f"== {title}")

    def say(self, text: str) -> None:
        """Record a line."""
        self.lines.append(text)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Record a table as lines."""
        self.lines.append(title)
        self.lines.extend(" | ".join(str(c) for c in r) for r in rows)


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and timings of the demo (the defaults take about two minutes on two cores).

    Attributes
    ----------
    rows
        Customers in the first export (train, validation and holdout are split from it).
    fresh_rows
        Labelled customers that arrive after the drift (the retraining data and its holdout).
    traffic_rows, drift_rows
        Records sent to the endpoint before and after the drift.
    tune_trials
        Trials of the tuning job.
    num_round
        Boosting rounds of each model.
    canary_percent, bake_s
        The retraining pipeline's canary: this share of traffic for this many seconds.
    margin
        How much better (holdout AUC) a challenger must be.
    seed
        Seed of every generator.
    """

    rows: int = 4000
    fresh_rows: int = 3000
    traffic_rows: int = 300
    drift_rows: int = 600
    tune_trials: int = 6
    num_round: int = 60
    canary_percent: int = 25
    bake_s: float = 6.0
    margin: float = 0.02
    seed: int = 7

    @classmethod
    def quick(cls, rows: int | None = None) -> DemoSettings:
        """Small sizes for tests and CI (about half the time)."""
        n = rows or 1000
        return cls(rows=n, fresh_rows=max(600, n), traffic_rows=100, drift_rows=200, tune_trials=2,
                   num_round=30, bake_s=2.0)

    def check(self) -> DemoSettings:
        """Raise InvalidInput for sizes the demo cannot work with."""
        if self.rows < 300:
            raise InvalidInput(f"--rows must be at least 300 (train, validation and holdout are split from it); "
                               f"got {self.rows}")
        if self.tune_trials < 1:
            raise InvalidInput(f"the tuning job needs at least 1 trial, got {self.tune_trials}")
        return self


@dataclass
class DemoResult:
    """What the demo made and where to look."""

    path: Path
    #: (label, path or command), in the order the stages made them
    where: list[tuple[str, str]] = field(default_factory=list)
    #: seconds per stage
    timings: list[tuple[str, float]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


def prepare_path(path: Path) -> None:
    """Make ``path`` an empty folder for the demo workspace.

    A folder left by an earlier demo (it holds the marker file) is replaced;
    any other non-empty folder is refused, so the demo never deletes a user's files.
    """
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"--path {path} is a file; give a folder for the demo workspace")
    if path.is_dir() and any(path.iterdir()):
        # earlier demos marked nothing; their workspace is known by its generated files
        legacy = (path / ".loopml").is_dir() and (path / "raw" / "customers.expect.yaml").is_file()
        if not (path / MARKER).is_file() and not legacy:
            raise InvalidInput(f"--path {path} is a folder with files that the demo did not make; give a new or "
                               "empty folder (the demo replaces only its own workspaces)")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by `loopml demo`; a new run of the demo replaces this folder\n")


def retrain_pipeline_text() -> str:
    """The champion/challenger retraining pipeline shipped with loopml (YAML)."""
    return resources.files("loopml._demo").joinpath("retrain.yaml").read_text(encoding="utf-8")


def check(condition: bool, message: str) -> None:
    """Raise :class:`DemoFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise DemoFailed(message)


class ChurnDemo:
    """The whole lifecycle on generated churn data, in a fresh workspace at ``path``.

    Parameters
    ----------
    path
        The demo workspace's folder (see :func:`prepare_path`).
    settings
        Sizes and timings.
    ui
        Where the demo reports.
    """

    def __init__(self, path: Path, settings: DemoSettings | None = None, ui: DemoUI | None = None) -> None:
        self.path = Path(path)
        self.s = (settings or DemoSettings()).check()
        self.ui: DemoUI = ui or SilentUI()
        self.result = DemoResult(self.path.resolve())
        self.ws: Workspace | None = None
        self.api_key: str | None = None
        self._schedule = ""
        self._normal_since = self._normal_until = utcnow()
        self.reports = self.path / "reports"

    # -- plumbing --------------------------------------------------------------------------------
    def where(self, label: str, value: str | Path) -> None:
        """Remember a place to look (printed at the end)."""
        self.result.where.append((label, str(value)))

    @contextmanager
    def _stage(self, title: str) -> Iterator[None]:
        self.ui.stage(title)
        t0 = time.monotonic()
        try:
            yield
        except DemoFailed:
            raise
        except LoopmlError as e:
            raise DemoFailed(f"stage '{title}' failed: {e}") from e
        self.result.timings.append((title, time.monotonic() - t0))

    @property
    def workspace(self) -> Workspace:
        """The demo's workspace (open while the demo runs)."""
        if self.ws is None:
            raise DemoFailed("the demo workspace is not open")
        return self.ws

    def run(self) -> DemoResult:
        """Run every stage; return what was made and where to look.

        Raises
        ------
        DemoFailed
            A stage failed or a check after it did not hold.
        """
        from loopml._demo.server import Client, serving
        from loopml.workspace import Workspace

        prepare_path(self.path)
        self.ws = Workspace.init(self.path)
        t0 = time.monotonic()
        try:
            raw = self.ingest()
            self.eda(raw)
            self.prep(raw)
            self.feature_store(raw)
            self.train()
            best = self.tune()
            self.evaluate(best)
            self.register(best)
            self.deploy()
            with serving(self.workspace, metrics_flush_interval_s=1.0, capture_flush_interval_s=0.2) as url:
                self.where("endpoint (while the demo ran)", f"{url}/endpoints/{ENDPOINT}/invocations")
                with Client(url, ENDPOINT, self.api_key) as client:
                    self.realtime(url, client)
                    self.batch_transform()
                    self.monitoring(client)
                    self.retraining(client)
            self.readiness()
        finally:
            self.ws.close()
            self.ws = None
        self.result.facts["seconds"] = round(time.monotonic() - t0, 1)
        return self.result

    # -- 1-4: data --------------------------------------------------------------------------------
    def ingest(self) -> Any:
        """Generate the CRM export and ingest it with validation on arrival."""
        from loopml.data import Catalog
        from loopml.data.ingest import ingest
        from loopml.data.sources import FileSource

        with self._stage("1. data collection: ingest with validation"):
            ws = self.workspace
            raw = self.path / "raw"
            raw.mkdir(exist_ok=True)
            csv = raw / "customers.csv"
            make_churn(self.s.rows, seed=self.s.seed, broken=0.01).to_csv(csv, index=False)
            expect = raw / "customers.expect.yaml"
            expect.write_text(EXPECTATIONS)
            info = ingest(ws, FileSource(str(csv)), "customers", expectations=expect)
            check(info.row_count > 0.9 * self.s.rows and info.quarantine_count > 0,
                  f"ingest kept {info.row_count} of {self.s.rows} rows and quarantined {info.quarantine_count}; "
                  "expected about 1% of broken rows in quarantine")
            self.ui.say(f"ingested {csv.name} -> {info.ref}: {info.row_count:,} rows, {info.quarantine_count} "
                        f"quarantined by {expect.name} (negative monthly charges)")
            rel = Catalog(ws).duckdb(info).aggregate("plan, count(*) AS n, avg(churn) AS churn_rate").order("plan")
            for plan, n, rate in rel.fetchall():
                self.ui.say(f"  {plan:<8} {n:>6,} customers  churn {rate:.1%}")
            self.where("dataset", f"loopml data show {info.ref} --quarantine 5")
        return info

    def eda(self, info: Any) -> None:
        """Profile the data into an HTML report."""
        from loopml.eda import run_eda

        with self._stage("2. exploratory data analysis"):
            self.reports.mkdir(exist_ok=True)
            res = run_eda(self.workspace, info, target=TARGET, out=self.reports / "customers-eda.html")
            check(res.out is not None and Path(res.out).is_file(), "the EDA report was not written")
            self.ui.say(f"profiled {info.ref}: {len(res.profile.warnings)} warnings, report written")
            self.where("EDA report", Path(res.out or "").resolve())

    def prep(self, info: Any) -> None:
        """Fit a recipe and apply it."""
        from loopml.prep import apply_recipe, fit_recipe

        with self._stage("3. preprocessing and feature engineering"):
            recipe_file = self.path / "raw" / "churn.recipe.yaml"
            recipe_file.write_text(RECIPE)
            recipe = fit_recipe(self.workspace, recipe_file, info.ref, "churn_prep")
            out = apply_recipe(self.workspace, recipe.ref, info.ref, "customers_prepared")
            check(out.row_count == info.row_count, f"the recipe turned {info.row_count} rows into {out.row_count}")
            self.ui.say(f"fitted recipe {recipe.ref} on {info.ref}; applied -> {out.ref} ({len(out.schema)} columns)")
            self.where("recipe", "loopml prep show churn_prep")

    def feature_store(self, info: Any) -> None:
        """Feature group, online record, point-in-time training set."""
        import pandas as pd

        from loopml.data import Catalog
        from loopml.features import FeatureStore

        with self._stage("4. feature store"), FeatureStore(self.workspace) as fs:
            fs.create_group(
                "customer_activity", record_id="customer_id", event_time="event_time",
                features=["tenure_months", "monthly_charges", "support_calls", "plan"],
                data=info.ref, description="customer activity from the CRM export",
            )
            fs.ingest("customer_activity", info.ref)
            fs.materialize("customer_activity")
            first = int(Catalog(self.workspace).read_pandas(info, columns=["customer_id"])["customer_id"].iloc[0])
            record = fs.get_record("customer_activity", first)
            check(bool(record), f"the online store has no record for customer {first}")
            labels = Catalog(self.workspace).read_pandas(info, columns=["customer_id", "event_time", TARGET]).head(1000)
            labels["event_time"] = labels["event_time"] + pd.Timedelta(days=1)
            training = fs.get_training_set(labels, "customer_activity")
            with_features = int(training["monthly_charges"].notna().sum())
            check(with_features == len(training), f"only {with_features} of {len(training)} label rows got features")
            self.ui.say(f"online record for customer {first}: {record}")
            self.ui.say(f"point-in-time training set: {len(training):,} label rows, all with features as of their time")
            self.where("features", "loopml features describe customer_activity")

    # -- 5-8: models ------------------------------------------------------------------------------
    def _split(self, info: Any) -> None:
        """churn_train / churn_valid / churn_holdout from the ingested customers (70/15/15)."""
        from loopml.data import Catalog

        cat = Catalog(self.workspace)
        df = cat.read_pandas(info, columns=[*FEATURES, TARGET]).sample(frac=1.0, random_state=self.s.seed)
        a, b = int(0.7 * len(df)), int(0.85 * len(df))
        for name, part in (("churn_train", df[:a]), ("churn_valid", df[a:b]), ("churn_holdout", df[b:])):
            cat.write(name, part.reset_index(drop=True),
                      source={"kind": "split", "of": info.ref, "part": name.split("_")[1]})

    def train(self) -> str:
        """Train a first model as a tracked job; return its run id."""
        from loopml.data import Catalog
        from loopml.prep import Recipe
        from loopml.train import Estimator

        with self._stage("5. training"):
            self._split(Catalog(self.workspace).get("customers"))
            est = Estimator("xgboost", {"num_round": self.s.num_round, "max_depth": 4, "eta": 0.1},
                            target=TARGET, recipe=Recipe.from_dict(TRAIN_RECIPE), experiment="churn", ws=self.workspace)
            res = est.fit("churn_train", "churn_valid", run_name="first-model")
            auc = res.metrics.get("validation:auc")
            check(auc is not None and auc > 0.65, f"the first model's validation AUC is {auc}; expected above 0.65")
            self.result.facts["first_auc"] = auc
            self.ui.say(f"trained xgboost ({self.s.num_round} rounds) as run {res.run_id}: "
                        f"validation AUC {auc:.3f}")
            self.where("training run", f"loopml runs show {res.run_id}")
        return str(res.run_id)

    def tune(self) -> str:
        """A small Bayesian tuning job; return the best trial's run id."""
        from loopml.prep import Recipe
        from loopml.train import Estimator
        from loopml.tune import HyperparameterTuner

        with self._stage("6. hyperparameter tuning"):
            est = Estimator("xgboost", {"num_round": self.s.num_round}, target=TARGET,
                            recipe=Recipe.from_dict(TRAIN_RECIPE),
                            experiment="churn-tuning", ws=self.workspace)
            tuner = HyperparameterTuner(
                est, "validation:auc", ranges={"max_depth": (2, 6), "eta": (0.03, 0.3, "log"),
                                               "min_child_weight": (1.0, 8.0)},
                strategy="bayesian", max_trials=self.s.tune_trials, seed=self.s.seed, name="churn-xgb",
            )
            res = tuner.fit("churn_train", "churn_valid")
            check(res.best_run_id is not None and res.best_value is not None,
                  f"the tuning job ended {res.status} without a best trial: {res.error}")
            params = ", ".join(f"{k}={_num(v)}" for k, v in sorted((res.best_params or {}).items()))
            self.ui.say(f"{res.status}: {len(res.trials)} trials, best validation AUC {res.best_value:.3f} "
                        f"(first model {self.result.facts['first_auc']:.3f}) with {params}")
            self.where("tuning job", f"loopml tune show {res.job_id}")
        return str(res.best_run_id)

    def evaluate(self, run_id: str) -> None:
        """Evaluate the best model on the holdout with business costs."""
        from loopml.evaluate import evaluate_model

        with self._stage("7. evaluation with business metrics"):
            costs = self.path / "raw" / "costs.yaml"
            costs.write_text(COSTS)
            out = self.reports / "churn-v1-evaluation.html"
            res = evaluate_model(self.workspace, run_id, "churn_holdout", costs=costs, out=out, latency_rows=200)
            auc = res.metrics.get("roc_auc")
            check(auc is not None and auc > 0.65, f"holdout AUC {auc}; expected above 0.65")
            assert auc is not None
            summary = (res.business or {}).get("summary") or {}
            lat = (res.business or {}).get("latency") or {}
            threshold = f", threshold {res.threshold.threshold:.3f} ({res.threshold.by})" if res.threshold else ""
            self.ui.say(f"holdout churn_holdout: AUC {auc:.3f}, F1 {res.metrics['f1']:.3f}{threshold}")
            self.ui.say(f"business: savings/day vs always-negative {_money(summary.get('savings_per_day'))} EUR, "
                        f"ROI {_num(summary.get('roi'))}, payback {_num(summary.get('payback_days'))} days; "
                        f"latency p50 {_num(lat.get('p50_ms'))} ms, p99 {_num(lat.get('p99_ms'))} ms")
            self.result.facts["v1_auc"] = auc
            self.where("evaluation report (v1)", out.resolve())

    def register(self, run_id: str) -> None:
        """Register the best model, approve it, make it production, baseline it for monitoring."""
        from loopml.monitor import baseline
        from loopml.registry import PENDING, approve, register_model, set_alias

        with self._stage("8. model registry: register and approve"):
            ws = self.workspace
            v = register_model(ws, run_id, MODEL, "best trial of the first tuning job", PENDING, by="demo")
            v = approve(ws, v.ref, by="demo", reason="holdout AUC and savings checked in the evaluation report")
            v = set_alias(ws, v.ref, "production", by="demo")
            check(v.ref == f"{MODEL}:1" and "production" in v.aliases, f"registered {v.ref} {v.aliases}")
            b = baseline(ws, model=v.ref)
            self.ui.say(f"{v.ref} registered, {v.approval_status}, @production; monitoring baseline {b.name} "
                        f"from {b.dataset_ref}")
            self.where("model", f"loopml models show {v.ref}")

    # -- 9-12: serving ----------------------------------------------------------------------------
    def deploy(self) -> None:
        """Deploy with capture and auth; alarms, a monitoring schedule and the retraining trigger."""
        from loopml.metrics import alarms
        from loopml.serve import endpoints as eps
        from loopml.triggers import add_monitor_schedule, add_trigger

        with self._stage("9. real-time endpoint: deploy"):
            ws = self.workspace
            info = eps.deploy(ws, ENDPOINT, model=f"{MODEL}@production", capture_percentage=100.0,
                              api_key_required=True, require_approved=True, by="demo", reason="first model")
            self.api_key = eps.create_api_key(ws, ENDPOINT, description="demo client", by="demo").key
            alarms.put_alarm(ws, DRIFT_ALARM, metric="dataset_drift_share", threshold=DRIFT_SHARE_THRESHOLD,
                             comparison=">", dimensions={"endpoint": ENDPOINT, "monitor": "data_quality"},
                             statistic="Maximum", period_s=600,
                             description="features drifted from the model's baseline")
            alarms.put_alarm(ws, ERRORS_ALARM, metric="Invocation5XXErrors", threshold=0, comparison=">",
                             dimensions={"endpoint": ENDPOINT}, statistic="Sum", period_s=10,
                             treat_missing="notBreaching", description="the endpoint fails requests")
            sched = add_monitor_schedule(ws, ENDPOINT, every="1h", window="1h")
            self._schedule = sched.name
            pipelines = self.path / "pipelines"
            pipelines.mkdir(exist_ok=True)
            retrain = pipelines / "retrain.yaml"
            retrain.write_text(retrain_pipeline_text())
            trigger = add_trigger(
                ws, TRIGGER, pipeline=str(retrain.resolve()), event_type="alarm.state_changed",
                event_filter={"alarm": DRIFT_ALARM, "new_state": "ALARM"}, executor="thread",
                description="retrain when the drift alarm fires",
                params={"dataset": "churn_fresh", "holdout": "churn_fresh_holdout", "model_name": MODEL,
                        "endpoint": ENDPOINT, "margin": self.s.margin, "num_round": self.s.num_round,
                        "strategy": f"canary:{self.s.canary_percent}:{self.s.bake_s:g}",
                        "rollback_alarms": ERRORS_ALARM},
            )
            self.ui.say(f"endpoint {info.name} v{info.version} serves {', '.join(info.config.model_refs())} "
                        "(capture 100%, API key required)")
            self.ui.say(f"alarms {DRIFT_ALARM} (drift share) and {ERRORS_ALARM} (5xx); monitoring schedule "
                        f"{sched.name} ({sched.schedule}); trigger {trigger.name}: {trigger.rule} -> "
                        f"{trigger.pipeline}")
            self.where("retraining pipeline", retrain.resolve())
            self.where("endpoint", f"loopml endpoints describe {ENDPOINT}")

    def realtime(self, url: str, client: Client) -> None:
        """Real HTTP requests against ``loopml serve``'s app."""
        from loopml._demo.server import Client

        with self._stage("10. real-time endpoint: requests over HTTP"):
            normal = make_churn(self.s.traffic_rows, seed=self.s.seed + 1)[FEATURES]
            self._normal_since = utcnow()
            answers = client.send(normal, batch=20)
            bad = [a for a in answers if a.status != 200]
            check(not bad, f"{len(bad)} of {len(answers)} requests failed: {bad[0].error if bad else ''}")
            first = answers[0].predictions[0]
            self.ui.say(f"POST {url}/endpoints/{ENDPOINT}/invocations: {len(answers)} requests, "
                        f"{self.s.traffic_rows} customers scored, all 200 (variant {answers[0].variant})")
            self.ui.say(f"  first customer: churn {first['prediction']}, probabilities "
                        f"{[round(p, 3) for p in first.get('probabilities') or []]}")
            with Client(url, ENDPOINT, api_key=None) as anonymous:
                a = anonymous.invoke([{c: None for c in FEATURES}])
            check(a.status == 401, f"a request without an API key got {a.status}, expected 401")
            self.ui.say("  a request without the API key: 401")
            self._normal_until = utcnow()

    def batch_transform(self) -> None:
        """Score the holdout as a batch job."""
        from loopml.serve.transform import transform

        with self._stage("11. batch transform"):
            out = self.path / "transform" / "churn-holdout-scores"
            res = transform(self.workspace, f"{MODEL}:1", "dataset:churn_holdout", str(out), workers=1,
                            join_input=True)
            check(res.rows_out == res.rows_in and res.rows_in > 0 and not res.errors,
                  f"batch transform scored {res.rows_out} of {res.rows_in} rows with {res.errors} errors")
            self.ui.say(f"scored {res.rows_out:,} rows of churn_holdout with {MODEL}:1 -> {len(res.files)} file(s)")
            self.where("batch predictions", Path(res.output).resolve() if "://" not in res.output else res.output)

    def _wait_for_capture(self, since: datetime, rows: int, timeout_s: float = 20.0) -> None:
        from loopml.serve.capture import read_capture

        deadline = time.monotonic() + timeout_s
        while True:
            n = len(read_capture(self.workspace, ENDPOINT, since=since))
            if n >= rows:
                return
            if time.monotonic() > deadline:
                raise DemoFailed(f"only {n} of {rows} captured records reached the capture files")
            time.sleep(0.2)

    def monitoring(self, client: Client) -> None:
        """Normal traffic passes; drifted traffic through the endpoint is caught and the alarm fires."""
        from loopml.metrics.alarms import evaluate_alarms, get_alarm
        from loopml.monitor import run_data_quality
        from loopml.triggers import run_monitor_schedule

        with self._stage("12. monitoring: drift caught, alarm raised"):
            ws = self.workspace
            self._wait_for_capture(self._normal_since, self.s.traffic_rows)
            ok = run_data_quality(ws, endpoint=ENDPOINT, since=self._normal_since, until=self._normal_until)
            check(ok.status == "Completed", f"the monitor flagged normal traffic: {ok.status} "
                  f"({ok.summary.get('violations')})")
            evaluate_alarms(ws, names=[DRIFT_ALARM])
            state = get_alarm(ws, DRIFT_ALARM).state
            check(state == "OK", f"alarm {DRIFT_ALARM} is {state} after normal traffic; expected OK")
            self.ui.say(f"normal traffic ({self.s.traffic_rows} customers): {ok.status}, 0 violations; "
                        f"{DRIFT_ALARM} OK")

            drifted = make_churn(self.s.drift_rows, seed=self.s.seed + 2, drift=True)[FEATURES]
            since = utcnow()
            answers = client.send(drifted, batch=25)
            check(all(a.status == 200 for a in answers), "a request with drifted data failed")
            self._wait_for_capture(since, self.s.drift_rows)
            run = run_monitor_schedule(ws, self._schedule)
            check(run.status == "CompletedWithViolations" and run.result_id is not None,
                  f"the monitoring run on drifted traffic ended {run.status} ({run.error}); expected violations")
            from loopml.monitor import get_result

            res = get_result(ws, str(run.result_id))
            kinds = sorted({v["constraint_check_type"] for v in res.summary.get("violations", [])})
            self.ui.say(f"drifted traffic ({self.s.drift_rows} customers: higher charges, new plan 'enterprise'); "
                        f"monitoring run {run.id} over the schedule's window: {res.status}, "
                        f"{res.violation_count} violations ({', '.join(kinds)})")
            self.ui.say(f"  drifted features: {', '.join(res.summary.get('drifted_features') or [])}; "
                        f"drift share {_num(res.summary.get('drift_share'))}")
            share = res.summary.get("drift_share")
            check(isinstance(share, (int, float)) and share > DRIFT_SHARE_THRESHOLD,
                  f"the monitor saw violations {kinds} but a drift share of {share}, not above "
                  f"{DRIFT_SHARE_THRESHOLD}: the drift alarm would not fire")
            if res.report_path:
                self.where("monitoring report (drift)", res.report_path)
            self.where("monitoring results", f"loopml monitor results --target {ENDPOINT}")

    def retraining(self, client: Client) -> None:
        """New labelled data; the scheduler sees the alarm, fires the trigger, the pipeline replaces the model."""
        from loopml._demo.server import Traffic
        from loopml.data import Catalog
        from loopml.metrics.alarms import get_alarm
        from loopml.pipelines import get_execution
        from loopml.registry import get_model_version
        from loopml.serve.endpoints import get_endpoint
        from loopml.triggers import list_firings, run_scheduler

        with self._stage("13. retraining loop: trigger, champion/challenger, canary"):
            ws = self.workspace
            fresh = make_churn(self.s.fresh_rows, seed=self.s.seed + 3, drift=True, first_id=10_000_000)
            cut = int(0.75 * len(fresh))
            cat = Catalog(ws)
            src = {"kind": "python", "what": "customers labelled after the drift"}
            new = cat.write("churn_fresh", fresh[:cut][[*FEATURES, TARGET]], source=src)
            hold = cat.write("churn_fresh_holdout", fresh[cut:][[*FEATURES, TARGET]], source=src)
            self.ui.say(f"new labelled data arrived: {new.ref} ({new.row_count:,} rows), {hold.ref} "
                        f"({hold.row_count:,} rows)")
            live = make_churn(400, seed=self.s.seed + 4, drift=True)[FEATURES]
            ticks: list[str] = []

            def on_tick(r: Any) -> None:
                for line in (*r.alarm_changes, *(f"fired {f}" for f in r.firings)):
                    ticks.append(line)

            with Traffic(client, live, batch=5, pause_s=0.02) as traffic:
                stats = run_scheduler(ws, once=True, on_tick=on_tick)
            for line in ticks:
                self.ui.say(f"scheduler: {line}")
            firings = list_firings(ws, trigger=TRIGGER)
            alarm = get_alarm(ws, DRIFT_ALARM)
            check(len(firings) == 1, f"trigger {TRIGGER} fired {len(firings)} times; expected once (alarm "
                  f"{DRIFT_ALARM} is {alarm.state}: {alarm.state_reason}; scheduler errors: {stats.errors})")
            f = firings[0]
            check(f.status == "Succeeded" and f.execution_id is not None,
                  f"the retraining pipeline started by {TRIGGER} ended {f.status}: {f.error}")
            ex = get_execution(ws, str(f.execution_id))
            self.ui.table(f"pipeline execution {ex.id} ({ex.status})", ["step", "status", "seconds", "outputs"],
                          [(s.name, s.status, _seconds(s), _brief(s.outputs)) for s in ex.steps])
            ev = ex.step("evaluate").outputs
            reg = ex.step("register")
            check(reg.status == "Succeeded", f"the challenger was not promoted: "
                  f"{ex.step('not_promoted').outputs.get('reason') if ex.step('not_promoted').outputs else ''}")
            v2 = str(reg.outputs["model"])
            metric = ev.get("metric")
            self.ui.say(f"challenger {v2}: {metric} {_num((ev.get('metrics') or {}).get(metric))} vs champion "
                        f"{_num((ev.get('baseline_metrics') or {}).get(metric))} on {ev.get('data')} "
                        f"(+{_num(ev.get('improvement'))}, margin {self.s.margin:g})")
            ep = get_endpoint(ws, ENDPOINT)
            check(ep.config.model_refs() == [v2], f"endpoint {ENDPOINT} serves {ep.config.model_refs()}, not {v2}")
            prod = get_model_version(ws, f"{MODEL}@production").ref
            check(prod == v2, f"{MODEL}@production is {prod}, not {v2}")
            check(traffic.requests > 0 and traffic.failed == 0,
                  f"{traffic.failed} of {traffic.requests} requests failed during the canary: {traffic.errors[:3]}")
            served = ", ".join(f"{k}: {n}" for k, n in sorted(traffic.variants.items()))
            self.ui.say(f"canary {self.s.canary_percent}% for {self.s.bake_s:g}s, then all traffic: endpoint "
                        f"{ENDPOINT} v{ep.version} serves {v2}; {MODEL}@production -> {prod}")
            self.ui.say(f"live traffic meanwhile: {traffic.requests} requests, {traffic.failed} failed "
                        f"(answered by {served})")
            self.result.facts.update(v2=v2, execution=ex.id, traffic=traffic.requests)
            if ev.get("report_path"):
                self.where("evaluation report (challenger vs champion)", ev["report_path"])
            self.where("retraining execution", f"loopml pipelines show {ex.id}")

    # -- 14 ---------------------------------------------------------------------------------------
    def readiness(self) -> None:
        """The production-readiness report of the new version."""
        from loopml.monitor.readiness import readiness

        with self._stage("14. production readiness of the new model"):
            v2 = str(self.result.facts["v2"])
            report = readiness(self.workspace, v2, endpoint=ENDPOINT)
            self.ui.table(f"readiness of {report.model} on endpoint {report.endpoint}", ["", "item", "evidence"],
                          [("✓" if i.passed else "✗", i.title, i.evidence) for i in report.items])
            check(report.passed, f"{v2} is not ready: {', '.join(f'{i.key} ({i.evidence})' for i in report.failed)}")
            self.ui.say(f"{report.model}: all {len(report.items)} items pass")
            self.where("readiness", f"loopml models readiness {v2} --endpoint {ENDPOINT}")


def _seconds(s: Any) -> str:
    start, end = getattr(s, "start_time", None), getattr(s, "end_time", None)
    return f"{(end - start).total_seconds():.1f}" if start is not None and end is not None else ""


def _brief(outputs: dict[str, Any] | None, keys: Sequence[str] = (
        "model", "run_id", "beats_baseline", "improvement", "result", "baseline", "status", "reason",
        "endpoint_version", "alias")) -> str:
    if not outputs:
        return ""
    return ", ".join(f"{k}={_num(outputs[k])}" for k in keys if k in outputs and outputs[k] is not None)[:120]


def _num(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _money(x: Any) -> str:
    return f"{x:,.0f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def run_demo(path: Path, settings: DemoSettings | None = None, ui: DemoUI | None = None) -> DemoResult:
    """Run :class:`ChurnDemo` at ``path``; see its docstring."""
    return ChurnDemo(path, settings, ui).run()


__all__ = ["MARKER", "ChurnDemo", "DemoFailed", "DemoResult", "DemoSettings", "DemoUI", "SilentUI",
           "prepare_path", "retrain_pipeline_text", "run_demo"]
