from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["business", "classification", "clustering", "custom", "ranking", "regression", "report",
           "result", "run"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"loopml.evaluate.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
