"""A built model's numbers, fast on every backend: its L1/L2 penalty summed on the host,
its predictions through one compiled forward function (JAX), its summary."""

from __future__ import annotations

import weakref
from typing import Any

import keras
import numpy as np


def penalty(model: keras.Model) -> float:
    """The L1/L2 penalty of the model's current weights, which Keras adds to its losses.

    Computed on the host: the weights are copied out and summed with NumPy. Calling the
    regularizers (`model.losses`) runs eager ops, which JAX compiles anew for every weight
    shape. A regularizer other than Keras' L1, L2 and L1L2 is called as Keras calls it.
    """
    total = 0.0
    for variable in model.trainable_weights:
        regularizer = variable.regularizer
        if regularizer is None:
            continue
        if isinstance(regularizer, keras.regularizers.L1L2):
            l1, l2 = float(regularizer.l1), float(regularizer.l2)
        elif isinstance(regularizer, keras.regularizers.L1):
            l1, l2 = float(regularizer.l1), 0.0
        elif isinstance(regularizer, keras.regularizers.L2):
            l1, l2 = 0.0, float(regularizer.l2)
        else:
            total += float(keras.ops.convert_to_numpy(regularizer(variable)))
            continue
        w = keras.ops.convert_to_numpy(variable.value).astype(np.float64)
        total += l1 * float(np.abs(w).sum()) + l2 * float(np.square(w).sum())
    return total


def summary_text(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    return "\n".join(lines)


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Forward pass without `predict`'s per-model tf.function tracing.

    On JAX the forward pass is compiled as one function, once per model (a model reused
    across folds keeps it): run op by op, each op of a new shape would be compiled on its
    own (five or more compilations a model instead of one).
    """
    forward = _jax_forward(model) if keras.backend.backend() == "jax" else model
    parts = [
        keras.ops.convert_to_numpy(forward(x[i : i + 8192], training=False))
        for i in range(0, len(x), 8192)
    ]
    return np.concatenate(parts) if parts else np.empty((0, 1), dtype=np.float32)


_JAX_FORWARD: weakref.WeakKeyDictionary[keras.Model, Any] = weakref.WeakKeyDictionary()


def _jax_forward(model: keras.Model) -> Any:
    """`model(batch, training=False)` as one jitted function of the current weights."""
    jitted = _JAX_FORWARD.get(model)
    if jitted is None:
        import jax

        held = weakref.ref(model)  # a strong reference from the value would keep the key

        def call(tv: Any, ntv: Any, batch: Any) -> Any:
            alive = held()
            assert alive is not None  # traced while `model` is in hand
            return alive.stateless_call(tv, ntv, batch, training=False)[0]

        jitted = _JAX_FORWARD[model] = jax.jit(call)

    def forward(batch: Any, training: bool = False) -> Any:
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        return jitted(trainable, non_trainable, batch)

    return forward
