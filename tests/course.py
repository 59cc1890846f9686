"""Small files in the layouts `keras.datasets` keeps in its cache (`$KERAS_HOME/datasets`),
each with a signal a model can learn: the course's data sets without a download."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def images(path: Path, shape: tuple[int, ...], n: int, n_test: int, seed: int = 0) -> None:
    """keras.datasets' layout: uint8 images, uint8 labels, 10 classes with a visible signal
    (the class sets the brightness of one band of rows)."""
    rng = np.random.default_rng(seed)

    def part(count: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(count) % 10
        x = rng.integers(0, 60, size=(count, *shape))
        for i, label in enumerate(y):
            x[i, label * 2 : label * 2 + 3] += 180
        return x.astype(np.uint8), y.astype(np.uint8)

    x_train, y_train = part(n)
    x_test, y_test = part(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def idx(path: Path, array: np.ndarray, magic: int) -> None:
    """An IDX file as Fashion-MNIST ships it (big-endian header, then the bytes), gzipped."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def word_indexes(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of word indexes whose class shows in a few of its own words."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = np.empty(n, dtype=object)
    for i, label in enumerate(y):
        own = rng.integers(20 + 10 * label, 30 + 10 * label, size=5)
        x[i] = [int(w) for w in [*own, *rng.integers(200, 600, size=12)]]
    return x, y


def write_course_cache(folder: Path) -> None:
    """mnist.npz, fashion-mnist/, boston_housing.npz, imdb.npz and reuters.npz, tiny."""
    folder.mkdir(parents=True, exist_ok=True)
    images(folder / "mnist.npz", (28, 28), 100, 30)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 100), ("t10k", 30)):
        labels = np.arange(n) % 10
        pictures = rng.integers(0, 60, size=(n, 28, 28))
        for i, label in enumerate(labels):
            pictures[i, :, label * 2 : label * 2 + 3] += 180
        idx(folder / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte.gz", labels, 2049)
        idx(folder / "fashion-mnist" / f"{prefix}-images-idx3-ubyte.gz", pictures, 2051)
    x = rng.normal(size=(120, 13))
    np.savez(folder / "boston_housing.npz", x=x, y=22 + 4 * x[:, 5] - 3 * x[:, 12])
    x_train, y_train = word_indexes(160, 2, seed=2)
    x_test, y_test = word_indexes(60, 2, seed=3)
    np.savez(folder / "imdb.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    x, y = word_indexes(200, 4, seed=4)
    np.savez(folder / "reuters.npz", x=x, y=y)
