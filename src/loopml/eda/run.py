"""``run_eda()``: profile a dataset version of the catalog and store the report with lineage.

The thin I/O edge around :func:`loopml.eda.profile` and
:func:`loopml.eda.render_html`: it reads the version, stores the JSON profile
and the HTML report as content-addressed artifacts, records
``dataset_version --profiled_by--> eda_profile:<sha>`` and
``eda_profile:<sha> --rendered_as--> eda_report:<sha>`` in the lineage, and
emits an ``eda.profile_created`` event, all in one transaction.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopml._report import RENDERED_AS, stored_results, write_atomic
from loopml.data.catalog import Catalog, DatasetVersionInfo
from loopml.eda._config import ProfileConfig
from loopml.eda.profile import Profile, profile
from loopml.eda.report import render_html
from loopml.errors import InvalidInput, NotFound
from loopml.store.lineage import EntityRef

if TYPE_CHECKING:
    from loopml.workspace import Workspace

log = logging.getLogger(__name__)

EDA_PROFILE_CREATED = "eda.profile_created"
PROFILE_KIND = "eda_profile"
REPORT_KIND = "eda_report"
PROFILED_BY = "profiled_by"


@dataclass(frozen=True)
class EdaResult:
    """What :func:`run_eda` produced: the profile and where its JSON and HTML are stored."""

    dataset: str
    dataset_id: str
    profile: Profile
    profile_sha256: str
    report_sha256: str
    #: local path of the stored HTML report, or None for a remote artifact store
    report_path: str | None
    #: the ``out`` file written, if any
    out: str | None

    @property
    def entity(self) -> EntityRef:
        """The lineage reference of the stored profile."""
        return EntityRef(PROFILE_KIND, self.profile_sha256)

    def to_dict(self) -> dict[str, Any]:
        """A short JSON-ready summary (without the full profile)."""
        ov = self.profile.data["overview"]
        warnings = self.profile.warnings
        return {
            "dataset": self.dataset,
            "dataset_id": self.dataset_id,
            "rows": ov["rows"],
            "columns": ov["columns"],
            "target": ov.get("target"),
            "sample_rows": ov["sample"]["rows"],
            "warnings": sum(1 for w in warnings if w["severity"] == "warning"),
            "notes": sum(1 for w in warnings if w["severity"] != "warning"),
            "messages": [{"severity": w["severity"], "kind": w["kind"], "message": w["message"]}
                         for w in warnings],
            "profile_sha256": self.profile_sha256,
            "report_sha256": self.report_sha256,
            "report_path": self.report_path,
            "out": self.out,
        }


def run_eda(
    ws: Workspace,
    ref: str | DatasetVersionInfo,
    target: str | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    sample_rows: int | None = None,
    seed: int | None = None,
    task: str | None = None,
    config: ProfileConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> EdaResult:
    """Profile a dataset version, store the JSON profile and the HTML report, link them by lineage.

    Parameters
    ----------
    ws
        The workspace.
    ref
        ``NAME[:VERSION]`` (latest if no version) or a version from the catalog.
    target
        Target column for the target analysis.
    out
        Also write the HTML report to this path (atomically: a temporary file, then rename).
    sample_rows, seed, task, config
        As for :func:`loopml.eda.profile`.
    progress
        Called with the name of each stage as it starts.

    Returns
    -------
    EdaResult

    Raises
    ------
    NotFound
        The dataset or version does not exist.
    InvalidInput
        The version has no rows, or ``target`` is not one of its columns.

    Examples
    --------
    >>> import tempfile, pandas as pd, loopml
    >>> from loopml.data import Catalog
    >>> from loopml.eda import run_eda
    >>> ws = loopml.Workspace.init(tempfile.mkdtemp())
    >>> _ = Catalog(ws).write("t", pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}))
    >>> res = run_eda(ws, "t", target="y")
    >>> res.dataset, res.profile.rows
    ('t:1', 3)
    >>> ws.close()
    """
    step = progress or (lambda _stage: None)
    if out is not None and Path(out).expanduser().is_dir():
        raise InvalidInput(f"--out {str(out)!r} is a folder; give a file name such as report.html")
    cat = Catalog(ws)
    info = ref if isinstance(ref, DatasetVersionInfo) else cat.get(ref)
    if target is not None and target not in info.columns:
        raise InvalidInput(f"target column {target!r} is not in {info.ref}; its columns are {info.columns}")
    if info.row_count == 0:
        raise InvalidInput(f"{info.ref} has no rows; nothing to profile (ingest data into a new version)")
    step("reading " + info.ref)
    table = cat.read_arrow(info)
    prof = profile(table, target, sample_rows=sample_rows, seed=seed, task=task, config=config,
                   title=f"EDA: {info.ref}", progress=step)
    prof = prof.with_source(dataset=info.ref, dataset_id=info.id, content_hash=info.content_hash)
    step("writing the report")
    html = render_html(prof).encode()
    prof_ref = ws.artifacts.put_bytes(prof.to_json().encode())
    html_ref = ws.artifacts.put_bytes(html)
    prof_entity = EntityRef(PROFILE_KIND, prof_ref.sha256)
    with ws.meta.session(write=True) as s:
        ws.lineage.add(info.entity, prof_entity, PROFILED_BY, session=s)
        ws.lineage.add(prof_entity, EntityRef(REPORT_KIND, html_ref.sha256), RENDERED_AS, session=s)
        ws.events.emit(EDA_PROFILE_CREATED, prof_entity,
                       {"dataset": info.ref, "dataset_version_id": info.id, "target": target,
                        "report_sha256": html_ref.sha256,
                        "warnings": sum(1 for w in prof.warnings if w["severity"] == "warning")},
                       session=s)
    written = write_atomic(out, html) if out is not None else None
    log.info("profiled %s: profile %s, report %s", info.ref, prof_ref.sha256[:12], html_ref.sha256[:12])
    return EdaResult(
        dataset=info.ref, dataset_id=info.id, profile=prof, profile_sha256=prof_ref.sha256,
        report_sha256=html_ref.sha256, report_path=ws.artifacts.local_path(html_ref.sha256, verify=False),
        out=written,
    )


def reports(ws: Workspace, ref: str | DatasetVersionInfo) -> list[tuple[str, str | None]]:
    """Stored profiles of a dataset version, oldest first: ``(profile sha256, report sha256)`` pairs."""
    info = ref if isinstance(ref, DatasetVersionInfo) else Catalog(ws).get(ref)
    return stored_results(ws.lineage, info.entity, PROFILED_BY, PROFILE_KIND, REPORT_KIND)


def load_profile(ws: Workspace, sha256: str) -> Profile:
    """Read a stored profile back (hash-verified) by its artifact sha256."""
    try:
        return Profile.from_json(ws.artifacts.get_bytes(sha256))
    except NotFound as e:
        raise NotFound(f"no stored EDA profile {sha256}; see `loopml data show NAME` for its reports") from e
