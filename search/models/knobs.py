"""The training knobs a space file sets beside the architecture (the course's): the loss,
class weights, the learning rate over the epochs and on plateaus.

Each applies to the built-in MLP in the sequential engine, at the refit as in the folds
(a plateau needs validation rows: not at the refit). The pack engine carries them too
(docs/engines.md lists what each engine carries).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from search.params import TrialParams

HEADS_LOSS = {
    "binary": "binary_crossentropy",
    "multiclass": "sparse_categorical_crossentropy",
    "regression": "mse",
}


def loss_of(params: TrialParams, task: str) -> str:
    """The trial's loss: the space's choice, or the one that follows the task."""
    return HEADS_LOSS[task] if params.loss == "auto" else params.loss


def own_loss(params: TrialParams, task: str) -> bool:
    """True when the trial trains on another loss than the task's (its `val_data_loss` is
    then that loss, not the objective's log loss or MSE)."""
    return loss_of(params, task) != HEADS_LOSS[task]


def loss_power(params: TrialParams) -> int:
    """How a regression loss scales with the target's units: MSE 2, MAE 1, others (Huber,
    log-cosh) not at all (their `val_data_loss` stays on the standardized target)."""
    return {"mse": 2, "auto": 2, "mae": 1}.get(params.loss, 0)


def class_weights(params: TrialParams, y: np.ndarray, n_classes: int) -> dict[int, float] | None:
    """`balanced`: each class weighs n / (k * its count) in the training loss, as
    scikit-learn's `class_weight="balanced"`; from the rows the model trains on."""
    if params.class_weight != "balanced" or not n_classes:
        return None
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes)
    present = counts > 0
    weight = len(y) / (int(present.sum()) * np.maximum(counts, 1))
    return {int(c): float(w) for c, w in enumerate(weight) if present[c]}


def scheduled_rate(params: TrialParams, epoch: int) -> float:
    """The learning rate of a 0-based epoch under the trial's schedule: cosine decay over
    its maximum epochs, exponential decay by `lr_decay` each epoch, or constant."""
    schedule, base = params.schedule, params.learning_rate
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * epoch / params.epochs))
    if schedule == "exponential":
        return base * params.lr_decay**epoch
    return base


def lr_callbacks(
    params: TrialParams, *, monitor: str = "", mode: str = "min"
) -> list[keras.callbacks.Callback]:
    """The schedule (cosine or exponential decay per epoch from the trial's learning rate,
    cosine over its maximum epochs) and, with a `monitor`, ReduceLROnPlateau."""
    out: list[keras.callbacks.Callback] = []
    if params.schedule != "constant":
        out.append(keras.callbacks.LearningRateScheduler(lambda e, lr: scheduled_rate(params, e)))
    if params.reduce_lr > 0 and monitor:
        out.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor=monitor,
                mode=mode,
                factor=params.reduce_lr,
                patience=params.reduce_lr_patience,
                verbose=0,
            )
        )
    return out
