"""The strong simple model beside the baseline: what it is fitted on, what it outputs."""

from __future__ import annotations

import numpy as np
import pytest

from search.metrics import scores
from search.selection import linear as linear_module
from search.selection.linear import fit_linear

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(("task", "k"), [("binary", 2), ("multiclass", 5), ("regression", 0)])
def test_its_outputs_take_the_networks_form(task: str, k: int) -> None:
    x = RNG.normal(size=(300, 6))
    y = x[:, 0] * 3 if task == "regression" else np.digitize(x[:, 0], [-1, -0.3, 0.3, 1])
    y = np.minimum(y, 1) if task == "binary" else y
    fitted = fit_linear(task, k, x[:240], y[:240], x[240:])
    width = 1 if task != "multiclass" else k
    assert fitted.output.shape == (60, width)
    # it learned something: better than the mean / the prior on held-out rows
    metric = "mse" if task == "regression" else "log_loss"
    got = scores(task, y[240:], fitted.output)[metric]
    if task == "regression":
        assert got < float(np.var(y[240:]))
    else:
        assert got < 0.9 * np.log(k)


def test_a_class_the_training_rows_lack_gets_no_probability() -> None:
    x = RNG.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(int) * 2  # classes 0 and 2; class 1 only elsewhere
    fitted = fit_linear("multiclass", 3, x, y, x[:10])
    assert fitted.output.shape == (10, 3) and np.all(fitted.output[:, 1] == 0)


def test_beyond_the_budget_a_stratified_share_is_fitted_and_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(linear_module, "BUDGET", 300 * 4 * 3)
    monkeypatch.setattr(linear_module, "MIN_ROWS", 100)
    x = RNG.normal(size=(900, 4))
    y = np.arange(900) % 3
    fitted = fit_linear("multiclass", 3, x, y, x[:5])
    assert "300 of the 900 training rows (a compute budget)" in fitted.text()
    small = fit_linear("multiclass", 3, x[:200], y[:200], x[:5])
    assert "on the training rows" in small.text()
