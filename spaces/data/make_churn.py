"""Regenerate churn.csv, the CSV example's data: `python spaces/data/make_churn.py`."""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(7)
n = 800
plan = rng.choice(["basic", "plus", "pro"], size=n, p=[0.5, 0.3, 0.2])
region = rng.choice(["north", "south", "east", "west"], size=n).astype(object)
tenure = rng.integers(1, 72, size=n)
calls = rng.poisson(2.0, size=n)
age = rng.normal(42, 12, size=n).round().clip(18, 90)
charges = (20 + 25 * (plan == "plus") + 60 * (plan == "pro") + rng.normal(0, 5, n)).round(2)
logit = (-1.0 + 0.45 * calls - 0.05 * tenure + 0.8 * (plan == "basic") - 0.01 * (age - 42)
         + 0.5 * (region == "south"))
churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
frame = pd.DataFrame({"age": age, "region": region, "plan": plan, "tenure_months": tenure,
                      "support_calls": calls, "monthly_charges": charges, "churn": churn})
frame.loc[rng.random(n) < 0.05, "age"] = np.nan  # missing values, imputed per fold
frame.loc[rng.random(n) < 0.05, "region"] = np.nan
frame.to_csv(Path(__file__).with_name("churn.csv"), index=False)
