"""The pack's optimizers: Keras 3's update rules and default constants, one member at a
time, the member's own optimizer selected among those its program carries.

The constants (beta_1, beta_2, epsilon) are Keras' defaults, or (a program whose `Shape`
has `constants`) each member's own, Keras' defaults where the member leaves them unset.

Slots shared by every optimizer: `m` (first moment, or momentum), `v` (second moment,
RMSprop's velocity, Adagrad's accumulator, Adamax's norm), the step count `t` and Nadam's
running product `u`.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from search.engines.pack.constants import B1, B2, EPSILON, LION_B2

Array = Any  # a jax.Array; the JAX stubs are not typed for mypy strict
Leaf = tuple[Array, Array, Array]  # (weight, m, v) after one step


def constants(shape: Any, h: dict[str, Array]) -> dict[str, Any]:
    """The member's beta_1, beta_2 and epsilon (Keras' defaults, or the member's own), and
    1 - beta_1 and 1 - beta_2 as Keras' Adam and its kin compute them (in double
    precision, then float32)."""
    if not shape.constants:
        return {"b1": B1, "b2": B2, "eps": EPSILON, "c1": 1 - B1, "c2": 1 - B2}
    return {
        "b1": h["beta_1"],
        "b2": h["beta_2"],
        "eps": h["epsilon"],
        "c1": h["one_minus_beta_1"],
        "c2": h["one_minus_beta_2"],
    }


def apply(
    shape: Any, p: dict[str, Array], g: dict[str, Array], s: dict[str, Array], h: dict[str, Array]
) -> tuple[dict[str, Array], dict[str, Array]]:
    """One optimizer step of the member's own optimizer (selected among the pack's)."""
    t = s["t"] + 1.0
    c = constants(shape, h)
    b1 = c["b1"]
    decay_u = b1 * (1.0 - 0.5 * 0.96**t)
    u = s["u"] * decay_u
    step = {"t": t, "u": u, "decay_u": decay_u, "next_u": b1 * (1.0 - 0.5 * 0.96 ** (t + 1.0))}
    step |= c
    lion = (c["b1"], c["b2"]) if shape.constants else (B1, LION_B2)
    step["lion"] = tuple(jnp.float32(b) for b in lion)  # Keras' Lion: float32 betas

    def select(w: Array, g: Array, m: Array, v: Array) -> Leaf:
        out = _leaf(shape.optimizers[0], h, step, w, g, m, v)
        for j, name in enumerate(shape.optimizers[1:], start=1):
            alt = _leaf(name, h, step, w, g, m, v)
            chosen = h["optimizer"] == j
            w2, m2, v2 = (jnp.where(chosen, a, o) for a, o in zip(alt, out, strict=True))
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


def _leaf(
    name: str, h: dict[str, Array], step: dict[str, Array], w: Array, g: Array, m: Array, v: Array
) -> Leaf:
    lr, t, eps = h["learning_rate"], step["t"], step.get("eps", EPSILON)
    if name in ("adam", "adamw", "nadam"):
        return _adam(name, h, step, w, g, m, v)
    if name == "rmsprop":
        v2 = 0.9 * v + 0.1 * jnp.square(g)
        m2 = h["momentum"] * m + lr * g / jnp.sqrt(v2 + eps)
        return w - m2, m2, v2
    if name == "sgd":  # Keras' SGD: momentum, Nesterov's where the member asks for it
        m2 = h["momentum"] * m - lr * g
        return w + jnp.where(h["nesterov"] > 0, h["momentum"] * m2 - lr * g, m2), m2, v
    if name == "lion":  # decoupled weight decay first, then the sign of the interpolation
        w = w - w * h["weight_decay"] * lr
        b1, b2 = step["lion"]
        w = w - lr * jnp.sign(m * b1 + g * (1.0 - b1))
        return w, m * b2 + g * (1.0 - b2), v
    if name == "adamax":
        b1, b2 = step["b1"], step["b2"]
        m2, v2 = m + (g - m) * step["c1"], jnp.maximum(b2 * v, jnp.abs(g))
        return w - (lr / (1 - b1**t)) * m2 / (v2 + eps), m2, v2
    v2 = v + jnp.square(g)  # adagrad
    return w - lr * g / jnp.sqrt(v2 + eps), m, v2


def _adam(
    name: str, h: dict[str, Array], step: dict[str, Array], w: Array, g: Array, m: Array, v: Array
) -> Leaf:
    """Adam, AdamW (decoupled weight decay first) and Nadam (Keras' momentum schedule)."""
    lr, t, b1, b2, eps = h["learning_rate"], step["t"], step["b1"], step["b2"], step["eps"]
    m2, v2 = m + (g - m) * step["c1"], v + (jnp.square(g) - v) * step["c2"]
    if name == "nadam":
        u, next_u, decay_u = step["u"], step["next_u"], step["decay_u"]
        m_hat = next_u * m2 / (1 - u * next_u) + (1 - decay_u) * g / (1 - u)
        return w - lr * m_hat / (jnp.sqrt(v2 / (1 - b2**t)) + eps), m2, v2
    if name == "adamw":
        w = w - w * h["weight_decay"] * lr
    alpha = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
    return w - alpha * m2 / (jnp.sqrt(v2) + eps), m2, v2
