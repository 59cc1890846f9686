"""Keras' regularizers in the pack's program, for one member: the L1/L2 penalty of the
hidden layers' kernels (one strength per member, or one per layer) and biases, and the
activity penalty of their outputs, as Keras adds them to the loss and to val_loss (never
to `val_data_loss`)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

Array = Any  # a jax.Array; the JAX stubs are not typed for mypy strict


def magnitude(w: Array) -> Array:
    """|w| whose gradient at 0 is 0 (JAX's `abs` has 1 there): the padding's zero weights
    stay zero under an L1 penalty, as the member's network has no such weights."""
    return w * jnp.sign(w)


def penalty(shape: Any, p: dict[str, Array], h: dict[str, Array]) -> Array:
    """Keras' L1/L2 penalty of the hidden layers' kernels and (`bias_l1`, `bias_l2`)
    biases; not the output layer's."""
    kernels = _kernels(shape, p, h)
    if not shape.bias_penalty:
        return kernels
    biases = [p["b0"], p["bh"]]  # zero for a member with batch norm: it has none
    l1 = sum(jnp.sum(magnitude(b)) for b in biases)
    l2 = sum(jnp.sum(jnp.square(b)) for b in biases)
    return kernels + h["bias_l1"] * l1 + h["bias_l2"] * l2


def activity(h: dict[str, Array], out: Array) -> Array:
    """Per row, the L1/L2 activity penalty of one hidden Dense layer's output (before batch
    normalization and the activation), as Keras' `activity_regularizer`; Keras adds its
    mean over the batch's rows to the loss."""
    l1 = h["activity_l1"] * jnp.sum(magnitude(out), axis=-1)
    return l1 + h["activity_l2"] * jnp.sum(jnp.square(out), axis=-1)


def _kernels(shape: Any, p: dict[str, Array], h: dict[str, Array]) -> Array:
    if not shape.penalty:
        return jnp.zeros(())
    if shape.per_layer:
        return _per_layer(p, h)
    kernels = [p["w0"], p["wh"]]  # not gamma and beta: Keras regularizes kernels only
    l1 = sum(jnp.sum(magnitude(w)) for w in kernels)
    l2 = sum(jnp.sum(jnp.square(w)) for w in kernels)
    return h["l1"] * l1 + h["l2"] * l2


def _per_layer(p: dict[str, Array], h: dict[str, Array]) -> Array:
    """Each hidden layer's kernel under its own strengths (`h["l1"][i]`, `h["l2"][i]`;
    zero beyond the member's depth, whose kernels are zero anyway)."""
    l1, l2 = h["l1"], h["l2"]
    first = l1[0] * jnp.sum(magnitude(p["w0"])) + l2[0] * jnp.sum(jnp.square(p["w0"]))
    hidden = jnp.sum(l1[1:] * jnp.sum(magnitude(p["wh"]), axis=(1, 2)))
    return first + hidden + jnp.sum(l2[1:] * jnp.sum(jnp.square(p["wh"]), axis=(1, 2)))
