"""Scores of predictions, computed the same way for folds, trials and the final test."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# The validation loss of the predictions alone: Keras' val_loss less the L1/L2 penalty
# (search.objective logs it each epoch; early stopping and the pruner follow it).
DATA_LOSS = "val_data_loss"

# Per-epoch log keys that follow each objective metric (for pruning in holdout).
EPOCH_KEYS = {
    "loss": DATA_LOSS,
    "log_loss": DATA_LOSS,
    "mse": DATA_LOSS,
    "accuracy": "val_accuracy",
    "mae": "val_mae",
    # scored on the validation rows after each epoch (search.fitting), not logged by Keras
    "roc_auc": "val_roc_auc",
    "f1": "val_f1",
    "rmse": "val_rmse",
    "r2": "val_r2",
}
SCORED_EACH_EPOCH = ("roc_auc", "f1", "rmse", "r2")


def keras_metrics(task: str) -> list[str]:
    return ["mae"] if task == "regression" else ["accuracy"]


def scores(task: str, y_true: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """All the task's metrics; `output` is the network's output (probabilities or values)."""
    if task == "regression":
        pred = output.reshape(-1).astype(np.float64)
        mse = float(skm.mean_squared_error(y_true, pred))
        return {
            "loss": mse,
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(skm.mean_absolute_error(y_true, pred)),
            "r2": float(skm.r2_score(y_true, pred)),
        }
    proba = probabilities(task, output)
    labels = np.arange(proba.shape[1])
    pred = proba.argmax(axis=1)
    out = {
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "f1": float(
            skm.f1_score(
                y_true, pred, average="binary" if task == "binary" else "macro", zero_division=0.0
            )
        ),
    }
    out["loss"] = out["log_loss"]
    out["roc_auc"] = _roc_auc(task, y_true, proba)
    return out


def probabilities(task: str, output: np.ndarray) -> np.ndarray:
    """Class probabilities from the network's output, clipped as log loss needs them."""
    p = np.clip(output.astype(np.float64), 1e-7, 1 - 1e-7)
    if task == "binary":
        p = p.reshape(-1)
        return np.column_stack([1 - p, p])
    out: np.ndarray = p / p.sum(axis=1, keepdims=True)
    return out


def _roc_auc(task: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if task == "binary":
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    present = np.unique(y_true)
    if len(present) < proba.shape[1]:
        return float("nan")
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr"))
