from __future__ import annotations

import subprocess
import sys

import pytest

import loopml


@pytest.mark.parametrize("name", [n for n in loopml.__all__ if not n.startswith("_")])
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(loopml, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        loopml.NoSuchThing  # noqa: B018


def test_import_is_light() -> None:
    code = "import sys, loopml; print(sorted(m for m in ('pandas', 'xgboost', 'sklearn', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
