"""Model packages trained in this process, and runs that hold them as a training job would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from loopml import Workspace
from loopml.data.catalog import DatasetVersionInfo
from loopml.store.lineage import EntityRef
from loopml.train.package import MANIFEST, read_manifest
from tests.train._data import package


def train_package(tmp: Path, df: pd.DataFrame, algo: str, hp: dict[str, Any] | None = None,
                  **kwargs: Any) -> Path:
    """A package folder from an in-process training job (no subprocess, no run)."""
    folder, _ = package(tmp, df, algo, hp, **kwargs)
    return folder


def record_run(ws: Workspace, folder: Path | None, *, data: DatasetVersionInfo | None = None,
               experiment: str = "registry", status: str = "FINISHED") -> str:
    """A run that stores ``folder`` as its ``model/...`` artifacts, like :class:`Estimator` does."""
    with ws.start_run(experiment=experiment) as run:
        run.log_params({"algorithm": "test"})
        if data is not None:
            run.log_dataset(data, role="train")
        if folder is not None:
            manifest, sha = read_manifest(folder)
            for rel in sorted(manifest["files"]):
                run.log_artifact(folder / rel, name=f"model/{rel}")
            assert run.log_artifact(folder / MANIFEST, name=f"model/{MANIFEST}") == sha
            run.log_metrics({k: float(v) for k, v in manifest["metrics"].items()})
            ws.lineage.add(EntityRef("run", run.id), EntityRef("model_package", sha), "produced")
        if status != "FINISHED":
            run.end(status, "the library raised: boom")
    return run.id
