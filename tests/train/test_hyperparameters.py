from __future__ import annotations

import math
from pathlib import Path

import pytest

from loopml.errors import InvalidInput
from loopml.train import Hyperparameter, list_algorithms, validate_hyperparameters
from loopml.train.algorithms import get_algorithm
from loopml.train.hyperparameters import parse_assignments


def test_messages_name_the_value_and_the_range() -> None:
    xgb = get_algorithm("xgboost")
    with pytest.raises(InvalidInput, match=r"max_depth=0 is out of range \[1, 20\]"):
        xgb.check_hyperparameters({"max_depth": 0})
    with pytest.raises(InvalidInput) as e:
        xgb.check_hyperparameters({"max_dept": 3})
    msg = str(e.value)
    assert "unknown hyperparameter 'max_dept' for xgboost" in msg
    assert "did you mean 'max_depth'?" in msg and "known: alpha, colsample_bytree" in msg
    with pytest.raises(InvalidInput, match="must be a whole number"):
        xgb.check_hyperparameters({"max_depth": 2.5})
    with pytest.raises(InvalidInput, match="not a choice"):
        xgb.check_hyperparameters({"tree_method": "gpu"})
    with pytest.raises(InvalidInput, match="must be an integer"):
        xgb.check_hyperparameters({"max_depth": "deep"})
    with pytest.raises(InvalidInput, match="finite"):
        xgb.check_hyperparameters({"eta": math.inf})


def test_defaults_fill_in_and_strings_parse() -> None:
    xgb = get_algorithm("xgboost")
    full = xgb.check_hyperparameters({"max_depth": 4.0})
    assert full["max_depth"] == 4 and isinstance(full["max_depth"], int) and full["eta"] == 0.3
    parsed = xgb.check_hyperparameters(parse_assignments(["max_depth=8", "eta=0.05", "tree_method=APPROX"]),
                                       parse_strings=True)
    assert (parsed["max_depth"], parsed["eta"], parsed["tree_method"]) == (8, 0.05, "approx")
    rf = get_algorithm("random_forest").check_hyperparameters({"max_depth": "none", "bootstrap": "false"},
                                                              parse_strings=True)
    assert rf["max_depth"] is None and rf["bootstrap"] is False
    with pytest.raises(InvalidInput, match="NAME=VALUE"):
        parse_assignments(["max_depth"])
    with pytest.raises(InvalidInput, match="true or false"):
        validate_hyperparameters([Hyperparameter("b", "bool", True)], {"b": 1}, "x")


def test_schema_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="needs choices"):
        Hyperparameter("c", "categorical", "a")
    with pytest.raises(ValueError, match="log scale"):
        Hyperparameter("f", "float", 1.0, low=0.0, high=1.0, log=True)
    with pytest.raises(InvalidInput, match="out of range"):
        Hyperparameter("i", "int", 50, low=1, high=10)


@pytest.mark.parametrize("algo", [a.name for a in list_algorithms() if a.__module__.startswith("loopml.")])
def test_every_schema_is_usable_by_a_tuner(algo: str) -> None:
    cls = get_algorithm(algo)
    assert cls.description and cls.problem_types
    defaults = cls.check_hyperparameters({})
    assert set(defaults) == {h.name for h in cls.hyperparameters}
    for h in cls.hyperparameters:
        d = h.to_dict()
        assert d["type"] in ("int", "float", "categorical", "bool", "str") and d["description"]
        assert d["type"] != "str" or not h.tunable
        if h.tunable and h.type in ("int", "float"):
            lo, hi = h.search_range or (None, None)
            assert lo is not None and hi is not None and lo <= hi, h.name
            assert h.validate(lo, algo) is not None and h.validate(hi, algo) is not None
            if h.log:
                assert lo > 0
    described = cls.describe()
    assert described["name"] == algo and len(described["hyperparameters"]) == len(cls.hyperparameters)
    for p in cls.problem_types:
        assert all(m in cls.reported_metrics(p) for m in cls.iteration_metrics.get(p, ()))


def test_str_hyperparameters_take_free_text_and_are_never_tuned() -> None:
    hp = Hyperparameter("model", "str", "package:minilm", tunable=False)
    assert hp.validate("  /models/x ", "text_classifier") == "/models/x"
    assert hp.validate(Path("/models/y"), "text_classifier") == "/models/y"
    assert hp.parse(" hub/id ") == "hub/id"
    assert hp.search_range is None and hp.to_dict()["type"] == "str"
    with pytest.raises(InvalidInput, match="model=3 for text_classifier must be a non-empty string"):
        hp.validate(3, "text_classifier")
    with pytest.raises(InvalidInput, match="non-empty"):
        hp.validate("  ", "text_classifier")
    with pytest.raises(ValueError, match="cannot be tunable"):
        Hyperparameter("path", "str", "x")
    model = get_algorithm("text_classifier").hyperparameters[0]
    assert model.type == "str" and not model.tunable
