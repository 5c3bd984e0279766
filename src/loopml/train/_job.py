"""The training job: ``python -m loopml.train._job --events FD [--preload MODULE ...]``.

The caller (:class:`loopml.train.Estimator`) starts this process, which
imports the algorithm's library while the caller prepares, then reads one
JSON spec line on stdin, trains, writes a model package into the spec's
``output_dir`` and exits. Logs go to stdout/stderr (the caller streams them);
structured events go as JSON lines to the file descriptor ``FD``:

- ``{"event": "metric", "step": 3, "metrics": {"validation:auc": 0.91}}``
- ``{"event": "result", "metrics": {...}, "package_sha256": ..., ...}``
- ``{"event": "error", "type": "InvalidInput", "message": ...}``

The job never touches the metadata database: the caller resolved dataset
versions to artifact hashes and owns the run. :func:`run_job` is the whole
job as a function, callable in-process for debugging.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from loopml.errors import InvalidInput, LoopmlError

log = logging.getLogger("loopml.train.job")

Emit = Callable[[dict[str, Any]], None]


def _describe(source: Mapping[str, Any]) -> str:
    return str(source.get("ref") or source.get("description") or source.get("kind"))


def run_job(spec: Mapping[str, Any], emit: Emit) -> dict[str, Any]:
    """Train as ``spec`` says; report metrics through ``emit``; return the result.

    Parameters
    ----------
    spec
        The job spec written by the Estimator (algorithm, hyperparameters,
        target, roles, data sources, recipe, output folder).
    emit
        Receives ``{"event": "metric", ...}`` dicts during training.

    Returns
    -------
    dict
        ``metrics``, ``package_sha256``, ``problem_type``, ``classes``, row counts and timings.
    """
    import numpy as np

    from loopml.train._metrics import prefixed
    from loopml.train._prepare import (
        default_recipe,
        encode_target,
        encode_with,
        infer_problem_type,
        input_schema,
        output_schema,
        read_source,
    )
    from loopml.train.algorithms import resolve_algorithm
    from loopml.train.algorithms._base import CLASSIFICATION, SUPERVISED, TabularAlgorithm
    from loopml.train.package import Signature, save_model_package

    started = time.monotonic()
    cls = resolve_algorithm(spec["algorithm"], spec.get("algorithm_class"))
    params = cls.check_hyperparameters(spec.get("hyperparameters"))
    target: str | None = spec.get("target")
    roles: dict[str, str] = dict(spec.get("roles") or {})
    seed = int(spec.get("seed") or 0)
    root = spec.get("artifact_root")

    t0 = time.monotonic()
    train_df = read_source(spec["train"], root)
    val_df = read_source(spec["validation"], root) if spec.get("validation") else None
    timings = {"read_s": time.monotonic() - t0}
    log.info("train data %s: %d rows x %d columns", _describe(spec["train"]), len(train_df), train_df.shape[1])
    if val_df is not None:
        log.info("validation data %s: %d rows", _describe(spec["validation"]), len(val_df))

    for what, df in (("training", train_df), ("validation", val_df)):
        if df is None:
            continue
        needed = [c for c in [target, *roles.values()] if c]
        for col in needed:
            if col not in df.columns:
                label = "target" if col == target else "role"
                raise InvalidInput(
                    f"the {what} data has no {label} column {col!r}; columns: {', '.join(map(str, df.columns))}"
                )

    y_raw = train_df[target] if target else None
    problem_type, reason = infer_problem_type(cls, y_raw, spec.get("problem_type"), roles)
    log.info("algorithm %s, problem type %s (%s)", cls.name, problem_type, reason)
    for role in cls.required_roles.get(problem_type, ()):
        if role not in roles:
            raise InvalidInput(
                f"{cls.name} {problem_type} needs a {role!r} column: pass roles={{'{role}': COLUMN}} "
                f"(--role {role}=COLUMN)"
            )
    supervised = problem_type in SUPERVISED
    if supervised and target is None:
        raise InvalidInput(f"{cls.name} {problem_type} needs a target column; pass target=COLUMN (--target)")

    # rows without a target teach nothing
    if target is not None and supervised:
        for name, df in (("training", train_df), ("validation", val_df)):
            if df is None:
                continue
            missing = int(df[target].isna().sum())
            if missing:
                log.info("dropping %d %s rows with a missing target", missing, name)
        train_df = train_df[train_df[target].notna()]
        if val_df is not None:
            val_df = val_df[val_df[target].notna()]
        if not len(train_df):
            raise InvalidInput(f"the training data has no rows with a value in the target {target!r}")

    classes: list[Any] | None = None
    codes = codes_val = None
    if target is not None:
        codes, classes = encode_target(train_df[target], problem_type, target)
        if val_df is not None:
            if classes is not None:
                codes_val = encode_with(val_df[target], classes, target, "validation")
            else:
                codes_val, _ = encode_target(val_df[target], problem_type, target, "validation")
        if classes is not None:
            log.info("%d classes: %s", len(classes), ", ".join(map(repr, classes[:10])))

    # the recipe: fitted here, given fitted, or the default encoding of text/date columns
    from loopml.prep import FittedRecipe, Recipe

    t0 = time.monotonic()
    rspec = spec.get("recipe")
    recipe_doc: dict[str, Any] = {}
    fitted: FittedRecipe | None = None
    recipe: Recipe | None = None
    exclude = [c for c in [target, *roles.values()] if c]
    if rspec is None:
        recipe = default_recipe(train_df, exclude, cls.categorical_encoding)
        if recipe is not None:
            recipe_doc = {"auto": True}
            log.info("no recipe given: encoding %s", "; ".join(
                f"{s.kind} {', '.join(getattr(s, 'columns', []))}" for s in recipe.steps))
    elif rspec["kind"] == "spec":
        recipe = Recipe.from_dict(rspec["spec"])
        recipe_doc = {"fitted_in_job": True, **({"source": rspec["source"]} if rspec.get("source") else {})}
    else:
        fitted = FittedRecipe.from_bytes(Path(rspec["path"]).read_bytes())
        recipe_doc = {k: rspec[k] for k in ("ref", "id") if rspec.get(k)}
    if recipe is not None:
        fitted, Xt = recipe.fit_transform(train_df, target=target if supervised else None)
        log.info("fitted the recipe (%d steps) on %d rows -> %d columns", len(fitted.steps), len(train_df),
                 Xt.shape[1])
    elif fitted is not None:
        Xt = fitted.transform(train_df)
        log.info("applied recipe %s -> %d columns", recipe_doc.get("ref", ""), Xt.shape[1])
    else:
        Xt = train_df
    Xv = fitted.transform(val_df) if (fitted is not None and val_df is not None) else val_df
    timings["recipe_s"] = time.monotonic() - t0

    def _split(X: Any, source: Any, y_codes: Any) -> tuple[Any, Any]:
        if X is None:
            return None, None
        y_out = None
        if y_codes is not None:
            import pandas as pd

            y_out = pd.Series(y_codes, index=source.index).loc[X.index].to_numpy()
        if target is not None and target in X.columns:
            X = X.drop(columns=[target])
        return X, y_out

    X, y = _split(Xt, train_df, codes)
    X_val, y_val = _split(Xv, val_df, codes_val)
    if problem_type in CLASSIFICATION and y is not None and len(np.unique(y)) < 2:
        raise InvalidInput(f"after the recipe the target {target!r} has one class left in the training data")

    algo = cls(params, problem_type=problem_type, seed=seed, roles=roles,
               n_classes=len(classes) if classes is not None else None)

    last_log = [0.0]

    def on_metric(step: int, metrics: Mapping[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items()}
        emit({"event": "metric", "step": int(step), "metrics": clean})
        now = time.monotonic()
        if step == 1 or now - last_log[0] >= 1.0:
            last_log[0] = now
            log.info("[%d] %s", step, "  ".join(f"{k}={v:.6g}" for k, v in clean.items()))

    log.info("training %s on %d rows x %d features", cls.name, len(X), X.shape[1] - len(
        [c for c in roles.values() if c in X.columns]))
    t0 = time.monotonic()
    algo.fit(X, y, X_val, y_val, callback=on_metric)
    timings["fit_s"] = time.monotonic() - t0
    log.info("trained in %.2f s", timings["fit_s"])

    t0 = time.monotonic()
    metrics = prefixed("train", algo.score(X, y))
    if X_val is not None:
        metrics.update(prefixed("validation", algo.score(X_val, y_val)))
    timings["score_s"] = time.monotonic() - t0
    for k, v in sorted(metrics.items()):
        log.info("%s = %.6g", k, v)

    # the signature: what callers send (before the recipe) and what they get back
    drop = {target, *(c for r, c in roles.items() if r not in cls.predict_roles)}
    inputs = [str(c) for c in train_df.columns if c not in drop]
    label_type = None
    if classes is not None and target is not None:
        import pyarrow as pa

        label_type = str(pa.Schema.from_pandas(train_df[[target]], preserve_index=False).field(0).type)
    signature = Signature(
        inputs=input_schema(train_df, inputs, cls.handles_missing),
        outputs=output_schema(problem_type, classes, label_type),
        features=list(algo.features_) if isinstance(algo, TabularAlgorithm) else [],
        classes=classes,
    )
    data_doc = {"train": spec["train"].get("ref") or _describe(spec["train"]), "train_rows": len(X)}
    if spec.get("validation"):
        data_doc.update(validation=spec["validation"].get("ref") or _describe(spec["validation"]),
                        validation_rows=len(X_val))
    t0 = time.monotonic()
    sha = save_model_package(
        spec["output_dir"], algo, signature=signature, target=target, recipe=fitted,
        recipe_ref=recipe_doc, metrics=metrics,
        extra={"run_id": spec.get("run_id"), "training": data_doc,
               "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
    timings["save_s"] = time.monotonic() - t0
    timings["job_s"] = time.monotonic() - started
    log.info("wrote model package %s", sha[:12])
    return {
        "metrics": metrics, "package_sha256": sha, "problem_type": problem_type, "classes": classes,
        "train_rows": len(X), "validation_rows": len(X_val) if X_val is not None else 0,
        "features": signature.features, "recipe": recipe_doc if fitted is not None else None,
        "timings": timings,
    }


def _emitter(fd: int) -> Emit:
    def emit(event: dict[str, Any]) -> None:
        data = (json.dumps(event, default=str, allow_nan=True) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    return emit


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    for name in ("loopml", "loopml.train.job"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)


#: printed on stdout after each job, so the caller knows the job's log is complete
JOB_END = "\x1floopml:job-end"


def _run_one(line: str, emit: Emit) -> int:
    """Run the job of one spec line; report its result or error as an event; return the exit code."""
    try:
        spec = json.loads(line)
        result = run_job(spec, emit)
        sys.stdout.flush()
        emit({"event": "result", **result})
        return 0
    except LoopmlError as e:
        log.error("error: %s", e)
        emit({"event": "error", "type": type(e).__name__, "message": str(e)})
        return 2
    except MemoryError:
        traceback.print_exc()
        emit({"event": "error", "type": "TrainingError", "exception": "MemoryError",
              "message": "the training job ran out of memory (MemoryError); use fewer rows or a smaller model"})
        return 1
    except Exception as e:
        traceback.print_exc()
        message = " ".join(str(e).split()) or type(e).__name__
        emit({"event": "error", "type": "TrainingError", "exception": type(e).__name__,
              "message": f"{type(e).__name__}: {message}"})
        return 1
    finally:
        sys.stderr.flush()
        print(JOB_END, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job process; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m loopml.train._job")
    parser.add_argument("--events", type=int, required=True, help="file descriptor for JSON events")
    parser.add_argument("--preload", action="append", default=[], help="module to import while waiting")
    parser.add_argument("--loop", action="store_true", help="run one job per stdin line until stdin closes")
    args = parser.parse_args(argv)
    _setup_logging()
    emit = _emitter(args.events)
    for mod in args.preload:  # overlap the library's import with the caller's preparation
        try:
            importlib.import_module(mod)
        except Exception as e:  # the spec's own import reports it properly
            log.debug("preload %s failed: %s", mod, e)
    rc = 3  # the caller went away before sending a spec
    while True:
        line = sys.stdin.readline()
        if not line.strip():
            return rc
        rc = _run_one(line, emit)
        if not args.loop:
            return rc


if __name__ == "__main__":
    sys.exit(main())
