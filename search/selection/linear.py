"""A strong simple model beside the baseline: a regularized linear model on the final
model's own features (the same preprocessing, fitted on the same training rows), its
strength chosen by cross-validation on those rows; the test rows take no part.

A classification gets an L2 logistic regression (multinomial for several classes), a
regression a ridge regression. If a network cannot beat it, the user should see it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import train_test_split

STRENGTHS = np.logspace(-3, 3, 7)  # C of the logistic regression, alpha of the ridge
FOLDS = 3
MAX_ITER = 500
# rows x features x classes a logistic regression is fitted on at most (its CV path costs
# about that many multiply-adds an iteration): beyond it, a stratified seeded share of the
# training rows (said in its name); ~30 s on 2 CPU cores
BUDGET = 5e8
MIN_ROWS = 1000


@dataclass(frozen=True)
class Linear:
    """The linear model's outputs on the test rows (as the network gives them: P(1), the
    class probabilities in code order, or values) and the strength chosen."""

    output: np.ndarray
    name: str  # "logistic regression" | "ridge regression"
    strength: str  # "C=0.1" | "alpha=10"
    chosen_by: str  # "3-fold CV" | "leave-one-out CV"
    rows: str = "the training rows"  # or "1086 of the 8982 training rows (a compute budget)"

    def text(self) -> str:
        return f"{self.name} ({self.strength}, chosen by {self.chosen_by}; on {self.rows})"


def fit_linear(
    task: str, n_classes: int, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
) -> Linear:
    """Fit on the training rows' features, predict the test rows'."""
    if task == "regression":
        ridge = RidgeCV(alphas=STRENGTHS).fit(x_train, y_train)
        out = ridge.predict(x_test).reshape(-1, 1)
        alpha = f"alpha={float(ridge.alpha_):g}"
        return Linear(out, "ridge regression", alpha, "leave-one-out CV")
    x_train, y_train, share = _within_budget(x_train, y_train, n_classes)
    folds = min(FOLDS, int(np.bincount(y_train).max()))
    model = LogisticRegressionCV(
        Cs=STRENGTHS,
        cv=max(folds, 2),
        max_iter=MAX_ITER,
        scoring="neg_log_loss",  # the strength whose probabilities are best, not accuracy
        l1_ratios=(0.0,),  # L2
        use_legacy_attributes=False,
    )
    with warnings.catch_warnings():  # a strength that has not converged is still a model
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)  # rare classes in its own folds
        model.fit(x_train, y_train)
    proba = np.zeros((len(x_test), n_classes))
    proba[:, model.classes_] = model.predict_proba(x_test)
    out = proba[:, 1:] if task == "binary" else proba
    strength = f"C={float(np.ravel(model.C_)[0]):g}"
    cv = f"{max(folds, 2)}-fold CV"
    return Linear(out, "logistic regression", strength, cv, share or "the training rows")


def _within_budget(
    x: np.ndarray, y: np.ndarray, n_classes: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """The rows a logistic regression can afford (see BUDGET), and a note of the share."""
    rows = max(MIN_ROWS, int(BUDGET / (x.shape[1] * max(n_classes, 2))))
    if len(y) <= rows:
        return x, y, ""
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 else None
    keep, _ = train_test_split(
        np.arange(len(y)), train_size=rows, random_state=0, stratify=stratify
    )
    keep = np.sort(keep)
    return x[keep], y[keep], f"{rows} of the {len(y)} training rows (a compute budget)"
