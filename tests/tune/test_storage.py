"""The studies' journal in the metadata database: order under concurrent writers, and old RDB studies."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import optuna
import pandas as pd
import pytest
import sqlalchemy as sa

from loopml import Workspace
from loopml.train import Estimator
from loopml.tune import HyperparameterTuner, get_tuning_job, list_tuning_jobs
from loopml.tune._storage import SQLJournalBackend, _make_engine, _open_rdb, open_studies


def _append(url: str, who: int, n: int) -> None:
    engine = _make_engine(url)
    backend = SQLJournalBackend(engine, "race")
    for i in range(n):
        backend.append_logs([{"who": who, "i": i}, {"who": who, "i": i, "second": True}])
    engine.dispose()


def test_concurrent_appends_are_gapless_and_ordered(any_ws: Workspace) -> None:
    url = any_ws.settings.metadata_url
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append, args=(url, who, 40)) for who in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    backend = SQLJournalBackend(_make_engine(url), "race")
    logs = list(backend.read_logs(0))
    assert len(logs) == 240
    for who in range(3):  # each writer's entries in its own order, each batch kept together
        mine = [(e["i"], "second" in e) for e in logs if e["who"] == who]
        assert mine == [(i, s) for i in range(40) for s in (False, True)]
    pairs = [(a["who"], a["i"]) == (b["who"], b["i"]) for a, b in zip(logs[::2], logs[1::2], strict=True)]
    assert all(pairs)
    assert list(backend.read_logs(238)) == logs[238:]
    assert list(SQLJournalBackend(backend.engine, "other").read_logs(0)) == []
    backend.engine.dispose()


def test_journal_studies_are_shared_between_storages(ws: Workspace) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with open_studies(ws.settings.metadata_url) as a, open_studies(ws.settings.metadata_url) as b:
        study_a = optuna.create_study(study_name="shared", storage=a.storage("shared"), direction="maximize")
        study_a.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        study_b = optuna.load_study(study_name="shared", storage=b.storage("shared"))
        study_b.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert [t.number for t in study_a.get_trials()] == [0, 1, 2, 3, 4]
        assert a.names() == ["shared"]
        with pytest.raises(KeyError):
            optuna.load_study(study_name="nope", storage=a.storage("nope"))


def test_studies_in_the_old_rdb_tables_are_copied_into_the_journal(ws: Workspace) -> None:
    """A workspace whose tuning jobs predate the journal keeps them: they are copied on first sight."""
    df = pd.DataFrame({"x": range(120), "y": [i % 2 for i in range(120)]})
    est = Estimator("xgboost", {"num_round": 3}, target="y", ws=ws)
    done = HyperparameterTuner(est, "validation:auc", ranges={"max_depth": (2, 4)}, strategy="random",
                               max_trials=3, name="old-job").fit(df)
    url = ws.settings.metadata_url
    rdb = _open_rdb(url)  # what an older loopml wrote: Optuna's RDB tables
    try:
        with open_studies(url) as studies:
            optuna.copy_study(from_study_name="old-job", from_storage=studies.storage("old-job"),
                              to_storage=rdb)
    finally:
        rdb.remove_session()
        rdb.engine.dispose()
    with ws.meta.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM tune_journal"))
    assert list_tuning_jobs(ws)[0].job_id == "old-job"
    again = get_tuning_job(ws, "old-job")
    assert [t.value for t in again.trials] == [t.value for t in done.trials]
    assert again.best_params == done.best_params and again.status == "Completed"
    with ws.meta.engine.connect() as conn:
        rows: Any = conn.execute(sa.text("SELECT COUNT(*) FROM tune_journal WHERE partition = 'old-job'")).scalar()
    assert rows > 3
    assert [j.job_id for j in list_tuning_jobs(ws)] == ["old-job"]  # copied once
