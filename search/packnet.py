"""The pack's compiled program: one member's MLP, loss and optimizer step, vmapped over members.

Every function here computes one member; `epoch_program` vmaps it over the pack and
jit-compiles it. A member is exactly its own network inside the padded one: hidden units
beyond its width are multiplied by a 0/1 mask (they output zero and get zero gradient,
and their weights start at zero, so every optimizer here keeps them at zero), and layers
beyond its depth are identities (`a * f(x) + (1 - a) * x` with `a = 0`). The formulas of
the optimizers, activations and losses are Keras 3's, with Keras' default constants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

Array = Any  # a jax.Array; the JAX stubs are not typed for mypy strict
EPSILON = 1e-7  # Keras' optimizers' and losses' epsilon

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "selu": jax.nn.selu,
    "gelu": partial(jax.nn.gelu, approximate=False),
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "leaky_relu": partial(jax.nn.leaky_relu, negative_slope=0.2),
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "softplus": jax.nn.softplus,
}
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd", "adamax", "adagrad")


@dataclass(frozen=True)
class Shape:
    """What one compiled program is specialised for (its cache key)."""

    depth: int
    width: int
    features: int
    outputs: int
    batch: int  # the group's largest batch size
    micro: int  # rows per step: larger batches accumulate their gradient over several
    steps: int
    task: str
    batch_norm: bool
    dropout: bool  # some member drops units (else no mask is drawn)
    penalty: bool  # some member has an L1 or L2 penalty (else none is computed)
    activations: tuple[str, ...]
    optimizers: tuple[str, ...]


def forward(
    shape: Shape, p: dict[str, Array], h: dict[str, Array], x: Array, key: Array, stats: Any
) -> tuple[Array, Any]:
    """Logits of one member, and its batch-norm statistics after this batch; `key` None:
    inference (no dropout, normalized with the moving statistics)."""
    moved: dict[str, list[Array]] = {"mean": [], "var": []}
    z = _normalize(shape, p, h, x @ p["w0"], p["b0"], 0, key, stats, moved)
    x = _layer(shape, h, z, 0, key)
    for i in range(1, shape.depth):
        z = _normalize(shape, p, h, x @ p["wh"][i - 1], p["bh"][i - 1], i, key, stats, moved)
        a = h["active"][i]
        x = a * _layer(shape, h, z, i, key) + (1.0 - a) * x
    new = {k: jnp.stack(v) for k, v in moved.items()} if shape.batch_norm else stats
    return x @ p["wo"] + p["bo"], new


def _normalize(
    shape: Shape,
    p: dict[str, Array],
    h: dict[str, Array],
    z: Array,
    bias: Array,
    i: int,
    key: Array,
    stats: Any,
    moved: dict[str, list[Array]],
) -> Array:
    """The Dense layer's bias, or Keras' BatchNormalization in its place (a member with
    batch normalization has no bias, as `search.model` builds it)."""
    if not shape.batch_norm:
        return z + bias
    bn = h["batch_norm"]
    if key is None:
        mean, var = stats["mean"][i], stats["var"][i]
        moved["mean"].append(mean)
        moved["var"].append(var)
    else:
        mean, var = jnp.mean(z, axis=0), jnp.var(z, axis=0)
        moved["mean"].append(stats["mean"][i] * 0.99 + mean * 0.01)
        moved["var"].append(stats["var"][i] * 0.99 + var * 0.01)
    normal = (z - mean) / jnp.sqrt(var + 1e-3) * p["gamma"][i] + p["beta"][i]
    return bn * normal + (1.0 - bn) * (z + bias)


def _layer(shape: Shape, h: dict[str, Array], z: Array, i: int, key: Array) -> Array:
    out = ACTIVATIONS[shape.activations[0]](z)
    for j, name in enumerate(shape.activations[1:], start=1):
        out = jnp.where(h["activation"] == j, ACTIVATIONS[name](z), out)
    out = out * h["mask"][i]
    if key is None or not shape.dropout:
        return out
    batch_key, offset = key
    rate, layer_key = h["dropout"], jax.random.fold_in(batch_key, i)
    # One stream per unit and batch, drawn for the whole batch and cut to this step's
    # rows: a unit's mask depends neither on the padded width nor on the step size.
    units = jax.vmap(lambda j: jax.random.fold_in(layer_key, j))(jnp.arange(out.shape[-1]))

    def draw(k: Array) -> Array:
        whole = jax.random.bernoulli(k, 1.0 - rate, (shape.batch,))
        return jax.lax.dynamic_slice(whole, (offset,), (shape.micro,))

    keep = jax.vmap(draw, out_axes=-1)(units)
    return jnp.where(keep, out / jnp.maximum(1.0 - rate, EPSILON), 0.0)


def data_loss(shape: Shape, logits: Array, y: Array) -> Array:
    """Per-row loss: binary and categorical cross-entropy from logits, or squared error."""
    if shape.task == "binary":
        z = logits[:, 0]
        return jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))
    if shape.task == "multiclass":
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, y.astype(jnp.int32)[:, None], axis=1)[:, 0]
    return jnp.square(logits[:, 0] - y)


def quality(shape: Shape, logits: Array, y: Array) -> Array:
    """Per-row Keras metric: accuracy for classification, absolute error for regression."""
    if shape.task == "binary":
        return ((logits[:, 0] > 0) == (y > 0.5)).astype(jnp.float32)
    if shape.task == "multiclass":
        return (jnp.argmax(logits, axis=1) == y.astype(jnp.int32)).astype(jnp.float32)
    return jnp.abs(logits[:, 0] - y)


def penalty(shape: Shape, p: dict[str, Array], h: dict[str, Array]) -> Array:
    """Keras' L1/L2 kernel penalty of the hidden layers (not the output layer)."""
    if not shape.penalty:
        return jnp.zeros(())
    kernels = [p["w0"], p["wh"]]  # not gamma and beta: Keras regularizes kernels only
    l1 = sum(jnp.sum(jnp.abs(w)) for w in kernels)
    l2 = sum(jnp.sum(jnp.square(w)) for w in kernels)
    return h["l1"] * l1 + h["l2"] * l2


def output(shape: Shape, logits: Array) -> Array:
    """What the Keras model outputs: probabilities, or the regression value."""
    if shape.task == "binary":
        return jax.nn.sigmoid(logits)
    if shape.task == "multiclass":
        return jax.nn.softmax(logits)
    return logits


# ---------------------------------------------------------------- optimizers


def apply(
    shape: Shape, p: dict[str, Array], g: dict[str, Array], s: dict[str, Array], h: dict[str, Array]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """One optimizer step of the member's own optimizer (selected among the pack's)."""
    t = s["t"] + 1.0
    lr, b1, b2 = h["learning_rate"], 0.9, 0.999
    decay_u = b1 * (1.0 - 0.5 * 0.96**t)
    next_u = b1 * (1.0 - 0.5 * 0.96 ** (t + 1.0))
    u = s["u"] * decay_u

    def leaf(name: str, w: Array, g: Array, m: Array, v: Array) -> tuple[Array, Array, Array]:
        if name in ("adam", "adamw", "nadam"):
            m2, v2 = m + (g - m) * (1 - b1), v + (jnp.square(g) - v) * (1 - b2)
            if name == "nadam":
                m_hat = next_u * m2 / (1 - u * next_u) + (1 - decay_u) * g / (1 - u)
                return w - lr * m_hat / (jnp.sqrt(v2 / (1 - b2**t)) + EPSILON), m2, v2
            if name == "adamw":
                w = w - w * h["weight_decay"] * lr
            alpha = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
            return w - alpha * m2 / (jnp.sqrt(v2) + EPSILON), m2, v2
        if name == "rmsprop":
            v2 = 0.9 * v + 0.1 * jnp.square(g)
            m2 = h["momentum"] * m + lr * g / jnp.sqrt(v2 + EPSILON)
            return w - m2, m2, v2
        if name == "sgd":  # Keras' SGD with Nesterov momentum, as search.model builds it
            m2 = h["momentum"] * m - lr * g
            return w + h["momentum"] * m2 - lr * g, m2, v
        if name == "adamax":
            m2, v2 = m + (g - m) * (1 - b1), jnp.maximum(b2 * v, jnp.abs(g))
            return w - (lr / (1 - b1**t)) * m2 / (v2 + EPSILON), m2, v2
        v2 = v + jnp.square(g)  # adagrad
        return w - lr * g / jnp.sqrt(v2 + EPSILON), m, v2

    def select(w: Array, g: Array, m: Array, v: Array) -> tuple[Array, Array, Array]:
        out = leaf(shape.optimizers[0], w, g, m, v)
        for j, name in enumerate(shape.optimizers[1:], start=1):
            alt = leaf(name, w, g, m, v)
            w2, m2, v2 = (
                jnp.where(h["optimizer"] == j, a, o) for a, o in zip(alt, out, strict=True)
            )
            out = (w2, m2, v2)
        return out

    triples = {k: select(p[k], g[k], s["m"][k], s["v"][k]) for k in p}
    new_p = {k: triples[k][0] for k in p}
    slots = {
        "m": {k: triples[k][1] for k in p},
        "v": {k: triples[k][2] for k in p},
        "t": t,
        "u": u,
    }
    return new_p, slots


# ---------------------------------------------------------------- one epoch


def member_epoch(shape: Shape, state: dict[str, Any], h: dict[str, Array], d: dict[str, Array]):  # type: ignore[no-untyped-def]
    """One epoch of one member: shuffled full batches, then the validation pass.

    A step takes `shape.micro` rows; a member whose batch is `accum` times larger sums
    its gradient over `accum` steps and applies it on the last (the mean over its batch,
    as one step of its own size would), so members of every batch size share a program.

    `state` holds the weights, optimizer slots, best weights and best validation loss;
    `h` the member's hyperparameters, masks, fold, row counts, key and `live` flag; `d`
    the folds' rows (shared by all members). A member that is not live is left as it is.
    """
    fold, n, key = h["fold"], h["rows"], jax.random.fold_in(h["key"], h["epoch"])
    rows = d["x"].shape[1]
    order = jnp.argsort(
        jnp.where(jnp.arange(rows) < n, jax.random.uniform(key, (rows,)), 2.0)
    ).astype(jnp.int32)
    accum = h["accum"]  # steps per batch of this member
    steps_own = h["batches"] * accum

    def loss_fn(p: Any, x: Array, y: Array, k: Any, stats: Any) -> tuple[Array, Any]:
        logits, moved = forward(shape, p, h, x, k, stats)
        data = jnp.mean(data_loss(shape, logits, y))
        return data + penalty(shape, p, h), (jnp.mean(quality(shape, logits, y)), moved)

    def step(carry: tuple[Any, ...], i: Array) -> tuple[tuple[Any, ...], Array]:
        p, slots, stats, acc = carry
        idx = jax.lax.dynamic_slice(order, (i * shape.micro,), (shape.micro,))
        x, y = d["x"][fold, idx], d["y"][fold, idx]
        k = (jax.random.fold_in(jax.random.fold_in(key, 1), i // accum), (i % accum) * shape.micro)
        (loss, (q, moved)), g = jax.value_and_grad(loss_fn, has_aux=True)(p, x, y, k, stats)
        on = i < steps_own
        if shape.micro == shape.batch:  # one step a batch: nothing to accumulate
            new_p, new_slots = apply(shape, p, g, slots, h)
            update = on
        else:
            acc = jax.tree.map(lambda a, b: a + b / accum.astype(b.dtype), acc, g)
            new_p, new_slots = apply(shape, p, acc, slots, h)
            update = on & ((i + 1) % accum == 0)  # the batch's last step applies its gradient
            acc = jax.tree.map(lambda a: jnp.where(update | ~on, 0.0, a), acc)
        keep = partial(jax.tree.map, lambda a, b: jnp.where(update, a, b))
        moved = jax.tree.map(lambda a, b: jnp.where(on, a, b), moved, stats)
        return (keep(new_p, p), keep(new_slots, slots), moved, acc), jnp.stack([loss, q, on])

    zeros = jax.tree.map(jnp.zeros_like, state["p"]) if shape.micro < shape.batch else {}
    start = (state["p"], state["slots"], state["stats"], zeros)
    (p, slots, stats, _), logs = jax.lax.scan(step, start, jnp.arange(shape.steps))
    count = jnp.maximum(jnp.sum(logs[:, 2]), 1.0)
    train_loss, train_q = (
        jnp.sum(logs[:, 0] * logs[:, 2]) / count,
        jnp.sum(logs[:, 1] * logs[:, 2]) / count,
    )
    val_mask = jnp.arange(d["xv"].shape[1]) < h["val_rows"]
    logits, _ = forward(shape, p, h, d["xv"][fold], None, stats)
    vn = jnp.maximum(h["val_rows"], 1)
    val_data = jnp.sum(jnp.where(val_mask, data_loss(shape, logits, d["yv"][fold]), 0.0)) / vn
    val_q = jnp.sum(jnp.where(val_mask, quality(shape, logits, d["yv"][fold]), 0.0)) / vn
    pen = penalty(shape, p, h)
    live = h["live"]
    better = live & (val_data < state["best_loss"])
    keep_live = partial(jax.tree.map, lambda a, b: jnp.where(live, a, b))
    new_state = {
        "p": keep_live(p, state["p"]),
        "slots": keep_live(slots, state["slots"]),
        "stats": keep_live(stats, state["stats"]),
        "best": jax.tree.map(lambda a, b: jnp.where(better, a, b), p, state["best"]),
        "best_stats": jax.tree.map(
            lambda a, b: jnp.where(better, a, b), stats, state["best_stats"]
        ),
        "best_loss": jnp.where(better, val_data, state["best_loss"]),
    }
    logs_out = jnp.stack([train_loss, train_q, val_data + pen, val_q, val_data])
    return new_state, logs_out


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def epoch_program(shape: Shape, state: dict[str, Any], h: dict[str, Array], d: dict[str, Array]):  # type: ignore[no-untyped-def]
    """`member_epoch` over every member of the pack, compiled once per `Shape` and size."""
    return jax.vmap(partial(member_epoch, shape), in_axes=(0, 0, None))(state, h, d)
