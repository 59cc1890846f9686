"""`keras:NAME` sources: the course's data sets, read from Keras' own cache.

`keras.datasets` downloads a data set once into `$KERAS_HOME/datasets` (`~/.keras` by
default) and reads it from there after; these read the same files, in the same layouts,
with the same train/test parts, so a search never downloads. A file that is not there is
one line naming it and where Keras fetches it from.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd

from search.arrays import TARGET, read_npz
from search.errors import DataError

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
KERAS_SETS = ("mnist", "fashion_mnist", "boston_housing")


def datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def read_keras(
    name: str, target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], np.ndarray | None]:
    """A keras.datasets set as an array source: rows, target, sample shape, parts."""
    if name not in KERAS_SETS:
        raise DataError(
            f"keras:{name} is not one this service reads (it reads keras:"
            f"{', keras:'.join(KERAS_SETS)}); save other sets as a .npz with x_train, "
            "y_train, x_test, y_test",
            file=where,
            key="data.source",
        )
    if name == "mnist":
        return read_npz(_needed(name, "mnist.npz", where), target, where)
    if name == "boston_housing":
        return _boston(_needed(name, "boston_housing.npz", where), target)
    return _fashion(target, where)


def _needed(name: str, file: str, where: str) -> Path:
    path = datasets_dir() / file
    if not path.is_file():
        raise DataError(
            f"keras:{name} reads {path}, which is not there; keras.datasets.{name}.load_data() "
            f"fetches it from {ORIGIN}{file.split('/')[-1]} (this machine may be offline: "
            "put the file there)",
            file=where,
            key="data.source",
        )
    return path


def _boston(
    path: Path, target: str | None
) -> tuple[pd.DataFrame, str, tuple[int, ...], np.ndarray | None]:
    """Keras' split of the file: shuffled with seed 113, the last 20% for testing."""
    with np.load(path, allow_pickle=False) as arrays:
        x, y = np.asarray(arrays["x"]), np.asarray(arrays["y"])
    order = np.arange(len(x))
    np.random.RandomState(113).shuffle(order)
    x, y = x[order], y[order]
    n_train = int(len(x) * (1 - 0.2))
    name = target or TARGET
    frame = pd.DataFrame(x.astype(np.float64), columns=[f"x{i}" for i in range(x.shape[1])])
    frame[name] = y.astype(np.float64)
    parts = np.where(np.arange(len(x)) < n_train, 0, 2).astype(np.int8)
    return frame, name, (x.shape[1],), parts


def _fashion(
    target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], np.ndarray | None]:
    """The four IDX files Keras keeps under datasets/fashion-mnist."""
    files = {
        part: (
            _needed("fashion_mnist", f"fashion-mnist/{prefix}-labels-idx1-ubyte.gz", where),
            _needed("fashion_mnist", f"fashion-mnist/{prefix}-images-idx3-ubyte.gz", where),
        )
        for part, prefix in (("train", "train"), ("test", "t10k"))
    }
    frames, parts, name = [], [], target or TARGET
    for code, (labels, images) in zip((0, 2), files.values(), strict=True):
        with gzip.open(labels, "rb") as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8)
        with gzip.open(images, "rb") as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(len(y), 784)
        frame = pd.DataFrame(x.astype(np.float32), columns=[f"p{i}" for i in range(784)])
        frame[name] = y
        frames.append(frame)
        parts.append(np.full(len(y), code, np.int8))
    return pd.concat(frames, ignore_index=True), name, (28, 28), np.concatenate(parts)
