"""Small seeded frames for training tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def churn(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Numbers, text and a date, with a learnable 0/1 target ``y`` and a few missing values."""
    r = np.random.default_rng(seed)
    x1 = r.normal(size=n)
    x2 = r.normal(size=n)
    city = r.choice(np.array(["paris", "lyon", "nice"], dtype=object), n)
    logit = 1.5 * x1 - x2 + (city == "paris") * 1.0
    y = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    x2[r.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "x1": x1,
        "x2": x2,
        "city": pd.array(city, dtype="str"),
        "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(r.integers(0, 300, n), unit="D"),
        "y": y,
    })


def package(tmp_path: Any, df: pd.DataFrame, algorithm: str, hyperparameters: dict[str, Any] | None = None,
            *, target: str | None = "y", recipe: Any = None, roles: dict[str, str] | None = None,
            name: str = "pkg") -> tuple[Path, dict[str, Any]]:
    """Run a training job in this process (no subprocess, no run) and return its package folder and result."""
    import pyarrow as pa

    from loopml.train._job import run_job

    src = Path(tmp_path) / f"{name}.arrow"
    table = pa.Table.from_pandas(df, preserve_index=False)
    with pa.OSFile(str(src), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    out = Path(tmp_path) / name
    spec = {"algorithm": algorithm, "hyperparameters": hyperparameters or {}, "target": target,
            "roles": roles or {}, "train": {"kind": "file", "path": str(src), "description": "test frame"},
            "recipe": recipe, "output_dir": str(out)}
    result = run_job(spec, lambda event: None)
    return out, result
