"""A 95% interval for an estimate from its bootstrap resamples, that always holds it.

The percentile interval is the 2.5th to the 97.5th percentile of the resamples. A
statistic that the resampling biases (a macro average over many classes: a rare class
drops out of a resample and takes its term with it) shifts the resamples away from the
estimate, and the estimate can fall outside their percentiles. The interval here is the
percentile interval of the resamples moved so that their median is the estimate (median
bias corrected): the same width and skew, around the number printed. For a statistic
that resampling does not bias it is the percentile interval. It is then clipped to the
values the metric can take, which the estimate lies in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
# the values each metric can take (a difference of two: from low - high to high - low)
BOUNDS: dict[str, tuple[float, float]] = {
    **{
        name: (0.0, 1.0)
        for name in (
            "accuracy",
            "balanced_accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "pr_auc",
        )
    },
    **{name: (0.0, np.inf) for name in ("log_loss", "loss", "mse", "rmse", "mae")},
    "r2": (-np.inf, 1.0),
}


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


def interval(value: float, resamples: np.ndarray, bounds: tuple[float, float]) -> Interval:
    """`value` and the 95% interval of its resamples (NaN ones left out), moved to have
    `value` as their median and clipped to `bounds`: low <= value <= high whenever value
    and a resample are numbers."""
    finite = resamples[np.isfinite(resamples)]
    if not np.isfinite(value) or finite.size == 0:
        return Interval(float(value), float("nan"), float("nan"))
    tail = 100 * (1 - LEVEL) / 2
    low, median, high = np.percentile(finite, [tail, 50.0, 100 - tail])
    shift = value - median
    lo = float(np.clip(low + shift, *bounds))
    hi = float(np.clip(high + shift, *bounds))
    return Interval(float(value), min(lo, value), max(hi, value))


def bounds_of(metric: str, difference: bool = False) -> tuple[float, float]:
    """The values `metric` (or a difference of two of it) can take."""
    low, high = BOUNDS.get(metric, (-np.inf, np.inf))
    return (low - high, high - low) if difference else (low, high)
