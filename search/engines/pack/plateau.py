"""Keras' ReduceLROnPlateau for one member of a pack, on the host: the member's learning
rate is state the host keeps between epochs, as the schedules' rates are."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_DELTA = 1e-4  # Keras' default: an improvement is a drop by more than this
MIN_LR = 0.0  # Keras' default floor (and no cooldown)


@dataclass
class Plateau:
    """A member's plateau state: ReduceLROnPlateau's `best` and `wait` on the lowered
    value (`val_data_loss`, as the sequential engine monitors it)."""

    factor: float
    patience: int
    best: float | None = None
    wait: int = 0

    def after_epoch(self, value: float, rate: float) -> float | None:
        """The member's new learning rate after an epoch whose monitored value is `value`
        and whose rate was `rate` (as float32 holds it), or None when it stays: cut by
        `factor` once the value has not improved for `patience` epochs, then wait again."""
        if self.best is None or (not math.isnan(value) and value + MIN_DELTA < self.best):
            self.best, self.wait = value, 0
            return None
        self.wait += 1
        if self.wait < self.patience or not rate > np.float32(MIN_LR):
            return None
        self.wait = 0
        return float(np.float32(max(rate * self.factor, MIN_LR)))
