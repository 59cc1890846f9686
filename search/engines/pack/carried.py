"""What the pack engine carries, as data (`search.engines.carries`): the optimizers and
activations its compiled program computes. Everything else a trial may ask for (a
hypermodel, convolutions, images, mixed precision, per-layer knobs, other losses, the
optimizers' constants, ReduceLROnPlateau, bias and activity regularizers) trains in the
sequential engine, and the line that says so names it."""

from __future__ import annotations

from search.names import ACTIVATIONS as NAMED_ACTIVATIONS

OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd", "adamax", "adagrad")
ACTIVATIONS = NAMED_ACTIVATIONS  # every activation a space file may name
CARRIES = frozenset(
    [f"optimizer:{name}" for name in OPTIMIZERS] + [f"activation:{name}" for name in ACTIVATIONS]
)
