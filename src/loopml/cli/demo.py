"""``loopml demo``: the lifecycle on generated data, on the embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from loopml.cli._app import app, console

if TYPE_CHECKING:
    import pandas as pd


def churn_frame(n: int, seed: int) -> pd.DataFrame:
    """Customer-churn-like rows with a learnable target (the bench generator's shape, smaller)."""
    import numpy as np
    import pandas as pd

    r = np.random.default_rng(seed)
    df = pd.DataFrame({
        "customer_id": np.arange(n),
        "event_time": pd.Timestamp("2025-01-01") + pd.to_timedelta(r.integers(0, 365 * 86400, n), unit="s"),
        "tenure_months": r.integers(1, 72, n),
        "monthly_charges": r.normal(65, 20, n).round(2),
        "support_calls": r.poisson(1.5, n),
        "plan": r.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2]),
        "region": r.choice(["north", "south", "east", "west"], n),
    })
    logit = -1.5 + 0.5 * df["support_calls"] - 0.04 * df["tenure_months"] + 0.01 * df["monthly_charges"]
    df["churn"] = (r.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    bad = r.random(n) < 0.01
    df.loc[bad, "monthly_charges"] = -1.0  # a few broken rows for the quarantine
    return df


EXPECTATIONS = """\
row_count: {min: 100}
columns:
  customer_id: {type: int, nullable: false, unique: true}
  tenure_months: {type: int, min: 0, max: 120}
  monthly_charges: {type: float, min: 0}
  plan: {allowed: [basic, plus, premium]}
  churn: {type: int, allowed: [0, 1]}
"""


@app.command()
def demo(
    path: Path = typer.Option(Path("demo-workspace"), "--path", help="Folder for the demo workspace."),
    rows: int = typer.Option(5000, "--rows", help="Rows of generated data."),
) -> None:
    """Run the lifecycle on generated data and say where to look."""
    from loopml.data import Catalog
    from loopml.data.ingest import ingest
    from loopml.data.sources import FileSource
    from loopml.workspace import Workspace

    ws = Workspace.init(path)
    raw = path / "raw"
    raw.mkdir(exist_ok=True)
    csv = raw / "customers.csv"
    churn_frame(rows, seed=7).to_csv(csv, index=False)
    expect = raw / "customers.expect.yaml"
    expect.write_text(EXPECTATIONS)
    console.rule("[bold]1. data collection")
    info = ingest(ws, FileSource(str(csv)), "customers", expectations=expect)
    console.print(
        f"ingested {csv} -> [bold]{info.ref}[/]: {info.row_count:,} rows, "
        f"{info.quarantine_count} quarantined by {expect.name}"
    )
    cat = Catalog(ws)
    stats = cat.duckdb(info).aggregate("plan, count(*) AS n, avg(churn) AS churn_rate").order("plan").fetchall()
    for plan, n, rate in stats:
        console.print(f"  {plan:<8} {n:>6,} customers  churn {rate:.1%}")
    ws.close()
    console.rule("[bold]where to look")
    console.print(f"workspace      {path.resolve()}")
    console.print(f"dataset        cd {path} && loopml data show customers --quarantine 5")
    console.print(f"catalog        cd {path} && loopml data list")
