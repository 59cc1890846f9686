"""Between a pack and its members: padded starting weights, the fold rows on the device, and
each member's own unpadded network (its weights, its outputs, its Keras model)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from scipy.special import erf, expit, softmax

from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays
from search.data.target import target_scale
from search.engines.base import Member
from search.engines.pack.hyper import member_hyper
from search.models.build import build_model
from search.params import TrialParams

# Per Dense layer, output last: "kernel" and "bias", or (batch normalization) "kernel",
# "gamma", "beta", "mean" and "var".
Layers = list[dict[str, np.ndarray]]

HOST_ACTIVATIONS: dict[str, Any] = {
    "relu": lambda x: np.maximum(x, 0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "selu": lambda x: (
        1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))
    ),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    "tanh": np.tanh,
    "sigmoid": expit,
    "swish": lambda x: x * expit(x),
    "silu": lambda x: x * expit(x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0, x)),
    "softplus": lambda x: np.logaddexp(0, x),
}


def _glorot(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = float(np.sqrt(6.0 / (fan_in + fan_out)))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def _member_weights(shape: Any, m: Member) -> dict[str, np.ndarray]:
    """Glorot-uniform kernels at the member's true sizes, zero biases, zero padding."""
    rng, widths = np.random.default_rng(m.seed), [int(w) for w in m.params.widths]
    W, D = shape.width, shape.depth
    p = {
        "w0": np.zeros((shape.features, W), np.float32),
        "b0": np.zeros(W, np.float32),
        "wh": np.zeros((max(D - 1, 0), W, W), np.float32),
        "bh": np.zeros((max(D - 1, 0), W), np.float32),
        "wo": np.zeros((W, shape.outputs), np.float32),
        "bo": np.zeros(shape.outputs, np.float32),
    }
    p["w0"][:, : widths[0]] = _glorot(rng, shape.features, widths[0])
    for i in range(1, len(widths)):
        p["wh"][i - 1, : widths[i - 1], : widths[i]] = _glorot(rng, widths[i - 1], widths[i])
    p["wo"][: widths[-1]] = _glorot(rng, widths[-1], shape.outputs)
    if shape.batch_norm:
        p["gamma"] = np.ones((D, W), np.float32)
        p["beta"] = np.zeros((D, W), np.float32)
    return p


def member_arrays(folds: list[FoldArrays]) -> dict[str, np.ndarray]:
    """The folds' rows, padded to the longest, as one array each (sent to the device once)."""
    n = max(len(f.y_train) for f in folds)
    v = max(len(f.y_val) for f in folds)
    feats = folds[0].x_train.shape[1]
    d = {
        "x": np.zeros((len(folds), n, feats), np.float32),
        "y": np.zeros((len(folds), n), np.float32),
        "xv": np.zeros((len(folds), v, feats), np.float32),
        "yv": np.zeros((len(folds), v), np.float32),
    }
    for i, f in enumerate(folds):
        d["x"][i, : len(f.y_train)] = f.x_train
        target = target_scale(TrialParams(), f.y_train)  # packs train the built-in MLP only
        forward = target.forward if target is not None else np.asarray
        d["y"][i, : len(f.y_train)] = forward(f.y_train)
        d["xv"][i, : len(f.y_val)] = f.x_val
        d["yv"][i, : len(f.y_val)] = forward(f.y_val)
    return d


MIN_ROWS = 8  # a smaller pack saves less time per epoch than its compilation costs


def packed_rows(members: int) -> int:
    """Rows of a pack's arrays: a multiple of MIN_ROWS (few distinct programs); the rows
    beyond the members are fillers that never train."""
    return max(MIN_ROWS, -(-members // MIN_ROWS) * MIN_ROWS)


def initial_state(
    shape: Any, members: list[Member], folds: list[FoldArrays]
) -> tuple[Any, dict[str, np.ndarray], Any]:
    """The pack's starting state (on the device), hyperparameters, and fold rows (on the
    device), with as many rows as the next power of two (fillers are never live)."""
    import jax

    size = packed_rows(len(members))
    rows = [*range(len(members)), *[len(members) - 1] * (size - len(members))]
    weights = [_member_weights(shape, members[i]) for i in rows]
    fold = [next(j for j, f in enumerate(folds) if f is members[i].arrays) for i in rows]
    hyper = [member_hyper(shape, members[i], fold[n]) for n, i in enumerate(rows)]
    p = {k: np.stack([w[k] for w in weights]) for k in weights[0]}
    h = {k: np.stack([x[k] for x in hyper]) for k in hyper[0]}
    h["live"] = np.arange(size) < len(members)
    h["member"] = np.asarray(rows, np.int32)  # the member each row trains (host only)
    adagrad = np.array([members[i].params.optimizer == "adagrad" for i in rows])
    v0 = {
        k: np.where(adagrad.reshape(-1, *[1] * (a.ndim - 1)), 0.1, 0.0).astype(np.float32)
        * np.ones_like(a)
        for k, a in p.items()
    }
    state = {
        "p": p,
        "slots": {
            "m": {k: np.zeros_like(a) for k, a in p.items()},
            "v": v0,
            "t": np.zeros(size, np.float32),
            "u": np.ones(size, np.float32),
        },
        "best": {k: a.copy() for k, a in p.items()},
        "best_loss": np.full(size, np.inf, np.float32),
        "stats": _moving_stats(shape, size),
        "best_stats": _moving_stats(shape, size),
    }
    return jax.device_put(state), h, jax.device_put(member_arrays(folds))


def _moving_stats(shape: Any, size: int) -> dict[str, np.ndarray]:
    """Batch normalization's moving mean and variance, as Keras starts them."""
    if not shape.batch_norm:
        return {}
    dims = (size, shape.depth, shape.width)
    return {"mean": np.zeros(dims, np.float32), "var": np.ones(dims, np.float32)}


def unpad(
    shape: Any,
    params: TrialParams,
    best: dict[str, np.ndarray],
    stats: dict[str, np.ndarray],
    row: int,
    y_train: np.ndarray,
) -> Layers:
    """A member's own weights out of the pack's padded ones; its training targets give
    the scale of a regression head."""
    widths = [int(w) for w in params.widths]
    kernels = [best["w0"][row][:, : widths[0]]]
    biases = [best["b0"][row][: widths[0]]]
    for i in range(1, len(widths)):
        kernels.append(best["wh"][row][i - 1][: widths[i - 1], : widths[i]])
        biases.append(best["bh"][row][i - 1][: widths[i]])
    layers: Layers = []
    for i, (kernel, bias) in enumerate(zip(kernels, biases, strict=True)):
        if params.batch_norm:
            w = widths[i]
            layers.append(
                {
                    "kernel": kernel.copy(),
                    "gamma": best["gamma"][row][i][:w].copy(),
                    "beta": best["beta"][row][i][:w].copy(),
                    "mean": stats["mean"][row][i][:w].copy(),
                    "var": stats["var"][row][i][:w].copy(),
                }
            )
        else:
            layers.append({"kernel": kernel.copy(), "bias": bias.copy()})
    kernel, bias = best["wo"][row][: widths[-1]].copy(), best["bo"][row].copy()
    target = target_scale(params, y_train)
    if target is not None:  # the network predicts in the target's units (search.data.target)
        kernel, bias = target.fold(kernel, bias)
    layers.append({"kernel": kernel, "bias": bias})
    return layers


def host_output(task: str, params: TrialParams, layers: Layers, x: np.ndarray) -> np.ndarray:
    """The member's network on the host, as Keras' `predict` gives it (float32)."""
    act = HOST_ACTIVATIONS[params.activation]
    h = x.astype(np.float32)
    for layer in layers[:-1]:
        z: np.ndarray = h @ layer["kernel"]
        if "gamma" in layer:
            scale = layer["gamma"] / np.sqrt(layer["var"] + np.float32(1e-3))
            z = (z - layer["mean"]) * scale + layer["beta"]
        else:
            z = z + layer["bias"]
        h = act(z).astype(np.float32)
    z = h @ layers[-1]["kernel"] + layers[-1]["bias"]
    if task == "binary":
        return np.asarray(expit(z), dtype=np.float32)
    if task == "multiclass":
        return np.asarray(softmax(z, axis=1), dtype=np.float32)
    return np.asarray(z, dtype=np.float32)


def keras_model(params: TrialParams, layers: Layers, data: Dataset) -> keras.Model:
    """The member as a plain compiled Keras model, with its trained weights."""
    model = build_model(
        params, n_features=layers[0]["kernel"].shape[0], task=data.task, n_classes=data.n_classes
    )
    names = [f"dense_{i}" for i in range(len(layers) - 1)] + ["output"]
    for i, (name, layer) in enumerate(zip(names, layers, strict=True)):
        if "gamma" in layer:
            model.get_layer(name).set_weights([layer["kernel"]])
            norm = [layer["gamma"], layer["beta"], layer["mean"], layer["var"]]
            model.get_layer(f"batch_norm_{i}").set_weights(norm)
        else:
            model.get_layer(name).set_weights([layer["kernel"], layer["bias"]])
    return model
