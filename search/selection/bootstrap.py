"""Paired bootstrap of the final test's metrics, all resamples at once.

A resample is a vector of counts (how often each test row was drawn); every metric of
`search.metrics.scores` is a weighted sum over rows, or a ratio of such sums, so a
thousand resamples are a few matrix products rather than a thousand calls of
scikit-learn. The values equal `scores` on the resampled rows (tests check it).
"""

from __future__ import annotations

import numpy as np

from search.metrics import labels_of, probabilities


def resample_counts(n_rows: int, n: int, seed: int) -> np.ndarray:
    """(n, n_rows) counts: resample i drew row j counts[i, j] times."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [np.bincount(rng.integers(0, n_rows, n_rows), minlength=n_rows) for _ in range(n)]
    ).astype(np.float64)


def bootstrap_scores(
    task: str, y: np.ndarray, output: np.ndarray, counts: np.ndarray, threshold: float = 0.5
) -> dict[str, np.ndarray]:
    """Every metric of `scores(task, y, output, threshold)` on each resample `counts`
    describes."""
    if task == "regression":
        return _regression(y.astype(np.float64), output.reshape(-1).astype(np.float64), counts)
    proba = probabilities(task, output)
    k = proba.shape[1]
    total = counts.sum(axis=1)
    pred = labels_of(task, proba, threshold)
    out = {
        "log_loss": counts @ -np.log(proba[np.arange(len(y)), y]) / total,
        "accuracy": counts @ (pred == y).astype(np.float64) / total,
        "f1": _f1(task, y, pred, counts, k),
    }
    out["loss"] = out["log_loss"]
    out["roc_auc"] = _roc_auc(task, y, proba, counts)
    out |= _rates(task, y, pred, counts, k)
    if task == "binary":
        out["pr_auc"] = _average_precision(y == 1, proba[:, 1], counts)
    else:
        per_class = [_average_precision(y == c, proba[:, c], counts) for c in range(k)]
        out["pr_auc"] = np.stack(per_class).mean(axis=0)  # NaN where a class is missing
    return out


def _rates(
    task: str, y: np.ndarray, pred: np.ndarray, counts: np.ndarray, k: int
) -> dict[str, np.ndarray]:
    """Precision and recall (of class 1, or the mean over all k classes, 0/0 counting 0,
    as `scores`), and balanced accuracy (mean recall over the classes in the resample)."""
    precision, recall, in_y = [], [], []
    for c in range(k):
        tp, fp, fn = _confusion(y, pred, counts, c)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision.append(np.where(tp + fp > 0, tp / (tp + fp), 0.0))
            recall.append(np.where(tp + fn > 0, tp / (tp + fn), 0.0))
        in_y.append(tp + fn > 0)
    present = np.stack(in_y)
    balanced = (np.stack(recall) * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1)
    if task == "binary":
        return {"precision": precision[1], "recall": recall[1], "balanced_accuracy": balanced}
    return {
        "precision": np.stack(precision).mean(axis=0),
        "recall": np.stack(recall).mean(axis=0),
        "balanced_accuracy": balanced,
    }


def _confusion(
    y: np.ndarray, pred: np.ndarray, counts: np.ndarray, c: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class c's true positives, false positives and false negatives in each resample."""
    tp = counts @ ((pred == c) & (y == c)).astype(np.float64)
    fp = counts @ ((pred == c) & (y != c)).astype(np.float64)
    fn = counts @ ((pred != c) & (y == c)).astype(np.float64)
    return tp, fp, fn


def _average_precision(positive: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted average precision: over the distinct scores from the highest down, the
    recall gained at each times the precision there (scikit-learn's step sum)."""
    order = np.argsort(-score, kind="stable")
    s, pos, w = score[order], positive[order], counts[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    tp = np.cumsum(np.add.reduceat(w * pos, starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(w * ~pos, starts, axis=1), axis=1)
    n_pos = tp[:, -1:]
    gained = np.diff(np.c_[np.zeros(len(w)), tp], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (gained * precision).sum(axis=1) / n_pos[:, 0]
    return np.where(n_pos[:, 0] > 0, ap, np.nan)


def _regression(y: np.ndarray, pred: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
    total = counts.sum(axis=1)
    err = y - pred
    mse = counts @ err**2 / total
    mean = counts @ y / total
    sst = counts @ y**2 - total * mean**2  # weighted sum of squares about the mean
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(sst > 0, 1.0 - (mse * total) / sst, np.where(mse == 0, 1.0, 0.0))
    return {
        "loss": mse,
        "mse": mse,
        "rmse": np.sqrt(mse),
        "mae": counts @ np.abs(err) / total,
        "r2": r2,
    }


def _f1(task: str, y: np.ndarray, pred: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """F1 of class 1, or the mean over all k classes (0/0 counting 0, as `scores`)."""
    per_class = []
    for c in [1] if task == "binary" else range(k):
        tp, fp, fn = _confusion(y, pred, counts, c)
        denom = 2 * tp + fp + fn
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class.append(np.where(denom > 0, 2 * tp / denom, 0.0))
    macro: np.ndarray = np.stack(per_class).mean(axis=0)
    return macro


def _roc_auc(task: str, y: np.ndarray, proba: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if task == "binary":
        return _auc(y == 1, proba[:, 1], counts)
    k = proba.shape[1]
    aucs = np.stack([_auc(y == c, proba[:, c], counts) for c in range(k)])
    macro: np.ndarray = aucs.mean(axis=0)  # NaN where a class is missing, as `scores` gives
    return macro


def _auc(positive: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney: P(score of a positive > score of a negative), ties half."""
    order = np.argsort(score, kind="stable")
    s, pos, w = score[order], positive[order], counts[:, order]
    w_pos, w_neg = w * pos, w * ~pos
    # group equal scores: a positive beats every negative of a lower score, ties count half
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    neg_group = np.add.reduceat(w_neg, starts, axis=1)
    pos_group = np.add.reduceat(w_pos, starts, axis=1)
    below = np.cumsum(neg_group, axis=1) - neg_group
    wins = (pos_group * (below + 0.5 * neg_group)).sum(axis=1)
    n_pos, n_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)
