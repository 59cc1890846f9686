"""Each member's hyperparameters as the pack's program reads them: its rates, penalties,
masks, optimizer and loss indices and constants, one row of the program's `h`; and each
epoch's on the host (the schedule's rate)."""

from __future__ import annotations

from typing import Any

import numpy as np

from search.engines.base import Member
from search.engines.pack.constants import B1, B2, EPSILON, LION_B2
from search.engines.pack.shape import batch, program_loss
from search.models.knobs import class_weights, scheduled_rate
from search.names import NAMED
from search.params import TrialParams


def member_hyper(shape: Any, m: Member, fold: int) -> dict[str, Any]:
    import jax

    params, widths = m.params, [int(w) for w in m.params.widths]
    mask = np.zeros((shape.depth, shape.width), np.float32)
    for i, w in enumerate(widths):
        mask[i, :w] = 1.0
    return {
        "learning_rate": np.float32(params.learning_rate),
        **_layer_knobs(shape, params),
        "weight_decay": np.float32(params.keras_weight_decay or 0.0),
        "momentum": np.float32(params.momentum),
        "nesterov": np.float32(params.nesterov),
        "batch_norm": np.float32(params.batch_norm),
        "activation": np.int32(shape.activations.index(params.activation.lower())),
        "optimizer": np.int32(shape.optimizers.index(params.optimizer.lower())),
        "mask": mask,
        "active": (np.arange(shape.depth) < len(widths)).astype(np.float32),
        "fold": np.int32(fold),
        "rows": np.int32(len(m.arrays.y_train)),
        "accum": np.int32(batch(params, shape.batch) // shape.micro),
        "batches": np.int32(len(m.arrays.y_train) // batch(params, shape.batch)),
        "val_rows": np.int32(len(m.arrays.y_val)),
        "key": np.asarray(jax.random.key_data(jax.random.key(m.seed))),
        "live": True,
        **({"class_w": _class_weights(shape, m)} if shape.weighted else {}),
        **({"min_delta": np.float32(params.min_delta)} if shape.min_delta else {}),
        **(_constants(params) if shape.constants else {}),
        **_regularizers(shape, params),
        **({"loss": np.int32(_loss_index(shape, params))} if shape.losses else {}),
        "schedule": np.int32(SCHEDULES.index(params.schedule)),
    }


def _layer_knobs(shape: Any, params: TrialParams) -> dict[str, Any]:
    """Dropout, L1 and L2: the member's one value each, or (a program with per-layer
    values) one per hidden layer, zero beyond the member's depth."""
    names = ("l1", "l2", "dropout")
    if not shape.per_layer:
        return {name: np.float32(getattr(params, name)) for name in names}
    out = {name: np.zeros(shape.depth, np.float32) for name in names}
    for name in names:
        values = params.layer_values(name)
        out[name][: len(values)] = values
    return out


def _constants(params: TrialParams) -> dict[str, Any]:
    """The member's beta_1, beta_2 and epsilon (Keras' defaults where it leaves them
    unset), and 1 - beta_1 and 1 - beta_2 in double precision, as Keras computes them."""
    b2 = LION_B2 if params.optimizer.lower() == "lion" else B2
    defaults = {"beta_1": B1, "beta_2": b2, "epsilon": EPSILON}
    values = {"beta_1": params.beta_1, "beta_2": params.beta_2, "epsilon": params.epsilon}
    out = {k: defaults[k] if v is None else v for k, v in values.items()}
    out |= {f"one_minus_{k}": 1.0 - out[k] for k in ("beta_1", "beta_2")}
    return {k: np.float32(v) for k, v in out.items()}


def _loss_index(shape: Any, params: TrialParams) -> int:
    """The member's loss among those its program computes."""
    return int(shape.losses.index(program_loss(shape.task, params)))


def _regularizers(shape: Any, params: TrialParams) -> dict[str, Any]:
    """The member's bias and activity penalties, where its program computes them (a
    member with batch normalization has no bias to penalize)."""
    out: dict[str, Any] = {}
    if shape.bias_penalty:
        off = params.batch_norm
        out["bias_l1"] = np.float32(0.0 if off else params.bias_l1)
        out["bias_l2"] = np.float32(0.0 if off else params.bias_l2)
    if shape.activity:
        out["activity_l1"] = np.float32(params.activity_l1)
        out["activity_l2"] = np.float32(params.activity_l2)
    return out


def _class_weights(shape: Any, m: Member) -> np.ndarray:
    """The member's weight of each class (ones without `class_weight`), from its rows."""
    classes = 2 if shape.task == "binary" else shape.outputs
    out = np.ones(classes, np.float32)
    for c, w in (class_weights(m.params, m.arrays.y_train, classes) or {}).items():
        out[c] = w
    return out


SCHEDULES = NAMED["schedule"]


HOST_ONLY = ("schedule", "member")  # what the host reads; the program never sees them


def epoch_hyper(h: dict[str, np.ndarray], epoch: int, members: list[Member]) -> dict[str, Any]:
    """The hyperparameters the program gets for an epoch: each member's learning rate after
    its schedule, as Keras' LearningRateScheduler sets it at the epoch's start (computed in
    double precision, stored in float32), and the epoch; not the host's own keys."""
    out = {k: v for k, v in h.items() if k not in HOST_ONLY}
    out["epoch"] = np.full(len(h["live"]), epoch, np.int32)
    if np.any(h["schedule"]):
        rates = out["learning_rate"].copy()
        for row in np.flatnonzero(h["schedule"]):
            rates[row] = scheduled_rate(members[int(h["member"][row])].params, epoch)
        out["learning_rate"] = rates
    return out
