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


RECIPE = """\
target: churn
steps:
  - kind: impute
    columns: [monthly_charges]
    strategy: median
  - kind: standardize
    columns: [tenure_months, monthly_charges, support_calls]
  - kind: one_hot
    columns: [plan, region]
  - kind: date_parts
    columns: [event_time]
    parts: [dow, month, hour, weekend]
  - kind: expression
    name: charges_per_month_of_tenure
    expr: monthly_charges / (tenure_months + 1)
"""


@app.command()
def demo(
    path: Path = typer.Option(Path("demo-workspace"), "--path", help="Folder for the demo workspace."),
    rows: int = typer.Option(5000, "--rows", help="Rows of generated data."),
) -> None:
    """Run the lifecycle on generated data and say where to look."""
    import pandas as pd

    from loopml.data import Catalog
    from loopml.data.ingest import ingest
    from loopml.data.sources import FileSource
    from loopml.eda import run_eda
    from loopml.features import FeatureStore
    from loopml.prep import apply_recipe, fit_recipe
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
    stats = Catalog(ws).duckdb(info).aggregate("plan, count(*) AS n, avg(churn) AS churn_rate").order("plan").fetchall()
    for plan, n, rate in stats:
        console.print(f"  {plan:<8} {n:>6,} customers  churn {rate:.1%}")

    console.rule("[bold]2. exploratory data analysis")
    reports = path / "reports"
    reports.mkdir(exist_ok=True)
    eda = run_eda(ws, info, target="churn", out=reports / "customers-eda.html")
    console.print(f"profiled {info.ref}: report {eda.out} ({len(eda.profile.warnings)} warnings)")

    console.rule("[bold]3. preprocessing and feature engineering")
    recipe_file = raw / "churn.recipe.yaml"
    recipe_file.write_text(RECIPE)
    recipe = fit_recipe(ws, recipe_file, info.ref, "churn_prep")
    features = apply_recipe(ws, recipe.ref, info.ref, "customers_prepared")
    console.print(
        f"fitted recipe [bold]{recipe.ref}[/] on {info.ref}; applied -> [bold]{features.ref}[/] "
        f"({len(features.schema)} columns)"
    )

    console.rule("[bold]4. feature store")
    with FeatureStore(ws) as fs:
        if "customer_activity" not in {g.name for g in fs.list_groups()}:
            fs.create_group(
                "customer_activity", record_id="customer_id", event_time="event_time",
                features=["tenure_months", "monthly_charges", "support_calls", "plan"],
                data=info.ref, description="customer activity from the CRM export",
            )
        fs.ingest("customer_activity", info.ref)
        fs.materialize("customer_activity")
        record = fs.get_record("customer_activity", 1)
        # label events a day after each customer's record: features as of then
        labels = Catalog(ws).read_pandas(info, columns=["customer_id", "event_time", "churn"]).head(1000)
        labels["event_time"] = labels["event_time"] + pd.Timedelta(days=1)
        training = fs.get_training_set(labels, "customer_activity")
    console.print(f"online record for customer 1: {record}")
    console.print(
        f"point-in-time training set: {len(training):,} label rows, "
        f"{int(training['monthly_charges'].notna().sum()):,} with features as of their time"
    )
    ws.close()

    console.rule("[bold]where to look")
    console.print(f"workspace      {path.resolve()}")
    console.print(f"EDA report     {Path(eda.out or '').resolve()}")
    console.print(f"dataset        cd {path} && loopml data show customers --quarantine 5")
    console.print(f"catalog        cd {path} && loopml data list")
    console.print(f"recipe         cd {path} && loopml prep show churn_prep")
    console.print(f"features       cd {path} && loopml features describe customer_activity")
