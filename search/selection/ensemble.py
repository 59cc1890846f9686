"""An ensemble of the best trials, chosen on out-of-fold predictions, never on test rows.

The selection's recheck trains each candidate on new folds of the training rows; every
training row is a validation row of exactly one fold, so each candidate has one
out-of-fold output per row. Greedy ensemble selection with replacement (Caruana et al.,
2004) starts from the chosen single trial and adds, one at a time, the candidate whose
addition most improves the objective on those outputs, until none does. The ensemble
replaces the single trial only when its gain there is outside the noise: the 95% paired
bootstrap interval of ensemble - single over the out-of-fold rows excludes 0 (`gain`);
otherwise the single trial stays, and the log says so with the interval. Its networks'
outputs are averaged with the weights the selection gave them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from search.metrics import scores
from search.selection.bootstrap import bootstrap_scores, resample_counts
from search.selection.intervals import Interval, bounds_of, interval

ROUNDS = 25  # additions at most; with replacement, so a good trial may weigh more


@dataclass(frozen=True)
class Ensemble:
    """Trials and how often the greedy selection took each; their out-of-fold score and
    that of the single trial it started from."""

    weights: dict[int, int]
    score: float
    single: float
    rows: int = 0  # out-of-fold rows every trial covers, where both were scored

    @property
    def trials(self) -> list[int]:
        return list(self.weights)

    def text(self, metric: str, start: int) -> str:
        picks = ", ".join(f"trial {t} x{w}" for t, w in self.weights.items())
        return (
            f"ensemble of {picks}: out-of-fold {metric} {self.score:.4f} "
            f"vs {self.single:.4f} for trial {start} alone"
        )


def out_of_fold(
    outputs: dict[int, list[tuple[np.ndarray, np.ndarray]]], n: int
) -> dict[int, np.ndarray]:
    """Each trial's validation outputs (rows, output) put together, one row per training
    row (NaN where no fold validated the row)."""
    out = {}
    for trial, parts in outputs.items():
        width = parts[0][1].reshape(len(parts[0][0]), -1).shape[1]
        whole = np.full((n, width), np.nan)
        for rows, values in parts:
            whole[rows] = values.reshape(len(rows), -1)
        out[trial] = whole
    return out


def greedy(
    task: str,
    metric: str,
    y: np.ndarray,
    outputs: dict[int, np.ndarray],
    *,
    start: int,
    minimize: bool,
) -> Ensemble:
    """Greedy selection with replacement from `start`, on the rows every trial covers."""
    covered = np.all([np.isfinite(o).all(axis=1) for o in outputs.values()], axis=0)
    y, outputs = y[covered], {t: o[covered] for t, o in outputs.items()}
    sign = 1.0 if minimize else -1.0

    def score(total: np.ndarray, count: int) -> float:
        return sign * scores(task, y, total / count)[metric]

    picked, total = [start], outputs[start].copy()
    best = single = score(total, 1)
    for _ in range(ROUNDS):
        trial, value = min(
            ((t, score(total + o, len(picked) + 1)) for t, o in outputs.items()),
            key=lambda pair: pair[1],
        )
        if not value < best:
            break
        picked.append(trial)
        total += outputs[trial]
        best = value
    return Ensemble(dict(Counter(picked)), sign * best, sign * single, int(covered.sum()))


def gain(
    task: str,
    metric: str,
    y: np.ndarray,
    outputs: dict[int, np.ndarray],
    ensemble: Ensemble,
    *,
    start: int,
    n: int,
    seed: int,
) -> Interval:
    """Ensemble - single trial on `metric` over the out-of-fold rows every trial covers,
    with its 95% paired bootstrap interval (`n` resamples of those rows)."""
    covered = np.all([np.isfinite(o).all(axis=1) for o in outputs.values()], axis=0)
    y = y[covered]
    parts = [w * outputs[t][covered] for t, w in ensemble.weights.items()]
    mixed: np.ndarray = np.sum(parts, axis=0) / sum(ensemble.weights.values())
    alone = outputs[start][covered]
    counts = resample_counts(len(y), n, seed)
    a = bootstrap_scores(task, y, mixed, counts)[metric]
    b = bootstrap_scores(task, y, alone, counts)[metric]
    value = scores(task, y, mixed)[metric] - scores(task, y, alone)[metric]
    return interval(value, a - b, bounds_of(metric, difference=True))


def real_gain(difference: Interval, *, minimize: bool) -> bool:
    """The gain lies outside the noise: its whole interval on the better side of 0."""
    return difference.high < 0 if minimize else difference.low > 0
