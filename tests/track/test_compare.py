from __future__ import annotations

import math
from pathlib import Path

from loopml.track import Tracker


def test_compare_and_chart(tracker: Tracker, tmp_path: Path) -> None:
    ids = []
    for depth in (3, 6):
        with tracker.start_run(experiment="cmp", name=f"d{depth}") as run:
            run.log_params({"depth": depth, "eta": 0.1})
            for step in range(4):
                run.log_metrics({"loss": 1 / (step + depth), "auc": 0.5 + step * depth / 100}, step=step)
            if depth == 6:
                run.log_metric("extra", float("nan"))
        ids.append(run.id)
    cmp = tracker.compare(ids)
    assert [r.name for r in cmp.runs] == ["d3", "d6"]
    assert cmp.params == {"depth": ["3", "6"], "eta": ["0.1", "0.1"]}
    assert cmp.differing_params() == ["depth"]
    assert cmp.metrics["auc"] == [0.59, 0.5 + 3 * 6 / 100] and cmp.metrics["extra"][0] is None
    assert math.isnan(cmp.metrics["extra"][1] or 0.0)
    assert cmp.best("auc") is not None and cmp.best("auc").name == "d6"  # type: ignore[union-attr]
    assert cmp.best("loss", higher_is_better=False).name == "d6"  # type: ignore[union-attr]
    assert cmp.best("nope") is None and cmp.best("extra") is None
    d = cmp.to_dict()
    assert d["metrics"]["extra"] == [None, None] and d["differing_params"] == ["depth"]

    histories = tracker.metric_histories(ids)
    assert [p.step for p in histories[ids[0]]["loss"]] == [0, 1, 2, 3]
    out = tracker.write_comparison_chart(ids, tmp_path / "charts" / "cmp.html")
    html = out.read_text()
    assert out.name == "cmp.html" and "plotly" in html and "d3 (" in html and '"loss"' in html
    assert '<script src="http' not in html and len(html) > 1_000_000  # plotly.js inline: offline
    assert not list(out.parent.glob(".*.tmp"))
