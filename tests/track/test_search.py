from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from loopml import InvalidInput, NotFound, Workspace
from loopml.track import Tracker
from loopml.track._filter import parse_filter, parse_order_by

#: name, experiment, params, metrics, tags, fails
RUNS: list[tuple[str, str, dict[str, Any], dict[str, float], dict[str, str], bool]] = [
    ("r1", "churn", {"depth": 3, "model": "xgb"}, {"auc": 0.70, "loss": 0.9}, {"team": "a"}, False),
    ("r2", "churn", {"depth": 6, "model": "xgb"}, {"auc": 0.91, "loss": 0.3}, {"team": "a"}, False),
    ("r3", "churn", {"depth": 10, "model": "lgbm"}, {"auc": 0.95, "loss": 0.2}, {"team": "b"}, False),
    ("r4", "churn", {"depth": 6, "model": "LGBM"}, {"auc": 0.88}, {}, True),
    ("r5", "fraud", {"depth": 6, "model": "xgb"}, {"auc": 0.99, "loss": 0.1}, {"team": "a"}, False),
    ("r6", "fraud", {"model": "linear"}, {}, {"team": "c", "n": "12"}, False),
]


@pytest.fixture
def runs(any_tracker: Tracker) -> Tracker:
    for name, exp, params, metrics, tags, fails in RUNS:
        with any_tracker.start_run(experiment=exp, name=name, tags=tags) as run:
            run.log_params(params)
            run.log_metric("auc", 0.5, step=0)  # an older point: the latest value is compared
            if metrics:
                run.log_metrics(metrics, step=5)
            if fails:
                run.set_status("FAILED", message="diverged")
    return any_tracker


def names(t: Tracker, filter: str | None = None, **kw: object) -> list[str]:
    return sorted(r.name for r in t.search_runs(filter=filter, **kw))  # type: ignore[arg-type]


#: filter -> the runs it must find (checked together, on one workspace per database)
CASES: list[tuple[str, list[str]]] = [
    ("metrics.auc > 0.9", ["r2", "r3", "r5"]),
    ("metrics.auc >= 0.91", ["r2", "r3", "r5"]),
    ("metrics.auc < 0.88", ["r1", "r6"]),
    ("metrics.auc <= 0.88", ["r1", "r4", "r6"]),
    ("metrics.auc = 0.95", ["r3"]),
    ("metrics.auc != 0.95", ["r1", "r2", "r4", "r5", "r6"]),
    ("metrics.loss < 0.25", ["r3", "r5"]),
    ("metric.loss > 1e-3", ["r1", "r2", "r3", "r5"]),
    # params: numbers compare as numbers ("10" > 5), quoted values as text
    ("params.depth = 6", ["r2", "r4", "r5"]),
    ("params.depth = 6.0", ["r2", "r4", "r5"]),
    ("params.depth > 5", ["r2", "r3", "r4", "r5"]),
    ("params.depth >= 10", ["r3"]),
    ("params.depth <= 3", ["r1"]),
    ("params.depth != 6", ["r1", "r3"]),
    ("params.depth = '6'", ["r2", "r4", "r5"]),
    ("params.depth < '5'", ["r1", "r3"]),  # text: '10' < '5'
    ("params.model = 'xgb'", ["r1", "r2", "r5"]),
    ("params.model != \"xgb\"", ["r3", "r4", "r6"]),
    ("params.model LIKE '%gb%'", ["r1", "r2", "r3", "r5"]),
    ("params.model ILIKE 'LGBM'", ["r3", "r4"]),
    ("params.model like 'lin%'", ["r6"]),
    ("tags.team = 'a'", ["r1", "r2", "r5"]),
    ("tags.team != 'a'", ["r3", "r6"]),
    ("tags.n > 11", ["r6"]),
    ("attributes.status = 'FAILED'", ["r4"]),
    ("attributes.status = 'finished'", ["r1", "r2", "r3", "r5", "r6"]),
    ("attributes.status != 'FINISHED'", ["r4"]),
    ("attributes.name LIKE 'r%'", ["r1", "r2", "r3", "r4", "r5", "r6"]),
    ("attributes.name = 'r3'", ["r3"]),
    ("run_name = 'r3'", ["r3"]),
    ("attributes.experiment = 'fraud'", ["r5", "r6"]),
    ("attributes.start_time > '2000-01-01'", ["r1", "r2", "r3", "r4", "r5", "r6"]),
    ("attributes.start_time < '2000-01-01T00:00:00Z'", []),
    ("attributes.start_time > 946684800000", ["r1", "r2", "r3", "r4", "r5", "r6"]),
    ("attributes.end_time < 946684800000", []),
    # and-combinations
    ("metrics.auc > 0.9 and params.depth = 6", ["r2", "r5"]),
    ("metrics.auc > 0.9 AND params.model = 'xgb' and tags.team = 'a' and "
     "attributes.experiment = 'churn'", ["r2"]),
    ("params.depth = 6 and attributes.status = 'FAILED'", ["r4"]),
    ("metrics.`auc` > 0.9 and params.\"depth\" > 6", ["r3"]),
    ("", ["r1", "r2", "r3", "r4", "r5", "r6"]),
]


def test_filters(runs: Tracker) -> None:
    wrong = {f: (names(runs, f), expected) for f, expected in CASES if names(runs, f) != expected}
    assert not wrong, "filter -> (found, expected): " + repr(wrong)


def test_run_id_filter_and_values_with_quotes(runs: Tracker) -> None:
    target = runs.search_runs(filter="attributes.name = 'r2'")[0]
    assert names(runs, f"attributes.run_id = '{target.id}'") == ["r2"]
    with runs.start_run(experiment="churn", name="it's") as r:
        r.log_param("note", 'say "hi"')
    assert names(runs, "attributes.name = 'it''s'") == ["it's"]
    assert names(runs, "params.note = 'say \"hi\"'") == ["it's"]


def test_order_by_and_limits(runs: Tracker) -> None:
    order = [r.name for r in runs.search_runs(order_by=["metrics.loss"])]
    assert order[:4] == ["r5", "r3", "r2", "r1"] and set(order[4:]) == {"r4", "r6"}  # missing last
    order = [r.name for r in runs.search_runs(order_by="metrics.auc DESC")]
    assert order == ["r5", "r3", "r2", "r4", "r1", "r6"]
    order = [r.name for r in runs.search_runs(order_by=["params.depth desc", "attributes.name"])]
    assert order == ["r3", "r2", "r4", "r5", "r1", "r6"]
    order = [r.name for r in runs.search_runs(order_by=["name DESC"], max_results=2)]
    assert order == ["r6", "r5"]
    newest_first = [r.name for r in runs.search_runs()]
    assert newest_first == ["r6", "r5", "r4", "r3", "r2", "r1"]
    assert runs.search_runs(order_by=["start_time ASC"])[0].name == "r1"


def test_experiment_scope(runs: Tracker) -> None:
    assert names(runs, experiment="fraud") == ["r5", "r6"]
    assert names(runs, "metrics.auc > 0.9", experiment=["churn"]) == ["r2", "r3"]
    assert len(runs.search_runs(experiment=["churn", "fraud"])) == 6
    with pytest.raises(NotFound, match="no experiment named 'nope' \\(known: churn, fraud\\)"):
        runs.search_runs(experiment="nope")


def test_search_returns_full_records(runs: Tracker) -> None:
    (r3,) = runs.search_runs(filter="attributes.name = 'r3'")
    assert r3.params == {"depth": "10", "model": "lgbm"}
    assert r3.metrics == {"auc": 0.95, "loss": 0.2} and r3.tags == {"team": "b"}
    assert r3.status == "FINISHED" and r3.experiment == "churn"
    (r4,) = runs.search_runs(filter="attributes.status = 'FAILED'")
    assert r4.message == "diverged"


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ("metrics.auc is 0.9", "at position 13: expected an operator (= != > >= < <= LIKE ILIKE), found 'is 0.9'"),
        ("metrics.auc > 0.9 or params.x = 1", "at position 19: 'or' is not supported"),
        ("metrics.auc > 0.9 params.x = 1", "at position 19: expected 'and' or the end of the filter"),
        ("metrics.auc >", "at position 14: expected a number or a 'quoted' text, found the end"),
        ("auc > 0.9", "at position 1: expected metrics.KEY, params.KEY, tags.KEY or attributes.NAME"),
        ("metrics. > 1", "at position 9: expected a key after metrics."),
        ("params.x = 'open", "at position 12: unterminated '-quoted text"),
        ("metrics.auc > 'high'", "at position 15: metrics.auc compares with a number"),
        ("metrics.auc LIKE '0.9%'", "at position 13: metrics compare with = != > >= < <=, not LIKE"),
        ("params.x LIKE 3", "at position 15: LIKE needs a 'quoted' pattern"),
        ("attributes.colour = 'red'", "at position 1: unknown attribute 'colour'"),
        ("attributes.status = 'DONE'", "at position 21: status is one of RUNNING, FINISHED, FAILED, KILLED"),
        ("attributes.name = 3", "at position 19: attributes.name compares with 'quoted' text"),
        ("attributes.start_time > 'yesterday'", "at position 25: start_time compares with epoch milliseconds"),
        ("metrics.auc > 0.9 and", "at position 22: expected metrics.KEY"),
        ("metrics.auc > 0.9; drop table runs", "at position 18: expected 'and' or the end"),
        ("params.x = 1 and 1 = 1", "at position 18: expected metrics.KEY"),
    ],
)
def test_bad_filters_name_the_position(tracker: Tracker, filter: str, message: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        tracker.search_runs(filter=filter)
    text = str(exc.value)
    assert message in text, text
    assert "\n" not in text and text.startswith(f"invalid filter {filter!r}")


@pytest.mark.parametrize(
    ("order", "message"),
    [
        (["metrics.auc DOWN"], "at position 13: expected ASC, DESC or the end"),
        (["colour"], "at position 1: expected metrics.KEY"),
    ],
)
def test_bad_order_by(tracker: Tracker, order: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        tracker.search_runs(order_by=order)
    with pytest.raises(InvalidInput, match="max_results must be a positive integer"):
        tracker.search_runs(max_results=0)


def test_values_are_parameters_never_sql(runs: Tracker) -> None:
    assert names(runs, "params.model = 'x'' OR 1=1 --'") == []
    assert len(runs.search_runs()) == 6  # nothing dropped or altered


def test_parser_pieces() -> None:
    (c,) = parse_filter("tags.`my tag` ILIKE 'A%'")
    assert (c.entity, c.key, c.op, c.value) == ("tag", "my tag", "ILIKE", "A%")
    (c,) = parse_filter("attr.id == 'run-1'")
    assert (c.entity, c.key, c.op) == ("attribute", "run_id", "=")
    assert parse_filter("  ") == [] and parse_filter(None) == []
    (k,) = parse_order_by("metrics.val/auc desc")
    assert (k.entity, k.key, k.descending) == ("metric", "val/auc", True)


def test_time_filters_follow_the_clock(runs: Tracker) -> None:
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    assert names(runs, f"attributes.start_time > '{soon.isoformat()}'") == []
    assert len(names(runs, f"attributes.end_time <= {int(soon.timestamp() * 1000)}")) == 6


def test_metric_names_with_at_sign_log_and_filter(ws: Workspace) -> None:
    with Tracker(ws) as t:
        with t.start_run(experiment="rank") as run:
            run.log_metric("validation:ndcg@10", 0.8, step=1)
        t.close()
        found = Tracker(ws).search_runs(experiment="rank", filter="metrics.validation:ndcg@10 > 0.5")
    assert [r.id for r in found] == [run.id]
