"""Load a pipeline from a YAML (or JSON) file, a Python file, or ``module:attribute``.

A YAML pipeline::

    name: churn
    parameters:
      data: {type: string, default: "churn:1"}
      threshold: {type: float, default: 0.8}
    steps:
      - name: train
        kind: train
        args: {algo: xgboost, data: "${params.data}", target: churned}
      - name: check
        kind: condition
        when: "${steps.train.outputs.metrics.train:auc} >= ${params.threshold}"
        if_steps: [register]
        else_steps: [too_low]
      - name: register
        kind: register
        args: {run: "${steps.train.outputs.run_id}", model: churn}
      - name: too_low
        kind: fail
        message: "AUC ${steps.train.outputs.metrics.train:auc} is below ${params.threshold}"

A Python file exposes a :class:`~loopml.pipelines.Pipeline` as ``pipeline``
(or as its only Pipeline object); ``file.py:NAME`` or ``package.module:NAME``
names another attribute, which may also be a function returning one.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from loopml.errors import InvalidInput
from loopml.pipelines.dsl import Pipeline
from loopml.pipelines.steps import load_file_module

YAML_SUFFIXES = (".yaml", ".yml", ".json")


def load_pipeline(source: Pipeline | str | os.PathLike[str]) -> Pipeline:
    """The pipeline ``source`` names, validated.

    Parameters
    ----------
    source
        A :class:`Pipeline`; the path of a YAML/JSON file; the path of a Python
        file (optionally ``file.py:NAME``); or ``package.module:NAME``.

    Raises
    ------
    InvalidInput
        The file is missing or invalid, or holds no pipeline (the message says which).
    """
    if isinstance(source, Pipeline):
        source.validate()
        return source
    text = os.fspath(source)
    path, attr = text, ""
    if ":" in text and not os.path.exists(text):
        head, _, tail = text.rpartition(":")
        if head and tail and "/" not in tail:
            path, attr = head, tail
    if path.lower().endswith(YAML_SUFFIXES):
        if attr:
            raise InvalidInput(f"{text}: a YAML file holds one pipeline; drop ':{attr}'")
        return load_yaml(path)
    if path.lower().endswith(".py"):
        return _from_module(load_file_module(path), attr or None, text)
    if attr:
        try:
            module = importlib.import_module(path)
        except ImportError as e:
            raise InvalidInput(f"cannot import {path!r} for pipeline {text!r}: {e}") from None
        return _from_module(module, attr, text)
    if os.path.exists(text):
        raise InvalidInput(f"{text}: a pipeline file ends in .yaml, .yml, .json or .py")
    raise InvalidInput(f"no pipeline file {text!r}; give a .yaml or .py file, or package.module:NAME")


def load_yaml(path: str | os.PathLike[str]) -> Pipeline:
    """Read and validate a YAML (or JSON) pipeline file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"pipeline file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read pipeline file {p}: {e}") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as e:
        raise InvalidInput(f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                           f"{' '.join(str(e).split())}") from None
    return Pipeline.from_dict(data, source=str(p))


def _from_module(module: Any, attr: str | None, label: str) -> Pipeline:
    if attr:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise InvalidInput(f"{label}: {module.__name__} has no attribute {attr!r}")
        if callable(obj) and not isinstance(obj, Pipeline):
            obj = obj()
        if not isinstance(obj, Pipeline):
            raise InvalidInput(f"{label} is a {type(obj).__name__}, not a loopml Pipeline")
        obj.validate()
        return obj
    found = getattr(module, "pipeline", None)
    if not isinstance(found, Pipeline):
        pipelines = [v for v in vars(module).values() if isinstance(v, Pipeline)]
        if len(pipelines) != 1:
            what = "no Pipeline" if not pipelines else f"{len(pipelines)} Pipelines"
            raise InvalidInput(f"{label} defines {what}; name one as FILE.py:NAME or call it `pipeline`")
        found = pipelines[0]
    found.validate()
    return found


__all__ = ["YAML_SUFFIXES", "load_pipeline", "load_yaml"]
