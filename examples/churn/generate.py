"""Write the churn example's data: customers before the drift, live traffic after it, new labelled data.

    python examples/churn/generate.py --out data [--rows 4000] [--seed 7]

Files (CSV):

- ``customers.csv``: the CRM export (ids, times, features, label; 1% broken rows for validation);
- ``train.csv``, ``holdout.csv``: its valid rows, features and label only, split 80/20;
- ``traffic.jsonl``: requests like the training data, one JSON record per line (no label);
- ``drifted.jsonl``: requests after the drift: higher charges, a new plan ``enterprise``;
- ``fresh.csv``, ``fresh_holdout.csv``: customers labelled after the drift (retraining data, holdout).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loopml._demo.data import FEATURES, TARGET, make_churn


def main(argv: list[str] | None = None) -> list[Path]:
    """Write the files; return their paths."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data"), help="folder to write to")
    ap.add_argument("--rows", type=int, default=4000, help="customers in the first export")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    customers = make_churn(a.rows, a.seed, broken=0.01)
    valid = customers[customers["monthly_charges"] >= 0][[*FEATURES, TARGET]]
    fresh = make_churn(a.rows, a.seed + 3, drift=True, first_id=10_000_000)[[*FEATURES, TARGET]]
    cut, fresh_cut = int(0.8 * len(valid)), int(0.75 * len(fresh))
    frames = {
        "customers.csv": customers,
        "train.csv": valid[:cut],
        "holdout.csv": valid[cut:],
        "traffic.jsonl": make_churn(300, a.seed + 1)[FEATURES],
        "drifted.jsonl": make_churn(600, a.seed + 2, drift=True)[FEATURES],
        "fresh.csv": fresh[:fresh_cut],
        "fresh_holdout.csv": fresh[fresh_cut:],
    }
    written = []
    for name, df in frames.items():
        path = a.out / name
        if name.endswith(".jsonl"):
            df.to_json(path, orient="records", lines=True)
        else:
            df.to_csv(path, index=False)
        written.append(path)
        print(f"{path}: {len(df):,} rows")
    return written


if __name__ == "__main__":
    main()
