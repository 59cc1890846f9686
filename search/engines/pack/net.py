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
from jax.extend.random import threefry2x32_p

from search.engines.pack.losses import data_loss, quality
from search.engines.pack.optimizers import apply
from search.engines.pack.regularizers import activity, penalty

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
    weighted: bool = False  # some member weighs its classes (a per-row weight in the loss)
    min_delta: bool = False  # some member's early stopping asks for a least improvement
    losses: tuple[str, ...] = ()  # the members' losses, where some is not the task's
    per_layer: bool = False  # dropout, l1, l2 are one value per layer (else one per member)
    constants: bool = False  # some member sets beta_1, beta_2 or epsilon (else Keras' own)
    bias_penalty: bool = False  # some member has an L1 or L2 penalty on its hidden biases
    activity: bool = False  # some member has an L1 or L2 penalty on its hidden outputs


def forward(
    shape: Shape,
    p: dict[str, Array],
    h: dict[str, Array],
    x: Array,
    key: Array,
    stats: Any,
    penalties: list[Array] | None = None,
) -> tuple[Array, Any]:
    """Logits of one member, and its batch-norm statistics after this batch; `key` None:
    inference (no dropout, normalized with the moving statistics). With `penalties` (a
    program with activity penalties), each hidden layer's per-row penalty is appended."""
    moved: dict[str, list[Array]] = {"mean": [], "var": []}
    z = x @ p["w0"]
    _activity(shape, h, z, p["b0"], 0, penalties)
    z = _normalize(shape, p, h, z, p["b0"], 0, key, stats, moved)
    x = _layer(shape, h, z, 0, key)
    for i in range(1, shape.depth):
        z = x @ p["wh"][i - 1]
        _activity(shape, h, z, p["bh"][i - 1], i, penalties)
        z = _normalize(shape, p, h, z, p["bh"][i - 1], i, key, stats, moved)
        a = h["active"][i]
        x = a * _layer(shape, h, z, i, key) + (1.0 - a) * x
    new = {k: jnp.stack(v) for k, v in moved.items()} if shape.batch_norm else stats
    return x @ p["wo"] + p["bo"], new


def _activity(
    shape: Shape, h: dict[str, Array], z: Array, bias: Array, i: int, out: list[Array] | None
) -> None:
    """Append the per-row activity penalty of hidden layer i's Dense output (none beyond
    the member's depth; no bias for a member with batch normalization)."""
    if out is None or not shape.activity:
        return
    dense = z + ((1.0 - h["batch_norm"]) * bias if shape.batch_norm else bias)
    out.append(h["active"][i] * activity(h, dense))


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
    batch normalization has no bias, as `search.models.build` builds it)."""
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
    rate = h["dropout"][i] if shape.per_layer else h["dropout"]
    rows = offset + jnp.arange(shape.micro)
    keep = _uniform(jax.random.fold_in(batch_key, i), rows, out.shape[-1]) < 1.0 - rate
    return jnp.where(keep, out / jnp.maximum(1.0 - rate, EPSILON), 0.0)


def _uniform(key: Array, rows: Array, units: int) -> Array:
    """Uniform numbers in [0, 1), multiples of 2**-16, for these rows of the batch and
    `units` units (a multiple of 4): one Threefry hash of (row, unit // 4) under `key` gives
    four units 16 bits each, so a unit's draw depends neither on the padded width nor on how
    the batch is cut into steps."""
    shape = (rows.shape[0], units // 4)
    r = jnp.broadcast_to(rows.astype(jnp.uint32)[:, None], shape)
    q = jnp.broadcast_to(jnp.arange(units // 4, dtype=jnp.uint32)[None, :], shape)
    hi, lo = threefry2x32_p.bind(key[0], key[1], r, q)  # type: ignore[no-untyped-call]
    lanes = jnp.stack([hi & 0xFFFF, hi >> 16, lo & 0xFFFF, lo >> 16], axis=-1)
    return lanes.reshape(rows.shape[0], units).astype(jnp.float32) * (1.0 / (1 << 16))


def output(shape: Shape, logits: Array) -> Array:
    """What the Keras model outputs: probabilities, or the regression value."""
    if shape.task == "binary":
        return jax.nn.sigmoid(logits)
    if shape.task == "multiclass":
        return jax.nn.softmax(logits)
    return logits


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
    key = jax.random.fold_in(h["key"], h["epoch"])
    zeros = jax.tree.map(jnp.zeros_like, state["p"]) if shape.micro < shape.batch else {}
    start = (state["p"], state["slots"], state["stats"], zeros)
    step = partial(_step, shape, h, d, _order(h, d, key), key)
    (p, slots, stats, _), logs = jax.lax.scan(step, start, jnp.arange(shape.steps))
    count = jnp.maximum(jnp.sum(logs[:, 2]), 1.0)
    train_loss, train_q = (
        jnp.sum(logs[:, 0] * logs[:, 2]) / count,
        jnp.sum(logs[:, 1] * logs[:, 2]) / count,
    )
    return _validate(shape, state, h, d, (p, slots, stats), train_loss, train_q)


def _order(h: dict[str, Array], d: dict[str, Array], key: Array) -> Array:
    """This epoch's shuffle of the member's own rows (padding rows last)."""
    rows = d["x"].shape[1]
    noise = jnp.where(jnp.arange(rows) < h["rows"], jax.random.uniform(key, (rows,)), 2.0)
    return jnp.argsort(noise).astype(jnp.int32)


def _loss(
    shape: Shape, h: dict[str, Array], p: Any, x: Array, y: Array, k: Any, stats: Any
) -> tuple[Array, Any]:
    penalties: list[Array] = []
    logits, moved = forward(shape, p, h, x, k, stats, penalties)
    rows = data_loss(shape, logits, y, h)
    if shape.weighted:  # Keras' class_weight: each row's loss times its class's weight
        rows = rows * h["class_w"][y.astype(jnp.int32)]  # (its metrics are not weighted)
    data = jnp.mean(rows)
    total = data + penalty(shape, p, h)
    if shape.activity:  # Keras: each layer's activity penalty over the batch's rows
        total = total + sum(jnp.mean(a) for a in penalties)
    return total, (jnp.mean(quality(shape, logits, y)), moved)


def _step(
    shape: Shape,
    h: dict[str, Array],
    d: dict[str, Array],
    order: Array,
    key: Array,
    carry: tuple[Any, ...],
    i: Array,
) -> tuple[tuple[Any, ...], Array]:
    """One step of `shape.micro` rows; the update lands on a batch's last step."""
    p, slots, stats, acc = carry
    accum = h["accum"]  # steps per batch of this member
    idx = jax.lax.dynamic_slice(order, (i * shape.micro,), (shape.micro,))
    x, y = d["x"][h["fold"], idx], d["y"][h["fold"], idx]
    k = (jax.random.fold_in(jax.random.fold_in(key, 1), i // accum), (i % accum) * shape.micro)
    grad = jax.value_and_grad(partial(_loss, shape, h), has_aux=True)
    (loss, (q, moved)), g = grad(p, x, y, k, stats)
    on = i < h["batches"] * accum
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


def _validate(
    shape: Shape,
    state: dict[str, Any],
    h: dict[str, Array],
    d: dict[str, Array],
    trained: tuple[Any, Any, Any],
    train_loss: Array,
    train_q: Array,
) -> tuple[dict[str, Any], Array]:
    """The validation pass; the epoch's state kept if live, its weights kept if best."""
    p, slots, stats = trained
    fold = h["fold"]
    val_mask = jnp.arange(d["xv"].shape[1]) < h["val_rows"]
    penalties: list[Array] = []
    logits, _ = forward(shape, p, h, d["xv"][fold], None, stats, penalties)
    vn = jnp.maximum(h["val_rows"], 1)
    val_data = jnp.sum(jnp.where(val_mask, data_loss(shape, logits, d["yv"][fold], h), 0.0)) / vn
    val_q = jnp.sum(jnp.where(val_mask, quality(shape, logits, d["yv"][fold]), 0.0)) / vn
    live = h["live"]
    # Keras' EarlyStopping: better by more than min_delta (then its weights are restored)
    bar = val_data + h["min_delta"] if shape.min_delta else val_data
    better = live & (bar < state["best_loss"])
    keep_live = partial(jax.tree.map, lambda a, b: jnp.where(live, a, b))
    keep_best = partial(jax.tree.map, lambda a, b: jnp.where(better, a, b))
    new_state = {
        "p": keep_live(p, state["p"]),
        "slots": keep_live(slots, state["slots"]),
        "stats": keep_live(stats, state["stats"]),
        "best": keep_best(p, state["best"]),
        "best_stats": keep_best(stats, state["best_stats"]),
        "best_loss": jnp.where(better, val_data, state["best_loss"]),
    }
    pen = penalty(shape, p, h)
    for rows in penalties:  # the activity penalties of the validation rows (Keras' val_loss)
        pen = pen + jnp.sum(jnp.where(val_mask, rows, 0.0)) / vn
    return new_state, jnp.stack([train_loss, train_q, val_data + pen, val_q, val_data])


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def epoch_program(shape: Shape, state: dict[str, Any], h: dict[str, Array], d: dict[str, Array]):  # type: ignore[no-untyped-def]
    """`member_epoch` over every member of the pack, compiled once per `Shape` and size."""
    return jax.vmap(partial(member_epoch, shape), in_axes=(0, 0, None))(state, h, d)
