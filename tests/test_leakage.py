"""No test row reaches any training, and every model trains on rows preprocessed with
statistics of exactly the rows it trains on: checked on what each training call received.

A spy on the preprocessor remembers, for every row it transforms, which row of the data
it was and which rows that preprocessor was fitted on. A spy on each engine's training
input (Keras `fit`'s rows in the sequential engine and the refit; the pack's member
arrays) then maps every row a model trains on back to the data, with no help from the
split or the folds: a bug that trained on all rows, or fitted the scaler on them, fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from search.data.columns import Preprocessor
from search.engines import exact as exact_module
from search.engines import feed
from search.engines import sequential as fitting_module
from search.engines.pack import members as packmodel
from search.runner import run_search
from search.selection.selector import select

SPACE = """
study: {{name: leak, trials: 2, sampler: random, pruner: none, seed: 3}}
data: {{source: bc.csv, target: target, test_size: 0.25}}
validation: {{scheme: kfold, folds: 2}}
selection: {{top_k: 2, recheck_folds: 2, bootstrap: 100, ensemble: true}}
training: {{engine: {engine}}}
params:
  depth: 1
  width: {{low: 4, high: 8}}
  learning_rate: 0.01
  batch_size: 64
  epochs: 3
  patience: 2
"""


@dataclass
class Spy:
    """Row identities of everything the preprocessors made, and what training got."""

    rows: dict[bytes, tuple[int, frozenset[int]]] = field(default_factory=dict)
    trained: list[np.ndarray] = field(default_factory=list)

    def remember(self, pre: Preprocessor, X: pd.DataFrame, out: np.ndarray) -> None:
        fitted: frozenset[int] = pre.spy_fitted_on
        for index, row in zip(X.index, out.astype(np.float32), strict=True):
            # the first sight of a row carries its index in the data (the champion's input
            # example comes back through MLflow with a fresh index)
            self.rows.setdefault(row.tobytes(), (int(index), fitted))

    def identify(self, x: np.ndarray) -> tuple[list[int], set[frozenset[int]]]:
        """The data rows of a training input, and the row sets its preprocessing was
        fitted on."""
        found = [self.rows.get(row.tobytes()) for row in x.reshape(len(x), -1)]
        assert all(f is not None for f in found), "a training row no preprocessor made"
        return [f[0] for f in found if f], {f[1] for f in found if f}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    seen = Spy()
    fit, transform = Preprocessor.fit, Preprocessor.transform

    def spy_fit(self: Preprocessor, X: pd.DataFrame, y: Any = None) -> Preprocessor:
        self.spy_fitted_on = frozenset(int(i) for i in X.index)
        return fit(self, X, y)

    def spy_transform(self: Preprocessor, X: pd.DataFrame, rows: Any = None) -> np.ndarray:
        out = transform(self, X, rows)
        seen.remember(self, X if rows is None else X.iloc[rows], out)
        return out

    def spy_inputs(x: np.ndarray, y: np.ndarray, **kwargs: Any) -> dict[str, Any]:
        seen.trained.append(np.array(x))
        return feed.fit_inputs(x, y, **kwargs)

    member_arrays = packmodel.member_arrays

    def spy_members(folds: list[Any]) -> dict[str, np.ndarray]:
        seen.trained.extend(np.array(f.x_train) for f in folds)
        return member_arrays(folds)

    monkeypatch.setattr(Preprocessor, "fit", spy_fit)
    monkeypatch.setattr(Preprocessor, "transform", spy_transform)
    monkeypatch.setattr(fitting_module, "fit_inputs", spy_inputs)
    monkeypatch.setattr(exact_module, "fit_inputs", spy_inputs)  # the refit
    monkeypatch.setattr(packmodel, "member_arrays", spy_members)
    return seen


@pytest.mark.parametrize("engine", ["sequential", "pack"])
def test_every_training_call_gets_training_rows_scaled_on_themselves(
    tmp_path: Path, spy: Spy, engine: str
) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    frame.to_csv(tmp_path / "bc.csv", index=False)
    (tmp_path / "leak.yaml").write_text(SPACE.format(engine=engine))
    result = run_search(tmp_path / "leak.yaml", home=tmp_path / "m", progress=False)
    searched = len(spy.trained)
    select("leak", home=tmp_path / "m")
    client = MlflowClient(result.tracking_uri)
    path = client.download_artifacts(result.parent_run_id, "test_split.json", str(tmp_path))
    test = set(json.loads(Path(path).read_text())["test"])  # the split the study recorded
    pool = set(range(len(frame))) - test
    assert 0.2 * len(frame) < len(test) < 0.3 * len(frame)

    # the trials' 2 folds (a pack takes each fold's rows once for all its members), the
    # recheck's 2, the refit (and any ensemble member's)
    assert searched >= 2 and len(spy.trained) >= searched + 3
    whole = 0
    for x in spy.trained:
        rows, fitted_on = spy.identify(x)
        assert not test & set(rows), "a test row reached a training call"
        # the preprocessing each model's rows went through was fitted on those rows
        assert fitted_on == {frozenset(rows)}
        # and its statistics are theirs: every feature has mean 0 and std 1 there
        np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-3)
        whole += set(rows) == pool
    assert whole >= 1  # the refit trains on every training row (and only those)
