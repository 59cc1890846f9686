"""The Keras callbacks the sequential engine trains with: a stop request, the validation
loss of the predictions (`val_data_loss`), an objective metric scored each epoch, and the
engine's per-epoch hook (the pruner's)."""

from __future__ import annotations

import math

import keras
import numpy as np

from search.data.foldarrays import FoldArrays
from search.data.target import TargetScale
from search.engines.base import STOP, EpochHook, Member
from search.metrics import DATA_LOSS, scores
from search.models.forward import penalty, predict


class StopOnRequest(keras.callbacks.Callback):  # type: ignore[misc]
    """Turn a stop request into KeyboardInterrupt at an epoch boundary (Ctrl-C on a pool)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt("stop requested")


class ValidationDataLoss(keras.callbacks.Callback):  # type: ignore[misc]
    """Log `val_data_loss`: Keras' val_loss less the L1/L2 penalty of the current weights.

    Keras adds the penalty to val_loss, so a strongly regularized model looks worse than its
    predictions are, and one whose weights shrink looks better while its predictions get
    worse. The objective scores the predictions alone (log loss, MSE); early stopping, the
    restored epoch and the pruner follow the same number. Listed first, so that the
    callbacks after it and the history see the value. With a `TargetScale`, the value
    and the `mae` metrics are put back in the target's units (search.data.target).
    """

    def __init__(
        self,
        target: TargetScale | None = None,
        power: int = 2,
        rows: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        self.target, self.power, self.rows = target, power, rows

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is not None and self.rows is not None:  # an activity regularizer's model
            logs[DATA_LOSS] = data_loss(self.model, *self.rows)
        elif logs is not None and "val_loss" in logs:
            logs[DATA_LOSS] = float(logs["val_loss"]) - penalty(self.model)
        if logs is not None and self.target is not None:
            self.target.logs(logs, self.power)


class EpochScore(keras.callbacks.Callback):  # type: ignore[misc]
    """Log `val_<metric>` after each epoch: the objective's metric (one Keras does not
    log, as ROC AUC) on the validation rows, in the target's units; NaN for outputs that
    are not finite. Early stopping and the holdout pruner can then follow it."""

    def __init__(
        self, metric: str, task: str, arrays: FoldArrays, target: TargetScale | None
    ) -> None:
        super().__init__()
        self.metric, self.task, self.arrays, self.target = metric, task, arrays, target

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is None:
            return
        out = predict(self.model, self.arrays.x_val)
        if self.target is not None:
            out = self.target.inverse(out)
        value = math.nan
        if np.all(np.isfinite(out)):
            value = scores(self.task, self.arrays.y_val, out)[self.metric]
        logs[f"val_{self.metric}"] = value


class EpochHookCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """An `EpochHook` as a Keras callback: stop training when it answers True."""

    def __init__(self, member: Member, hook: EpochHook) -> None:
        super().__init__()
        self.member, self.hook, self.pruned_at = member, hook, -1

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.hook(self.member, epoch, dict(logs or {})):
            self.pruned_at = epoch
            self.model.stop_training = True


def data_loss(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """The model's loss on these rows, from its predictions alone: what Keras' val_loss
    is without the penalties, computed directly where an activity regularizer (a penalty
    on each batch's outputs, which Keras adds to val_loss) makes subtracting it unsure."""
    out = np.asarray(predict(model, x), dtype=np.float64)
    y = np.asarray(y)
    if y.ndim == 1 and out.ndim == 2 and out.shape[1] == 1:
        y = y.reshape(-1, 1)
    loss = keras.losses.get(model.loss)
    return float(np.mean(keras.ops.convert_to_numpy(loss(y, out))))
