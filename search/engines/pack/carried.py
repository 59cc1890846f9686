"""What the pack engine carries, as data (`search.engines.carries`): the optimizers and
activations its compiled program computes, and the knobs beyond the plain MLP it applies
as Keras does (`KNOBS`). Everything else a trial may ask for trains in the sequential
engine, and the line that says so names it."""

from __future__ import annotations

from search.names import ACTIVATIONS as NAMED_ACTIVATIONS

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd", "adamax", "adagrad", "lion")
ACTIVATIONS = NAMED_ACTIVATIONS  # every activation a space file may name
LOSSES = (
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "hinge",
    "squared_hinge",
    "mse",
    "sparse_categorical_crossentropy",
    "categorical_crossentropy",
    "categorical_hinge",
    "mae",
    "huber",
    "log_cosh",
)
KNOBS = (
    "per-layer:dropout",
    "per-layer:l1",
    "per-layer:l2",
    "constant:beta_1",
    "constant:beta_2",
    "constant:epsilon",
    "bias_regularizer",
    "activity_regularizer",
    "reduce_lr",
    *(f"loss:{name}" for name in LOSSES),
)
CARRIES = frozenset(
    [f"optimizer:{name}" for name in OPTIMIZERS]
    + [f"activation:{name}" for name in ACTIVATIONS]
    + list(KNOBS)
)
