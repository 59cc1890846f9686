"""The losses and the metric of the pack's program, for one member: Keras 3's formulas,
per row, from the member's logits (the task's head: sigmoid, softmax or linear).

A program whose members all train on their task's loss (`Shape.losses` empty) computes
it alone; otherwise each member's own loss is selected among those its program carries
(`h["loss"]`, an index into `Shape.losses`).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from search.models.knobs import HEADS_LOSS

Array = Any  # a jax.Array; the JAX stubs are not typed for mypy strict
EPSILON = 1e-7  # Keras' backend epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON]


def data_loss(shape: Any, logits: Array, y: Array, h: dict[str, Array]) -> Array:
    """Per-row loss of the member's own loss (the task's: binary and categorical
    cross-entropy from logits, or squared error)."""
    if not shape.losses:
        return _head_loss(shape.task, logits, y)
    out = _loss(shape.task, shape.losses[0], logits, y)
    for j, name in enumerate(shape.losses[1:], start=1):
        out = jnp.where(h["loss"] == j, _loss(shape.task, name, logits, y), out)
    return out


def quality(shape: Any, logits: Array, y: Array) -> Array:
    """Per-row Keras metric: accuracy for classification, absolute error for regression."""
    if shape.task == "binary":
        return ((logits[:, 0] > 0) == (y > 0.5)).astype(jnp.float32)
    if shape.task == "multiclass":
        return (jnp.argmax(logits, axis=1) == y.astype(jnp.int32)).astype(jnp.float32)
    return jnp.abs(logits[:, 0] - y)


def _head_loss(task: str, logits: Array, y: Array) -> Array:
    if task == "binary":
        z = logits[:, 0]
        return jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
    if task == "multiclass":
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, y.astype(jnp.int32)[:, None], axis=1)[:, 0]
    return jnp.square(logits[:, 0] - y)


def _loss(task: str, name: str, logits: Array, y: Array) -> Array:
    """One named Keras loss per row (`keras.losses`, default arguments)."""
    if name == HEADS_LOSS[task]:
        return _head_loss(task, logits, y)
    if task == "multiclass":  # categorical_hinge, on the softmax's probabilities
        p = jax.nn.softmax(logits)
        onehot = jax.nn.one_hot(y.astype(jnp.int32), p.shape[-1], dtype=p.dtype)
        pos = jnp.sum(onehot * p, axis=-1)
        neg = jnp.max((1.0 - onehot) * p, axis=-1)
        return jnp.maximum(neg - pos + 1.0, 0.0)
    if task == "binary":
        return _binary(name, jax.nn.sigmoid(logits[:, 0]), y)
    error = logits[:, 0] - y
    if name == "mae":
        return jnp.abs(error)
    if name == "huber":  # delta 1
        return jnp.where(jnp.abs(error) <= 1.0, 0.5 * jnp.square(error), jnp.abs(error) - 0.5)
    return error + jax.nn.softplus(error * -2.0) - math.log(2.0)  # log_cosh


def _binary(name: str, p: Array, y: Array) -> Array:
    """A binary loss on the sigmoid's probability `p` of the label `y` (0 or 1)."""
    if name == "mse":
        return jnp.square(y - p)
    if name in ("hinge", "squared_hinge"):  # labels 0/1 as -1/1
        margin = jnp.maximum(1.0 - (2.0 * y - 1.0) * p, 0.0)
        return margin if name == "hinge" else jnp.square(margin)
    clipped = jnp.clip(p, EPSILON, 1.0 - EPSILON)  # binary_focal_crossentropy, gamma 2
    bce = -(y * jnp.log(clipped) + (1.0 - y) * jnp.log(1.0 - clipped))
    p_t = y * p + (1 - y) * (1 - p)
    return jnp.power(1.0 - p_t, 2.0) * bce
