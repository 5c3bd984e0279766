"""Comparing runs: params and metrics side by side, and a chart of their metric histories."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopml.track.tracker import MetricPoint, RunInfo


@dataclass(frozen=True)
class RunComparison:
    """Several runs side by side: one list of values (one per run, None if absent) per key.

    Attributes
    ----------
    runs
        The runs, in the order asked for.
    params
        ``{param: [value of run 0, value of run 1, ...]}``, keys sorted.
    metrics
        ``{metric: [latest value of run 0, ...]}``, keys sorted.
    """

    runs: list[RunInfo]
    params: dict[str, list[str | None]]
    metrics: dict[str, list[float | None]]

    @classmethod
    def of(cls, runs: Sequence[RunInfo]) -> RunComparison:
        """Build the comparison of ``runs``."""
        pkeys = sorted({k for r in runs for k in r.params})
        mkeys = sorted({k for r in runs for k in r.metrics})
        return cls(
            runs=list(runs),
            params={k: [r.params.get(k) for r in runs] for k in pkeys},
            metrics={k: [r.metrics.get(k) for r in runs] for k in mkeys},
        )

    def differing_params(self) -> list[str]:
        """Params whose value is not the same in every run."""
        return [k for k, vs in self.params.items() if len(set(vs)) > 1]

    def best(self, metric: str, higher_is_better: bool = True) -> RunInfo | None:
        """The run with the best latest value of ``metric`` (None if no run has it)."""
        scored = [(v, r) for v, r in zip(self.metrics.get(metric, []), self.runs, strict=False)
                  if v is not None and not math.isnan(v)]
        if not scored:
            return None
        pick = max if higher_is_better else min
        return pick(scored, key=lambda vr: vr[0])[1]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (used by ``--json`` output)."""
        def clean(v: float | None) -> float | None:
            return None if v is None or math.isnan(v) else v

        return {
            "runs": [{"id": r.id, "name": r.name, "experiment": r.experiment, "status": r.status,
                      "duration_s": r.duration} for r in self.runs],
            "params": self.params,
            "metrics": {k: [clean(v) for v in vs] for k, vs in self.metrics.items()},
            "differing_params": self.differing_params(),
        }


def write_chart(
    runs: Sequence[RunInfo],
    histories: Mapping[str, Mapping[str, Sequence[MetricPoint]]],
    path: str | os.PathLike[str],
) -> Path:
    """Write one offline HTML page: a line chart per metric, one line per run.

    plotly.js is embedded, so the file opens without a network. Written to a
    temporary name first and renamed, so a reader never sees half a page.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = sorted({k for h in histories.values() for k in h})
    out = Path(path).absolute()
    n = max(1, len(keys))
    fig = make_subplots(rows=n, cols=1, subplot_titles=keys or ["no metrics logged"],
                        vertical_spacing=min(0.08, 0.5 / n))
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf")
    for i, run in enumerate(runs):
        color = palette[i % len(palette)]
        label = f"{run.name} ({run.id[4:12]})"
        shown = False
        for row, key in enumerate(keys, start=1):
            points = histories.get(run.id, {}).get(key, [])
            if not points:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[p.step for p in points],
                    y=[None if math.isnan(p.value) else p.value for p in points],
                    mode="lines+markers" if len(points) < 50 else "lines",
                    name=label, legendgroup=run.id, showlegend=not shown,
                    line={"color": color},
                ),
                row=row, col=1,
            )
            shown = True
            fig.update_xaxes(title_text="step", row=row, col=1)
    fig.update_layout(
        title=f"Metric histories of {len(runs)} run(s)", height=max(400, 300 * n),
        template="plotly_white", legend={"title": {"text": "run"}},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.write_html(tmp, include_plotlyjs=True, full_html=True)
    os.replace(tmp, out)
    return out
