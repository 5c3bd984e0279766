"""Search spaces: built from the schema, Python values and YAML; checked before any trial."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from loopml.errors import InvalidInput
from loopml.tune.ranges import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    SearchSpace,
    build_space,
    default_space,
    load_space,
)


def test_default_space_is_the_schemas_tunable_ranges() -> None:
    space = default_space("xgboost", fixed={"num_round": 50})
    names = space.names
    assert "num_round" not in names and space.fixed == {"num_round": 50}
    assert {"eta", "max_depth", "subsample"} <= set(names)
    assert not {"tree_method", "nthread", "max_bin"} & set(names)  # not tunable
    eta = next(r for r in space.ranges if r.name == "eta")
    depth = next(r for r in space.ranges if r.name == "max_depth")
    assert isinstance(eta, ContinuousParameter) and (eta.low, eta.high, eta.scaling_used) == (0.01, 0.3, "log")
    assert isinstance(depth, IntegerParameter) and (depth.low, depth.high) == (3, 10)


def test_build_space_from_python_values() -> None:
    space = build_space("xgboost", {
        "max_depth": (2, 6), "eta": (0.01, 0.3, "linear"), "tree_method": ["hist", "approx"], "num_round": 30,
        "subsample": ContinuousParameter("subsample", 0.5, 0.99, "reverse-log"),
    })
    kinds = {r.name: type(r).__name__ for r in space.ranges}
    assert kinds == {"eta": "ContinuousParameter", "max_depth": "IntegerParameter",
                     "subsample": "ContinuousParameter", "tree_method": "CategoricalParameter"}
    assert space.fixed == {"num_round": 30}
    assert space.names == ["eta", "max_depth", "subsample", "tree_method"]  # schema order
    assert SearchSpace.from_dict(space.to_dict()) == space


@pytest.mark.parametrize(("ranges", "message"), [
    ({"max_depth": (8, 3)}, "range of max_depth: min 8 > max 3"),
    ({"eta": (0.0, 0.3, "log")}, "a log scale needs min > 0"),
    ({"max_depth": (0, 5, "log")}, "a log scale needs min >= 1 for integers, got [0, 5]"),
    ({"subsample": (0.5, 1.0, "reverse-log")}, "reverse-log scaling needs 0 <= min < max < 1"),
    ({"max_depth": (2, 6, "reverse-log")}, "reverse-log scaling is for continuous ranges"),
    ({"max_dept": (2, 6)}, "unknown hyperparameter 'max_dept' for xgboost (did you mean 'max_depth'?)"),
    ({"max_depth": (1, 50)}, "range of max_depth [1, 50] is outside what xgboost accepts: [1, 20]"),
    ({"max_depth": (2.5, 6)}, "range of max_depth: an integer range needs whole numbers, got [2.5, 6]"),
    ({"tree_method": ["hist", "nope"]}, "'nope' is not a choice for xgboost"),
    ({"tree_method": []}, "has no values"),
    ({"eta": (0.1, 0.2, "cubic")}, "scaling 'cubic' of eta is not one of auto, linear, log, reverse-log"),
    ({"tree_method": (1, 2)}, "tree_method of xgboost is categorical; give it a list of values"),
    ({"num_round": 0}, "num_round=0 is out of range"),
    ({}, "the search space has no ranges"),
])
def test_bad_ranges_say_what_is_wrong(ranges: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        build_space("xgboost", ranges)
    assert message in str(e.value)


def test_suggested_values_stay_in_range_on_each_scale() -> None:
    space = build_space("xgboost", {"eta": (0.01, 0.3, "log"), "max_depth": (2, 4),
                                    "subsample": (0.5, 0.99, "reverse-log"), "grow_policy": ["depthwise", "lossguide"]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = []
    for _ in range(200):
        trial = study.ask()
        values = space.suggest(trial)
        seen.append(values)
        study.tell(trial, 0.0)
        assert space.decode(trial.params) == pytest.approx(values)
    assert all(0.01 <= v["eta"] <= 0.3 and 2 <= v["max_depth"] <= 4 and 0.5 <= v["subsample"] <= 0.99
               for v in seen)
    # reverse-log puts most draws near 1 (a linear draw would put ~half below 0.745)
    assert sum(v["subsample"] > 0.745 for v in seen) > 0.75 * len(seen)
    # log: about half the draws below the geometric middle (0.055)
    assert 0.3 < sum(v["eta"] < 0.055 for v in seen) / len(seen) < 0.7
    assert {v["grow_policy"] for v in seen} == {"depthwise", "lossguide"}


def test_grid_and_optuna_encoding() -> None:
    space = build_space("xgboost", {"max_depth": (2, 4), "tree_method": ["hist", "approx"]})
    assert space.grid() == {"max_depth": [2, 3, 4], "tree_method": ["hist", "approx"]}
    assert space.grid_size() == 6
    with pytest.raises(InvalidInput, match="grid search cannot enumerate the continuous range of eta"):
        build_space("xgboost", {"eta": (0.1, 0.2)}).grid()
    rev = ContinuousParameter("subsample", 0.5, 0.9, "reverse-log")
    name, value, dist = rev.to_optuna(0.8) or ("", 0, None)
    assert name == "1-subsample" and value == pytest.approx(0.2) and dist is not None
    assert rev.to_optuna(0.95) is None and IntegerParameter("d", 1, 3).to_optuna(7) is None
    assert CategoricalParameter("c", ("a", "b")).to_optuna("b") is not None


def test_load_space_from_yaml_ours_and_sagemakers(tmp_path: Path) -> None:
    ours = tmp_path / "space.yaml"
    ours.write_text("eta: {min: 0.01, max: 0.3, scaling: log}\nmax_depth: {min: 3, max: 8}\n"
                    "tree_method: [hist, approx]\nnum_round: 40\n")
    space = load_space(ours, "xgboost")
    assert space.names == ["eta", "max_depth", "tree_method"] and space.fixed == {"num_round": 40}
    sm = tmp_path / "sm.yaml"
    sm.write_text(
        "ContinuousParameterRanges:\n  - {Name: eta, MinValue: '0.01', MaxValue: '0.2', ScalingType: Logarithmic}\n"
        "IntegerParameterRanges:\n  - {Name: max_depth, MinValue: '2', MaxValue: '5', ScalingType: Auto}\n"
        "CategoricalParameterRanges:\n  - {Name: tree_method, Values: [hist]}\n"
        "StaticHyperParameters: {num_round: 25}\n")
    space = load_space(sm, "xgboost")
    eta = space.ranges[0]
    assert isinstance(eta, ContinuousParameter) and (eta.low, eta.high, eta.scaling_used) == (0.01, 0.2, "log")
    assert space.fixed == {"num_round": 25} and space.names == ["eta", "max_depth", "tree_method"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_depth: {min: 9, max: 3}\n")
    with pytest.raises(InvalidInput, match="min 9 > max 3"):
        load_space(bad, "xgboost")
    bad.write_text("- not a mapping\n")
    with pytest.raises(InvalidInput, match="must be a mapping of hyperparameter"):
        load_space(bad, "xgboost")
    with pytest.raises(InvalidInput, match="does not exist"):
        load_space(tmp_path / "missing.yaml", "xgboost")
