"""`keras:NAME` sources: the course's data sets, read from Keras' own cache.

`keras.datasets` downloads a data set once into `$KERAS_HOME/datasets` (`~/.keras` by
default) and reads it from there after; these read the same files, in the same layouts,
with the same train/test parts, so a search never downloads. A file that is not there is
one line naming it and where Keras fetches it from.
"""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from search.data.arrays import TARGET, read_npz
from search.errors import DataError

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
KERAS_SETS = ("mnist", "fashion_mnist", "cifar10", "boston_housing", "imdb", "reuters")
CIFAR = "cifar-10-batches-py-target/cifar-10-batches-py"  # where Keras extracts the archive
CIFAR_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TEXT = "text"  # the feature column of a word-index set: the word indexes, space-separated
SEED = 113  # keras.datasets' shuffle
START, INDEX_FROM = 1, 3  # keras.datasets' start_char and index_from


def datasets_dir() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def read_keras(
    name: str, target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...] | None, np.ndarray | None]:
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
    if name == "cifar10":
        return _cifar10(target, where)
    if name in ("imdb", "reuters"):
        return _word_indexes(name, _needed(name, f"{name}.npz", where), target, where)
    return _fashion(target, where)


def _needed(name: str, file: str, where: str) -> Path:
    path = datasets_dir() / file
    if not path.is_file():
        raise DataError(
            f"keras:{name} reads {path}, which is not there; keras.datasets.{name}.load_data() "
            f"{_fetches(name, file)} (this machine may be offline: put the file there)",
            file=where,
            key="data.source",
        )
    return path


def _fetches(name: str, file: str) -> str:
    if name == "cifar10":
        return f"extracts {CIFAR_ORIGIN} into {datasets_dir() / CIFAR.split('/')[0]}"
    return f"fetches it from {ORIGIN}{file.split('/')[-1]}"


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


def _word_indexes(
    name: str, path: Path, target: str | None, where: str
) -> tuple[pd.DataFrame, str, None, np.ndarray]:
    """IMDB's reviews or Reuters' newswires as `keras.datasets` gives them (shuffled with
    its seed, each sequence `start_char` then the word indexes shifted by `index_from`;
    IMDB's own test part, Reuters' last 20%), one row a text of word indexes: the `text`
    encoding keeps the most frequent of the training rows (the course's `num_words`)."""
    try:  # lists of word indexes are object arrays: np.load needs pickles, as Keras' does
        with np.load(path, allow_pickle=True) as f:
            pairs = (
                [(f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])]
                if name == "imdb"
                else [(f["x"], f["y"])]
            )
    except Exception as exc:
        raise DataError(f"cannot read {path}: {exc}", file=where, key="data.source") from None
    rng = np.random.RandomState(SEED)
    texts: list[str] = []
    labels, parts = [], []
    for code, (x, y) in zip((0, 2), pairs, strict=False):
        order = np.arange(len(x))
        rng.shuffle(order)
        texts += [" ".join(map(str, [START, *(int(w) + INDEX_FROM for w in x[i])])) for i in order]
        labels.append(np.asarray(y)[order])
        parts.append(np.full(len(x), code, np.int8))
    if name == "reuters":  # one file: the last 20% of the shuffled rows are the test part
        parts = [np.where(np.arange(len(texts)) < int(len(texts) * 0.8), 0, 2).astype(np.int8)]
    label = target or TARGET
    frame = pd.DataFrame({TEXT: texts, label: np.concatenate(labels).astype(np.int64)})
    return frame, label, None, np.concatenate(parts)


class _ArraysOnly(pickle.Unpickler):
    """CIFAR's batches are pickles: rebuild NumPy arrays and nothing else, as Keras'
    restricted unpickler does."""

    ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("_codecs", "encode"),  # the array's bytes, in a Python 3 pickle of protocol 2
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not an array part")
        return super().find_class(module, name)


def _cifar10(
    target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], np.ndarray]:
    """The five training batches and the test batch, images channels-last (32, 32, 3)."""
    files = [f"{CIFAR}/data_batch_{i}" for i in range(1, 6)] + [f"{CIFAR}/test_batch"]
    frames, parts, name = [], [], target or TARGET
    columns = [f"p{i}" for i in range(32 * 32 * 3)]
    for file in files:
        path = _needed("cifar10", file, where)
        try:
            with path.open("rb") as f:
                batch = _ArraysOnly(f, encoding="bytes").load()
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels = np.asarray(batch[b"labels"], dtype=np.int64)
        except Exception as exc:
            raise DataError(f"cannot read {path}: {exc}", file=where, key="data.source") from None
        pixels = data.transpose(0, 2, 3, 1).reshape(len(data), -1).astype(np.float32)
        frame = pd.DataFrame(pixels, columns=columns)
        frame[name] = labels
        frames.append(frame)
        parts.append(np.full(len(frame), 2 if file.endswith("test_batch") else 0, np.int8))
    return pd.concat(frames, ignore_index=True), name, (32, 32, 3), np.concatenate(parts)
