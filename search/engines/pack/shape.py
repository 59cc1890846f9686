"""What one pack program is built for: the members' width class, depth, batch sizes, and
the space's activations and optimizers (`Shape`, the compiled program's cache key)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays
from search.engines.base import Member
from search.params import TrialParams


@dataclass(frozen=True)
class Limits:
    """What every program of a search is built for, whatever its members: the deepest
    network and every activation and optimizer the space allows (fewer distinct programs,
    so compiled ones are reused across packs and searches), and a width to pad to."""

    width: int = 0
    depth: int = 0
    activations: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "depth": self.depth,
            "activations": list(self.activations),
            "optimizers": list(self.optimizers),
        }


def width_class(params: TrialParams) -> int:
    """The padded width a member trains at: the power of two at or above its widest layer
    (at least 8). Members are grouped by it: arithmetic grows with the square of the
    width, so a narrow member padded to a wide one would pay many times its own cost."""
    widest = max(int(w) for w in params.widths)
    return 1 << max(3, (widest - 1).bit_length())


def batch(params: TrialParams, rows: int) -> int:
    return max(1, min(params.batch_size, rows))


def group_shape(
    members: list[Member], data: Dataset, limits: Limits
) -> tuple[Any, list[FoldArrays]]:
    """The program's shape for these members, and the distinct folds they train on."""
    # JAX loads with the compiled program's module, when a pack first trains
    from search.engines.pack.net import Shape

    folds: list[FoldArrays] = []
    for m in members:
        if not any(m.arrays is f for f in folds):
            folds.append(m.arrays)
    rows = min(len(f.y_train) for f in folds)
    sizes = [batch(m.params, rows) for m in members]
    micro = math.gcd(*sizes)
    steps = max(
        len(m.arrays.y_train) // b * (b // micro) for m, b in zip(members, sizes, strict=True)
    )
    shape = Shape(
        depth=max(limits.depth, *(len(m.params.widths) for m in members)),
        width=max(limits.width, *(width_class(m.params) for m in members)),
        features=int(folds[0].x_train.shape[1]),
        outputs=data.n_classes if data.task == "multiclass" else 1,
        batch=max(sizes),
        micro=micro,
        steps=steps,
        task=data.task,
        batch_norm=any(m.params.batch_norm for m in members),
        dropout=any(m.params.dropout > 0 for m in members),
        penalty=any(m.params.l1 > 0 or m.params.l2 > 0 for m in members),
        activations=_names(limits.activations, [m.params.activation for m in members]),
        optimizers=_names(limits.optimizers, [m.params.optimizer for m in members]),
        weighted=any(m.params.class_weight == "balanced" for m in members),
        min_delta=any(m.params.min_delta > 0 for m in members),
    )
    return shape, folds


def _names(allowed: tuple[str, ...], used: list[Any]) -> tuple[str, ...]:
    return tuple(sorted({*allowed, *(str(u).lower() for u in used)}))


def unpackable(params: TrialParams) -> str | None:
    """Why a member cannot be packed, or None when it can."""
    # JAX loads with the compiled program's module, when a pack first trains
    from search.engines.pack.net import ACTIVATIONS, OPTIMIZERS

    if params.hypermodel:
        return "a KerasTuner hypermodel"
    if params.optimizer.lower() not in OPTIMIZERS:
        return f"the {params.optimizer} optimizer"
    if params.activation not in ACTIVATIONS:
        return f"the {params.activation} activation"
    if params.precision != "float32":
        return "mixed precision"
    if params.conv_blocks:
        return "convolution blocks"
    if params.max_tokens:
        return "a searched vocabulary size (members of several input widths)"
    per_layer = {"dropout": params.dropouts, "l1": params.l1s, "l2": params.l2s}
    for name, values in per_layer.items():
        if values:
            return f"per-layer {name}"
    unpacked = {  # knobs the pack's program does not carry: trained one model at a time
        "Adam's beta_1": params.beta_1 is not None,
        "Adam's beta_2": params.beta_2 is not None,
        "an optimizer's epsilon": params.epsilon is not None,
        "a loss other than the task's": params.loss != "auto",
        "ReduceLROnPlateau": params.reduce_lr > 0,
        "a bias regularizer": params.bias_l1 > 0 or params.bias_l2 > 0,
        "an activity regularizer": params.activity_l1 > 0 or params.activity_l2 > 0,
    }
    for what, applies in unpacked.items():
        if applies:
            return what
    return None
