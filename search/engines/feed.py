"""Small in-memory rows into `fit`, the fastest way for each Keras backend."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

CACHED_BYTES = 64 * 2**20  # rows up to this size are copied into a cached tf.data pipeline


def fit_inputs(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int) -> dict[str, Any]:
    """Keyword arguments of `fit` for small in-memory rows, reshuffled each epoch.

    On TensorFlow, rows up to `CACHED_BYTES` go into a cached tf.data pipeline, faster per
    epoch than NumPy arrays (bench/model_cost.py), at the price of copies
    of the rows; larger rows (MNIST-sized) and other backends get `ShuffledBatches`, which
    gathers each batch from the array itself.
    """
    if keras.backend.backend() == "tensorflow" and x.nbytes <= CACHED_BYTES:
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
        return {"x": ds, "shuffle": False}
    return {"x": ShuffledBatches(x, y, batch_size=batch_size, seed=seed), "shuffle": False}


class ShuffledBatches(keras.utils.PyDataset):  # type: ignore[misc]
    """Full batches of a fresh seeded permutation each epoch (JAX, PyTorch, and rows too
    large for TensorFlow's cached pipeline), gathered from the array itself.

    Each batch shape is compiled once per model; a ragged last batch would be a second
    compilation of the train step. The few rows left over differ from epoch to epoch.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, max(1, min(batch_size, len(x)))
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self) -> int:
        return max(1, len(self.x) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.x[rows], self.y[rows]

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.x))


class Batches(keras.utils.PyDataset):  # type: ignore[misc]
    """Every row once, in order, in batches of `batch_size`: rows read from the array."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return max(1, -(-len(self.x) // self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], self.y[part]


def validation_inputs(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Keyword arguments of `fit` for the validation rows, in large batches (as for
    `fit_inputs`: cached on TensorFlow up to `CACHED_BYTES`, else read from the array)."""
    if keras.backend.backend() != "tensorflow":
        return {"validation_data": (x, y), "validation_batch_size": 8192}
    if x.nbytes > CACHED_BYTES:
        return {"validation_data": Batches(x, y, batch_size=8192)}
    import tensorflow as tf

    return {"validation_data": tf.data.Dataset.from_tensor_slices((x, y)).batch(8192).cache()}


def release(*inputs: Mapping[str, Any]) -> None:
    """Let go of the rows a finished `fit` was fed (`fit_inputs`, `validation_inputs`):
    TensorFlow keeps the `PyDataset` of a finished fit alive (its generator stays
    registered), and with it the rows, for as long as the process lives."""
    for kwargs in inputs:
        for value in kwargs.values():
            if isinstance(value, ShuffledBatches | Batches):
                value.x, value.y = np.empty_like(value.x[:0]), np.empty_like(value.y[:0])
