"""The vectorized bootstrap equals `scores` on each resample, for every task and metric."""

from __future__ import annotations

import numpy as np
import pytest

from search.metrics import scores
from search.selection.bootstrap import bootstrap_scores, resample_counts


def _case(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if task == "regression":
        y = rng.normal(size=n).astype(np.float32)
        return y, (y + rng.normal(scale=0.5, size=n)).reshape(-1, 1)
    k = 2 if task == "binary" else 4
    y = rng.integers(0, k, n)
    if task == "binary":
        out = np.clip(0.5 * y + rng.uniform(0, 0.6, n), 0, 1).reshape(-1, 1)
        out[:5] = 0.5  # ties between classes
        return y, out
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    out = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    out[:4] = 0.25  # ties
    return y, out


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize(("n", "seed"), [(12, 0), (60, 1), (114, 2)])
def test_each_resample_scores_as_scikit_learn_does(task: str, n: int, seed: int) -> None:
    y, out = _case(task, n, seed)
    counts = resample_counts(n, 40, seed)
    fast = bootstrap_scores(task, y, out, counts)
    rng = np.random.default_rng(seed)
    for i in range(40):
        idx = rng.integers(0, n, n)  # the same draws, in the same order
        assert np.array_equal(np.bincount(idx, minlength=n), counts[i])
        slow = scores(task, y[idx], out[idx])
        assert set(fast) == set(slow)
        for name, value in slow.items():
            if np.isnan(value):
                assert np.isnan(fast[name][i]), (name, i)
            else:
                assert fast[name][i] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, i)


def test_a_resample_without_a_class_has_no_roc_auc() -> None:
    y = np.array([0, 0, 0, 1])
    out = np.array([[0.1], [0.2], [0.3], [0.9]])
    counts = np.array([[3.0, 1, 0, 0], [1.0, 1, 1, 1]])
    auc = bootstrap_scores("binary", y, out, counts)["roc_auc"]
    assert np.isnan(auc[0]) and auc[1] == 1.0
