"""The champion takes every raw row its own preprocessing can handle: missing values in
any column kind, integers where floats were seen and floats where integers were."""

from __future__ import annotations

import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest

from search import run_search, select

SPACE = """
study: {name: rows, trials: 1, sampler: random, pruner: none, seed: 3}
data: {source: rows.csv, target: label, test_size: 0.25}
validation: {scheme: holdout}
params: {depth: 1, width: 8, learning_rate: 0.01, epochs: 3, patience: 2}
training: {engine: sequential}
selection: {top_k: 1, recheck_folds: 2}
"""


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, pd.DataFrame]:
    tmp = tmp_path_factory.mktemp("rows")
    rng = np.random.default_rng(2)
    n = 120
    frame = pd.DataFrame(
        {
            "count": rng.integers(0, 9, size=n),  # integers, never missing in training
            "amount": rng.normal(50, 10, size=n).round(2),  # floats, never missing
            "gappy": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "city": rng.choice(["a", "b", "c"], size=n),  # text, never missing
            "flag": rng.random(n) < 0.5,  # booleans
        }
    )
    frame["label"] = np.where(frame["count"] + rng.normal(size=n) > 4, "yes", "no")
    frame.to_csv(tmp / "rows.csv", index=False)
    (tmp / "s.yaml").write_text(SPACE)
    run_search(tmp / "s.yaml", home=tmp / "m", progress=False, quiet=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = select("rows", home=tmp / "m")
    schema_warnings = [str(w.message) for w in caught if "schema" in str(w.message).lower()]
    assert not schema_warnings  # MLflow's "integer column ... missing values" notice
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'm' / 'mlflow.db'}")
    return mlflow.pyfunc.load_model(result.model_uri), pd.read_csv(tmp / "rows.csv")


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["label"]).head(6).reset_index(drop=True)


@pytest.mark.parametrize("column", ["count", "amount", "gappy", "city", "flag"])
def test_a_missing_value_in_any_column_kind_is_imputed(
    champion: tuple[object, pd.DataFrame], column: str
) -> None:
    model, frame = champion
    rows = _rows(frame).astype({column: object})
    rows.loc[[0, 3], column] = None
    out = model.predict(rows)  # type: ignore[attr-defined]
    assert len(out) == len(rows) and set(out) <= {"yes", "no"}


def test_every_column_missing_in_one_row(champion: tuple[object, pd.DataFrame]) -> None:
    model, frame = champion
    rows = _rows(frame).astype(object)
    rows.loc[2, :] = None
    proba = model.predict(rows, params={"output": "proba"})  # type: ignore[attr-defined]
    assert np.allclose(proba[["proba_no", "proba_yes"]].sum(axis=1), 1.0)


def test_number_types_cross(champion: tuple[object, pd.DataFrame]) -> None:
    """Floats in an integer column and integers in a float column are numbers alike."""
    model, frame = champion
    rows = _rows(frame)
    rows["count"] = rows["count"].astype(float) + 0.5
    rows["amount"] = rows["amount"].round().astype(int)
    assert len(model.predict(rows)) == len(rows)  # type: ignore[attr-defined]
