"""Scores of predictions, computed the same way for folds, trials and the final test."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# The validation loss of the predictions alone: Keras' val_loss less the L1/L2 penalty
# (search.trials.objective logs it each epoch; early stopping and the pruner follow it).
DATA_LOSS = "val_data_loss"

# Per-epoch log keys that follow each objective metric (for pruning in holdout).
EPOCH_KEYS = {
    "loss": DATA_LOSS,
    "log_loss": DATA_LOSS,
    "mse": DATA_LOSS,
    "accuracy": "val_accuracy",
    "mae": "val_mae",
    # scored on the validation rows after each epoch (the sequential engine), not logged by Keras
    "roc_auc": "val_roc_auc",
    "f1": "val_f1",
    "precision": "val_precision",
    "recall": "val_recall",
    "balanced_accuracy": "val_balanced_accuracy",
    "pr_auc": "val_pr_auc",
    "rmse": "val_rmse",
    "r2": "val_r2",
}
SCORED_EACH_EPOCH = (
    "roc_auc",
    "f1",
    "rmse",
    "r2",
    "precision",
    "recall",
    "balanced_accuracy",
    "pr_auc",
)


def keras_metrics(task: str) -> list[str]:
    return ["mae"] if task == "regression" else ["accuracy"]


def scores(
    task: str, y_true: np.ndarray, output: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """All the task's metrics; `output` is the network's output (probabilities or values).
    A binary row is labelled positive when its probability exceeds `threshold`."""
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
    pred = labels_of(task, proba, threshold)
    # binary: of class 1; multiclass: the mean over every class of the model (the training
    # labels), whether or not these rows hold or predict it; 0/0 counts 0 (as the bootstrap)
    average = "binary" if task == "binary" else "macro"
    rates = {"average": average, "zero_division": 0.0}
    if task != "binary":
        rates["labels"] = labels
    out = {
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "f1": float(skm.f1_score(y_true, pred, **rates)),
        "precision": float(skm.precision_score(y_true, pred, **rates)),
        "recall": float(skm.recall_score(y_true, pred, **rates)),
    }
    out["loss"] = out["log_loss"]
    out["roc_auc"] = _roc_auc(task, y_true, proba)
    out["balanced_accuracy"] = _balanced_accuracy(y_true, pred)
    out["pr_auc"] = _pr_auc(task, y_true, proba)
    return out


def _balanced_accuracy(y_true: np.ndarray, pred: np.ndarray) -> float:
    """The mean recall over the classes present in `y_true` (scikit-learn's)."""
    present = np.unique(y_true)
    return float(np.mean([np.mean(pred[y_true == c] == c) for c in present]))


def _pr_auc(task: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """Average precision (the area under the precision-recall curve, as scikit-learn's
    step sum); macro over classes, NaN when a class has no row."""
    if task == "binary":
        if not np.any(y_true == 1):
            return float("nan")
        return float(skm.average_precision_score(y_true == 1, proba[:, 1]))
    if len(np.unique(y_true)) < proba.shape[1]:
        return float("nan")
    return float(
        np.mean(
            [skm.average_precision_score(y_true == c, proba[:, c]) for c in range(proba.shape[1])]
        )
    )


def labels_of(task: str, proba: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Class codes: the most probable class, or for a binary task 1 where P(1) exceeds
    `threshold` (0.5: the most probable, ties to class 0)."""
    if task == "binary":
        return (proba[:, 1] > threshold).astype(np.int64)
    out: np.ndarray = proba.argmax(axis=1)
    return out


# metrics whose value depends on where a binary task's decision threshold lies
THRESHOLDED = ("accuracy", "f1", "balanced_accuracy")


def tune_threshold(y: np.ndarray, output: np.ndarray, metric: str) -> float:
    """The threshold that maximizes `metric` on these (validation) rows: the midpoint
    below the best of the distinct probabilities, 0.5 when it does no better."""
    p = np.unique(probabilities("binary", output)[:, 1])
    cuts = np.r_[0.0, (p[1:] + p[:-1]) / 2]
    best, value = 0.5, scores("binary", y, output, 0.5)[metric]
    for cut in cuts:
        score = scores("binary", y, output, float(cut))[metric]
        if score > value:
            best, value = float(cut), score
    return best


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
    if task == "binary" or proba.shape[1] == 2:  # two classes forced multiclass: the same
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    present = np.unique(y_true)
    if len(present) < proba.shape[1]:
        return float("nan")
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr"))
