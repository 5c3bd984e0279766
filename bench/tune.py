#!/usr/bin/env python3
"""Benchmark: loopml tuning of XGBoost against bare Optuna (wall time and best AUC).

    .venv/bin/python bench/tune.py [--trials 40] [--variants random,bayesian,bayesian-prune,hyperband]
                                   [--floor] [--peer] [--holdout] [--gen PATH] [--json]
    .venv/bin/python bench/tune.py --overhead [--trials 200]
    .venv/bin/python bench/tune.py --speedup [--trials 8]

Data and objective are the peer's (``shared/bench/peer_optuna.py``): 20,000 rows
sampled (``random_state=0``) from ``make(100_000, seed=1)`` of
``shared/bench/gen_data.py`` (the rows of the peer's ``ref.parquet``), the
features ``num_*`` and ``cat_*`` (one-hot) and the target ``churn``; the
objective is the **3-fold cross-validated AUC** (``StratifiedKFold(3,
shuffle=True, random_state=0)``; ``HyperparameterTuner(cv_folds=3)``); the
search space is the peer's (learning rate 0.01..0.3 log, depth 2..10,
min_child_weight 0.5..20 log, subsample and colsample_bytree 0.5..1; 200
rounds, 2 threads, ``hist``). ``--holdout`` measures on one stratified
validation third instead.

Variants (each a fresh workspace, one trial at a time):

- ``random``: RandomSampler;
- ``bayesian``: TPE (multivariate);
- ``bayesian-prune``: TPE + the median rule on each boosting round's validation
  AUC averaged over the folds (the folds train in lockstep, round by round);
- ``hyperband``: TPE + Hyperband with the boosting rounds as the resource.

``--floor`` also runs bare Optuna doing the same work in one process (one
booster per fold, trained round by round together, validated on its fold each
round, pruned on the mean: no runs, no job processes, no stored study);
``--peer`` re-runs the peer's own script here (it validates once per fold, and
its "prune" variant reports per fold).

Each loopml line reports the wall time, the CPU seconds of the job (the
coordinating process and its training process) and ``rounds_share``: the
boosting rounds trained as a share of what the trials would have trained
without pruning. On a machine shared with other work, wall time swings with
the load; with ``--threads 1`` (no OpenMP threads spinning for a core) the
CPU seconds measure the work itself, so pruning's saving reads the same at any
load.

Targets (issue 5): bayesian at least matches bare TPE's best (PEERS.md:
0.7421); pruning cuts the wall time by at least 40% at a best AUC within 0.003
of no pruning. ``--overhead``: loopml's per-trial overhead over bare Optuna on
a trivial objective (target < 20 ms). ``--speedup``: 1 against 2 local worker
processes (single-threaded trials, random search; target >= 1.7x on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

PEERS = {  # shared/bench/PEERS.md: Optuna 5.0.0, 40 trials, 3-fold CV AUC, 2 cores
    "random": {"best_auc": 0.7413, "wall_s": 81.0},
    "bayesian": {"best_auc": 0.7421, "wall_s": 47.4},
    "bayesian-prune": {"best_auc": 0.7421, "wall_s": 44.0},
}
ROUNDS = 200
FOLDS = 3
THREADS = 2  # --threads: the peer's n_jobs=2
SEED = 0  # --seed: of the samplers (the folds stay the peer's)
SPACE = {"eta": (0.01, 0.3, "log"), "max_depth": (2, 10), "min_child_weight": (0.5, 20.0, "log"),
         "subsample": (0.5, 1.0, "linear"), "colsample_bytree": (0.5, 1.0, "linear")}
VARIANTS = ("random", "bayesian", "bayesian-prune", "hyperband")


def _data(gen_path: Path) -> tuple[Any, list[str]]:
    """The peer's 20k rows (in the peer's order) and the categorical columns."""
    gen = _common.load_gen(gen_path)
    df = gen.make(100_000, 1).sample(20_000, random_state=0)
    cols = [c for c in df.columns if c.startswith(("num_", "cat_"))]
    df = df[[*cols, "churn"]].reset_index(drop=True)
    df["churn"] = df["churn"].astype(int)
    return df, [c for c in cols if c.startswith("cat_")]


def _holdout(df: Any) -> tuple[Any, Any]:
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(df, test_size=1 / 3, random_state=0, stratify=df["churn"])
    return train.reset_index(drop=True), val.reset_index(drop=True)


def run_loopml(variant: str, trials: int, df: Any, cats: list[str], holdout: bool) -> dict[str, Any]:
    """One tuning job in a fresh workspace; wall time from tuner.fit() to its result."""
    import loopml
    from loopml.prep import Recipe
    from loopml.train import Estimator
    from loopml.tune import HyperparameterTuner

    home = tempfile.mkdtemp(prefix="loopml-bench-tune-")
    ws = loopml.Workspace.init(home)
    try:
        recipe = Recipe.from_dict({"steps": [{"kind": "one_hot", "columns": cats}]})
        est = Estimator("xgboost", {"num_round": ROUNDS, "nthread": THREADS, "tree_method": "hist"}, target="churn",
                        recipe=recipe, ws=ws, problem_type="binary")
        strategy = {"random": "random", "hyperband": "hyperband"}.get(variant, "bayesian")
        early: Any = "median" if variant == "bayesian-prune" else False
        tuner = HyperparameterTuner(est, "validation:auc", ranges=SPACE, strategy=strategy, max_trials=trials,
                                    early_stopping=early, seed=SEED, cv_folds=None if holdout else FOLDS)
        marks: list[float] = []
        cpu = _CPU()
        t0 = time.perf_counter()
        result = tuner.fit(*_holdout(df), on_trial=lambda *a: marks.append(cpu.used())) if holdout else tuner.fit(
            df, on_trial=lambda *a: marks.append(cpu.used()))
        wall = time.perf_counter() - t0
        counts = result.counts()
        work = [t.pruned_step / tuner.max_steps if t.pruned_step and tuner.max_steps else 1.0 for t in result.trials]
        per_trial = [t.duration_s for t in result.trials if t.duration_s is not None]
        return {"bench": "tune", "tool": "loopml", "variant": variant, "trials": trials, "threads": THREADS, "seed": SEED,
                "objective": "holdout AUC" if holdout else f"{FOLDS}-fold CV AUC",
                "best_auc": round(float(result.best_value or 0.0), 4), "wall_s": round(wall, 1),
                "cpu_s": round(marks[-1], 1) if marks else None,
                "pruned": counts.get("PRUNED", 0), "failed": counts.get("FAIL", 0),
                "rounds_share": round(sum(work) / max(len(work), 1), 3),
                "mean_trial_s": round(sum(per_trial) / max(len(per_trial), 1), 2)}
    finally:
        ws.close()


def run_floor(variant: str, trials: int, df: Any, cats: list[str], holdout: bool,
              multivariate: bool = True) -> dict[str, Any]:
    """Bare Optuna doing the same work in one process: no runs, no job process, no stored study.

    Each trial trains one booster per fold, one fold after another, and
    validates it on its held-out fold each round, as a loopml cross-validation
    job does; for pruning it reports the mean over the folds so far on one step
    scale (fold 2's first round follows fold 1's last). Folds trained round by
    round together (as ``xgboost.cv``) would draw XGBoost's process-wide random
    numbers in another order and so train slightly different trees.
    """
    import numpy as np
    import optuna
    import pandas as pd
    import xgboost as xgb
    from sklearn.model_selection import StratifiedKFold

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X = pd.get_dummies(df.drop(columns=["churn"]), columns=cats, dtype=np.float32).to_numpy(np.float32)
    y = df["churn"].to_numpy()
    if holdout:
        train, val = _holdout(df)
        both = pd.get_dummies(pd.concat([train, val]), columns=cats, dtype=np.float32)
        Xb, yb = both.drop(columns=["churn"]).to_numpy(np.float32), both["churn"].to_numpy()
        n = len(train)
        pairs = [(xgb.DMatrix(Xb[:n], label=yb[:n]), xgb.DMatrix(Xb[n:], label=yb[n:]))]
    else:
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(X, y)
        pairs = [(xgb.DMatrix(X[tr], label=y[tr]), xgb.DMatrix(X[va], label=y[va])) for tr, va in folds]
    prune = variant in ("bayesian-prune", "hyperband")
    steps = ROUNDS * len(pairs)
    every = -(-steps // 50)  # report as often as loopml does

    def objective(trial: optuna.Trial) -> float:
        p = {"objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist", "nthread": THREADS,
             "eta": trial.suggest_float("eta", 0.01, 0.3, log=True), "max_depth": trial.suggest_int("max_depth", 2, 10),
             "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20, log=True),
             "subsample": trial.suggest_float("subsample", 0.5, 1.0),
             "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0)}
        finals: list[float] = []
        step = 0
        for dtr, dva in pairs:  # one fold after another, as loopml (and xgb.train per fold) does
            booster = xgb.Booster(p, [dtr, dva])
            auc = 0.0
            for i in range(ROUNDS):
                booster.update(dtr, i)
                auc = float(booster.eval_set([(dva, "v")], i).rsplit(":", 1)[1])
                step += 1
                if prune and step % every == 0:  # the mean over the folds so far, on one step scale
                    trial.report((sum(finals) + auc) / (len(finals) + 1), step)
                    if trial.should_prune():
                        raise optuna.TrialPruned()
            finals.append(auc)
        return float(np.mean(finals))

    sampler = optuna.samplers.RandomSampler(seed=SEED) if variant == "random" else optuna.samplers.TPESampler(
        seed=SEED, multivariate=multivariate)
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if variant == "bayesian-prune":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=ROUNDS // 10)
    elif variant == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=-(-steps // 9), max_resource=steps)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    t0, c0 = time.perf_counter(), time.process_time()
    study.optimize(objective, n_trials=trials)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    pruned = sum(1 for t in study.trials if t.state == optuna.trial.TrialState.PRUNED)
    tool = f"optuna-{optuna.__version__}-floor" + ("" if multivariate or variant == "random" else "-univariate")
    return {"bench": "tune", "tool": tool, "variant": variant, "trials": trials, "seed": SEED,
            "best_auc": round(study.best_value, 4), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "pruned": pruned}


def run_peer(gen_path: Path, variant: str) -> dict[str, Any]:
    """The peer's own script (3-fold CV, 40 trials) on this machine."""
    peer = gen_path.parent / "peer_optuna.py"
    which = {"random": "random", "bayesian": "tpe", "bayesian-prune": "tpe-prune"}[variant]
    data_dir = _common.BENCH / "_data" / "tune_ref"
    if not (data_dir / "ref.parquet").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _common.load_gen(gen_path).make(100_000, 1).to_parquet(data_dir / "ref.parquet", index=False)
    out = subprocess.run([sys.executable, str(peer), str(data_dir), which], capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        return {"bench": "tune", "tool": "optuna-peer", "variant": variant, "error": out.stderr[-500:]}
    res: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


class _CPU:
    """CPU seconds of this process and of the child processes it starts from now on (its training jobs)."""

    def __init__(self) -> None:
        import psutil

        self.me = psutil.Process()
        self.base = {c.pid: self._of(c) for c in self.me.children(recursive=True)}
        self.start = self._of(self.me) + sum(self.base.values())

    @staticmethod
    def _of(p: Any) -> float:
        import psutil

        try:
            return float(sum(p.cpu_times()[:2]))
        except psutil.Error:  # it ended meanwhile
            return 0.0

    def used(self) -> float:
        """Seconds since this object was made (children that ended since are lost: read while they live)."""
        total = self._of(self.me)
        for c in self.me.children(recursive=True):
            total += self._of(c) if c.pid not in self.base else max(0.0, self._of(c) - self.base[c.pid])
        return total - (self.start - sum(self.base.values()))


def run_overhead(trials: int) -> dict[str, Any]:
    """Per-trial overhead on a trivial objective: loopml trials against bare Optuna trials.

    The trivial objective trains XGBoost for one round on 60 rows and one
    feature and measures its AUC: on the held-out rows (``fit``: a fifth of
    them) or by 3-fold cross-validation (``cv3``). Bare Optuna does exactly
    that in its own process with an in-memory study; a loopml trial is a
    tracked child run, a job in the warm training process (with a model
    package for ``fit``) and a study in the workspace's SQLite database. Wall
    and CPU time per trial (CPU: this process and the training process; wall
    time suffers most from a loaded machine), after a first trial warmed up.
    """
    import numpy as np
    import optuna
    import pandas as pd
    import xgboost as xgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    import loopml
    from loopml.train import Estimator
    from loopml.tune import HyperparameterTuner

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    df = pd.DataFrame({"x": x, "y": (x + rng.normal(size=60) > 0).astype(int)})
    X, y = df[["x"]].to_numpy(), df["y"].to_numpy()
    holdout = [tuple(train_test_split(np.arange(60), test_size=0.2, random_state=0, stratify=y))]
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    out: dict[str, Any] = {"bench": "tune-overhead", "trials": trials}
    for label, splits in (("fit", holdout), ("cv3", folds)):
        def objective(trial: optuna.Trial, splits: list[Any] = splits) -> float:
            p = {"objective": "binary:logistic", "nthread": 1, "max_depth": trial.suggest_int("max_depth", 1, 6)}
            aucs = []
            for tr, va in splits:
                booster = xgb.train(p, xgb.DMatrix(X[tr], label=y[tr]), 1)
                aucs.append(roc_auc_score(y[va], booster.predict(xgb.DMatrix(X[va]))))
            return float(np.mean(aucs))

        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(objective, n_trials=3)
        t0, c0 = time.perf_counter(), time.process_time()
        study.optimize(objective, n_trials=trials)
        bare_wall, bare_cpu = (time.perf_counter() - t0) / trials, (time.process_time() - c0) / trials
        out.update({f"bare_{label}_wall_ms": round(bare_wall * 1e3, 2), f"bare_{label}_cpu_ms": round(bare_cpu * 1e3, 2)})

        ws = loopml.Workspace.init(tempfile.mkdtemp(prefix="loopml-bench-tune-"))
        try:
            est = Estimator("xgboost", {"num_round": 1, "nthread": 1}, target="y", ws=ws, problem_type="binary")
            marks: list[tuple[float, float]] = []
            meter = _CPU()

            def on_trial(info: Any, done: int, total: int, m: list[tuple[float, float]] = marks,
                         meter: _CPU = meter) -> None:
                m.append((time.perf_counter(), meter.used()))

            tuner = HyperparameterTuner(est, "validation:auc", ranges={"max_depth": (1, 6)}, strategy="random",
                                        max_trials=trials + 1, cv_folds=3 if label == "cv3" else None, refit=False)
            if label == "cv3":
                tuner.fit(df, on_trial=on_trial)
            else:
                tr, va = holdout[0]
                tuner.fit(df.iloc[tr], df.iloc[va], on_trial=on_trial)
            wall = (marks[-1][0] - marks[0][0]) / (len(marks) - 1)
            cpu = (marks[-1][1] - marks[0][1]) / (len(marks) - 1)
        finally:
            ws.close()
        out.update({f"loopml_{label}_wall_ms": round(wall * 1e3, 2), f"loopml_{label}_cpu_ms": round(cpu * 1e3, 2),
                    f"overhead_{label}_wall_ms": round((wall - bare_wall) * 1e3, 2),
                    f"overhead_{label}_cpu_ms": round((cpu - bare_cpu) * 1e3, 2)})
    return out


def run_speedup(trials: int, df: Any, cats: list[str]) -> dict[str, Any]:
    """Single-threaded trials on 1 worker, then 2 at once (the default local executor: threads of this
    process coordinate, each trial trains in its own job process), then 2 in worker processes.

    Both run the same configurations (a grid of ``trials`` points over
    max_depth and eta; a random or Bayesian search would draw other points, of
    other cost, in each worker).
    """
    import loopml
    from loopml.prep import Recipe
    from loopml.train import Estimator
    from loopml.tune import HyperparameterTuner

    out: dict[str, Any] = {"bench": "tune-parallel", "tool": "loopml", "trials": trials}
    for parallel, executor in ((1, "local"), (2, "local"), (2, "processes")):
        ws = loopml.Workspace.init(tempfile.mkdtemp(prefix="loopml-bench-tune-"))
        try:
            recipe = Recipe.from_dict({"steps": [{"kind": "one_hot", "columns": cats}]})
            est = Estimator("xgboost", {"num_round": ROUNDS, "nthread": 1, "tree_method": "hist"}, target="churn",
                            recipe=recipe, ws=ws, problem_type="binary")
            depths = list(range(2, 2 + max(1, trials // 2)))
            tuner = HyperparameterTuner(est, ranges={"max_depth": depths, "eta": [0.05, 0.2][: max(1, min(2, trials))]},
                                        strategy="grid", max_parallel=parallel, seed=0, cv_folds=FOLDS, refit=False,
                                        executor=executor)
            t0 = time.perf_counter()
            tuner.fit(df)
            key = f"wall_s_{parallel}" + ("_processes" if executor == "processes" else "")
            out[key] = round(time.perf_counter() - t0, 1)
        finally:
            ws.close()
    out["speedup"] = round(out["wall_s_1"] / out["wall_s_2"], 2)
    out["speedup_processes"] = round(out["wall_s_1"] / out["wall_s_2_processes"], 2)
    return out


def run_seeds(seeds: list[int], trials: int, df: Any, cats: list[str], holdout: bool) -> None:
    """Best AUC of the bayesian strategy over several sampler seeds: one 40-trial search is noisy.

    For each seed: loopml (multivariate TPE), and bare Optuna on the same objective in one process
    with multivariate TPE (the same sampler) and with univariate TPE (the peer's ``TPESampler(seed)``).
    """
    global SEED
    rows: dict[str, list[float]] = {"loopml": [], "floor multivariate TPE": [], "floor univariate TPE": []}
    for seed in seeds:
        SEED = seed
        for label, fn in (("loopml", lambda: run_loopml("bayesian", trials, df, cats, holdout)),
                          ("floor multivariate TPE", lambda: run_floor("bayesian", trials, df, cats, holdout)),
                          ("floor univariate TPE",
                           lambda: run_floor("bayesian", trials, df, cats, holdout, multivariate=False))):
            res = fn()
            res["seed"] = seed
            rows[label].append(res["best_auc"])
            print(json.dumps(res), flush=True)
    print(f"\nbest AUC over seeds {', '.join(map(str, seeds))} ({trials} trials each):")
    for label, vals in rows.items():
        print(f"  {label:<24} {' '.join(f'{v:.4f}' for v in vals)}   mean {sum(vals) / len(vals):.4f}")
    ours = sum(rows["loopml"]) / len(seeds)
    bare = sum(rows["floor univariate TPE"]) / len(seeds)
    print(f"bayesian: mean best {ours:.4f} vs bare TPE {bare:.4f} (target: at least as good): "
          f"{_common.verdict(ours >= bare - 1e-4)}")


def main() -> None:
    global THREADS, SEED
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=None, help="trials per run (default 40; --overhead 100; "
                                                              "--speedup 8)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated: {', '.join(VARIANTS)}")
    ap.add_argument("--floor", action="store_true", help="also run bare Optuna on the same objective")
    ap.add_argument("--peer", action="store_true", help="also re-run the peer's 3-fold script here")
    ap.add_argument("--holdout", action="store_true", help="one held-out third instead of 3-fold CV")
    ap.add_argument("--seed", type=int, default=SEED, help="seed of the samplers (default 0, as the peer)")
    ap.add_argument("--seeds", help="instead: best AUC of bayesian over these seeds (e.g. 0,1,2), loopml beside "
                                    "bare Optuna's TPE, multivariate (loopml's) and univariate (the peer's)")
    ap.add_argument("--threads", type=int, default=THREADS,
                    help="XGBoost threads per trial (1: CPU seconds measure the work even on a busy machine)")
    ap.add_argument("--overhead", action="store_true", help="instead: per-trial overhead on a trivial objective")
    ap.add_argument("--speedup", action="store_true",
                    help="instead: 1 vs 2 local workers, single-threaded trials (target >= 1.7x)")
    ap.add_argument("--gen", help=_common.GEN_HELP)
    ap.add_argument("--src", help="import loopml from this src folder")
    ap.add_argument("--json", action="store_true", help="print one JSON line per result only")
    args = ap.parse_args()
    THREADS, SEED = args.threads, args.seed
    _common.use_src(args.src)
    logging.basicConfig(level=logging.WARNING)
    load = f"# {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    if args.overhead:
        res = run_overhead(args.trials or 100)
        print(load, file=sys.stderr)
        print(json.dumps(res))
        for label in ("fit", "cv3"):
            wall, cpu = res[f"overhead_{label}_wall_ms"], res[f"overhead_{label}_cpu_ms"]
            print(f"per-trial overhead over bare Optuna ({label}): {wall:.1f} ms wall, {cpu:.1f} ms CPU "
                  f"(target < 20 ms): {_common.verdict(wall < 20)}")
        return
    gen_path = _common.find_gen(args.gen)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        sys.exit(f"unknown variant {bad[0]!r}; choose from {', '.join(VARIANTS)}")
    df, cats = _data(gen_path)
    if args.speedup:
        res = run_speedup(args.trials or 8, df, cats)
        print(json.dumps(res))
        print(f"2 workers vs 1: {res['speedup']}x (target 1.7x): {_common.verdict(res['speedup'] >= 1.7)}; "
              f"with a worker process per parallel trial (executor='processes'): {res['speedup_processes']}x")
        return
    trials = args.trials or 40
    if args.seeds:
        run_seeds([int(x) for x in args.seeds.split(",")], trials, df, cats, args.holdout)
        return
    print(f"{load}; {len(df)} rows, {'holdout third' if args.holdout else f'{FOLDS}-fold CV'}; {trials} trials "
          f"each; {THREADS} thread(s) per trial", file=sys.stderr)
    results: list[dict[str, Any]] = []
    for v in variants:
        runs = [("loopml", lambda v=v: run_loopml(v, trials, df, cats, args.holdout))]
        if args.floor:
            runs.append(("floor", lambda v=v: run_floor(v, trials, df, cats, args.holdout)))
        if args.peer and v in PEERS:
            runs.append(("peer", lambda v=v: run_peer(gen_path, v)))
        for _, fn in runs:
            res = fn()
            results.append(res)
            print(json.dumps(res), flush=True)
    if args.json:
        return
    print(f"\n{'variant':<16}{'tool':<26}{'best AUC':>10}{'wall s':>9}{'CPU s':>8}{'pruned':>8}   "
          "PEERS.md (3-fold CV)")
    for r in results:
        peer = PEERS.get(r["variant"], {})
        ref = f"{peer['best_auc']:.4f} in {peer['wall_s']:.1f} s" if peer else ""
        print(f"{r['variant']:<16}{r.get('tool', ''):<26}{r.get('best_auc', float('nan')):>10.4f}"
              f"{r.get('wall_s', float('nan')):>9.1f}{r.get('cpu_s') or float('nan'):>8.1f}{r.get('pruned', 0):>8}"
              f"   {ref}")
    ours = {r["variant"]: r for r in results if r.get("tool") == "loopml"}
    if "bayesian" in ours:
        b = ours["bayesian"]
        print(f"bayesian: best AUC {b['best_auc']:.4f} vs bare TPE {PEERS['bayesian']['best_auc']:.4f} "
              f"(target: at least as good): {_common.verdict(b['best_auc'] >= PEERS['bayesian']['best_auc'])} "
              "(one seed of a noisy search; --seeds 0,1,2 compares means over seeds)")
    for pv in ("bayesian-prune", "hyperband"):
        if "bayesian" in ours and pv in ours:
            b, p = ours["bayesian"], ours[pv]
            change = p["wall_s"] / b["wall_s"] - 1
            cpu = p["cpu_s"] / b["cpu_s"] - 1 if p.get("cpu_s") and b.get("cpu_s") else float("nan")
            close = b["best_auc"] - p["best_auc"] <= 0.003
            print(f"{pv}: wall time {change:+.0%}, CPU {cpu:+.0%}, best AUC {p['best_auc'] - b['best_auc']:+.4f}  "
                  f"(target -40% within 0.003): wall {_common.verdict(change <= -0.4 and close)}, "
                  f"CPU {_common.verdict(cpu <= -0.4 and close)}")


if __name__ == "__main__":
    main()
