"""An ensemble of the best trials, chosen on out-of-fold predictions, never on test rows.

The selection's recheck trains each candidate on new folds of the training rows; every
training row is a validation row of exactly one fold, so each candidate has one
out-of-fold output per row. Greedy ensemble selection with replacement (Caruana et al.,
2004) starts from the chosen single trial and adds, one at a time, the candidate whose
addition most improves the objective on those outputs, until none does. The ensemble
replaces the single trial only when it scores better there; its networks' outputs are
averaged with the weights the selection gave them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from search.metrics import scores

ROUNDS = 25  # additions at most; with replacement, so a good trial may weigh more


@dataclass(frozen=True)
class Ensemble:
    """Trials and how often the greedy selection took each; their out-of-fold score and
    that of the single trial it started from."""

    weights: dict[int, int]
    score: float
    single: float

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
    return Ensemble(dict(Counter(picked)), sign * best, sign * single)
