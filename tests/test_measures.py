"""Measures of success beyond accuracy (precision, recall, balanced accuracy, PR AUC) and a
binary decision threshold tuned on the selection's out-of-fold rows, never on test rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer

from search import run_search, select
from search.data.dataset import load_dataset
from search.data.split import split_test
from search.metrics import scores, tune_threshold
from search.selection import selector as selection_module
from search.space.schema import DataSpec
from tests.conftest import run_cli


def test_the_new_measures_are_scikit_learns() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 200), 0, 1)
    got = scores("binary", y, p.reshape(-1, 1))
    pred = (p > 0.5).astype(int)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    y3 = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + np.eye(3)[y3]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    many = scores("multiclass", y3, proba)
    pred3 = proba.argmax(axis=1)
    assert many["precision"] == pytest.approx(skm.precision_score(y3, pred3, average="macro"))
    assert many["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y3, pred3))
    onehot = np.eye(3)[y3]
    assert many["pr_auc"] == pytest.approx(skm.average_precision_score(onehot, proba))


def test_the_threshold_maximizes_the_metric_on_the_rows_given() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.1).astype(int)  # rare positives
    p = np.clip(0.25 * y + rng.uniform(0, 0.45, 400), 0, 1).reshape(-1, 1)  # all below 0.5
    cut = tune_threshold(y, p, "f1")
    assert cut < 0.5
    best = scores("binary", y, p, cut)["f1"]
    assert best > scores("binary", y, p, 0.5)["f1"]
    for other in np.linspace(0.01, 0.99, 99):  # no threshold does better on these rows
        assert scores("binary", y, p, float(other))["f1"] <= best + 1e-12
    confident = np.where(y == 1, 0.9, 0.1).reshape(-1, 1)
    assert tune_threshold(y, confident, "accuracy") == 0.5  # 0.5 already the best


SPACE = """
study: {name: rare, trials: 2, sampler: random, pruner: none, seed: 2}
data: {source: rare.csv, target: label, test_size: 0.25}
validation: {scheme: kfold, folds: 3}
objective: {metric: f1, threshold: tuned}
params: {depth: 1, width: 8, learning_rate: 0.01, epochs: 20, patience: 5}
training: {engine: sequential}
selection: {top_k: 1, recheck_folds: 3}
"""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("rare")
    frame = load_breast_cancer(as_frame=True).frame
    rare = frame[frame.target == 0].head(30)  # malignant cut to ~8% of the rows
    data = pd.concat([frame[frame.target == 1], rare]).rename(columns={"target": "label"})
    data.to_csv(tmp / "rare.csv", index=False)
    (tmp / "s.yaml").write_text(SPACE)
    run_search(tmp / "s.yaml", home=tmp / "m", progress=False, quiet=True)
    seen: dict[str, Any] = {}
    real = selection_module.tune_threshold

    def spy(y: np.ndarray, output: np.ndarray, metric: str) -> float:
        seen["y"] = y.copy()
        return real(y, output, metric)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(selection_module, "tune_threshold", spy)
        result = select("rare", home=tmp / "m")
    return {"tmp": tmp, "result": result, **seen}


def test_the_threshold_is_tuned_on_training_rows_and_used_by_the_champion(
    tuned: dict[str, Any],
) -> None:
    result, tmp = tuned["result"], tuned["tmp"]
    spec = DataSpec(source="rare.csv", target="label", test_size=0.25)
    data = load_dataset(spec, base_dir=tmp)
    split = split_test(data, spec)
    assert len(tuned["y"]) == len(split.train)  # every training row, out of fold
    assert result.threshold is not None and 0.0 <= result.threshold < 1.0
    assert "decision threshold" in str(result)
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'm' / 'mlflow.db'}")
    assert float(mlflow.get_run(result.run_id).data.params["threshold"]) == result.threshold
    model = mlflow.pyfunc.load_model(result.model_uri)
    frame = model.predict(data.X.iloc[split.test], params={"output": "proba"})
    positive = f"proba_{data.labels[1]}"
    expected = np.where(frame[positive] > result.threshold, data.labels[1], data.labels[0])
    assert list(frame["prediction"]) == list(expected)
    proba = frame[positive].to_numpy().reshape(-1, 1)
    test = scores("binary", data.y[split.test], proba, result.threshold)
    assert result.test["f1"].value == pytest.approx(test["f1"], abs=1e-6)


@pytest.mark.parametrize(
    ("objective", "source"),
    [("{metric: roc_auc, threshold: tuned}", "breast_cancer"), ("{threshold: tuned}", "iris")],
)
def test_a_threshold_that_cannot_be_tuned_is_refused(
    tmp_path: Path, objective: str, source: str
) -> None:
    (tmp_path / "s.yaml").write_text(f"data: {{source: {source}}}\nobjective: {objective}\n")
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2 and "a tuned threshold needs a binary task" in out.stderr
