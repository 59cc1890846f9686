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

STRENGTHS = np.logspace(-3, 3, 7)  # C of the logistic regression, alpha of the ridge
FOLDS = 3
MAX_ITER = 500


@dataclass(frozen=True)
class Linear:
    """The linear model's outputs on the test rows (as the network gives them: P(1), the
    class probabilities in code order, or values) and the strength chosen."""

    output: np.ndarray
    name: str  # "logistic regression" | "ridge regression"
    strength: str  # "C=0.1" | "alpha=10"
    chosen_by: str  # "3-fold CV" | "leave-one-out CV"

    def text(self) -> str:
        return f"{self.name} ({self.strength}, chosen by {self.chosen_by} on the training rows)"


def fit_linear(
    task: str, n_classes: int, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray
) -> Linear:
    """Fit on the training rows' features, predict the test rows'."""
    if task == "regression":
        ridge = RidgeCV(alphas=STRENGTHS).fit(x_train, y_train)
        out = ridge.predict(x_test).reshape(-1, 1)
        alpha = f"alpha={float(ridge.alpha_):g}"
        return Linear(out, "ridge regression", alpha, "leave-one-out CV")
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
    return Linear(out, "logistic regression", strength, f"{max(folds, 2)}-fold CV")
