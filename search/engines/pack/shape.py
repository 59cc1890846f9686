"""What one pack program is built for: the members' width class, depth, batch sizes, and
the space's activations and optimizers (`Shape`, the compiled program's cache key)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays
from search.engines.base import Member
from search.engines.carries import asks, describe, lacking
from search.engines.pack.carried import CARRIES
from search.models.knobs import HEADS_LOSS, loss_of
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
        dropout=any(_any_above(m.params, "dropout") for m in members),
        penalty=any(_any_above(m.params, "l1", "l2") for m in members),
        activations=_names(limits.activations, [m.params.activation for m in members]),
        optimizers=_names(limits.optimizers, [m.params.optimizer for m in members]),
        weighted=any(m.params.class_weight == "balanced" for m in members),
        min_delta=any(m.params.min_delta > 0 for m in members),
        losses=program_losses(data.task, [m.params for m in members]),
        per_layer=any(m.params.dropouts or m.params.l1s or m.params.l2s for m in members),
        constants=any(
            value is not None
            for m in members
            for value in (m.params.beta_1, m.params.beta_2, m.params.epsilon)
        ),
        bias_penalty=any(m.params.bias_l1 > 0 or m.params.bias_l2 > 0 for m in members),
        activity=any(m.params.activity_l1 > 0 or m.params.activity_l2 > 0 for m in members),
    )
    return shape, folds


_SAME = {"categorical_crossentropy": "sparse_categorical_crossentropy"}


def program_losses(task: str, params: list[TrialParams]) -> tuple[str, ...]:
    """The losses a program computes: none named when every member trains on its task's
    loss, else each member's (`search.engines.pack.losses`; categorical cross-entropy is
    the sparse one, on one-hot rows)."""
    names = sorted({program_loss(task, p) for p in params})
    return () if names == [HEADS_LOSS[task]] else tuple(names)


def program_loss(task: str, params: TrialParams) -> str:
    """The name of the loss a program computes for the member."""
    name = loss_of(params, task)
    return _SAME.get(name, name)


def _any_above(params: TrialParams, *names: str) -> bool:
    """Whether any hidden layer has one of these knobs (dropout, l1, l2) above zero."""
    return any(max(params.layer_values(name), default=0.0) > 0 for name in names)


def _names(allowed: tuple[str, ...], used: list[Any]) -> tuple[str, ...]:
    return tuple(sorted({*allowed, *(str(u).lower() for u in used)}))


def unpackable(params: TrialParams, sample_ndim: int = 1) -> str | None:
    """Why a member cannot be packed (the first feature the pack does not carry, as a
    person reads it), or None when it can."""
    lacks = lacking(asks(params, sample_ndim=sample_ndim), CARRIES)
    return describe(lacks[0]) if lacks else None
