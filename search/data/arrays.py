"""Arrays as `keras.datasets` stores them: a `.npz` with `x`/`y`, or `x_train`/`y_train`
and `x_test`/`y_test` (MNIST's, Fashion-MNIST's, CIFAR's shapes).

Each sample is kept as one row of numbers (`p0`, `p1`, ... in C order) beside its label,
so the preprocessing, the folds, the test split and the champion's raw rows work as for a
table; its shape (28 x 28, 32 x 32 x 3, ...) travels with the data set, and every model
gets its rows back in that shape (`search.data.dataset.shaped`). A provided test part is the test
split, as given.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from search.errors import DataError

TARGET = "label"  # the target column of an array source


def read_npz(
    path: Path, target: str | None, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], np.ndarray | None]:
    """The rows (pixels as columns, the label last), the target's name, each sample's
    shape, and the rows' parts (2: the file's test part) when it has one."""
    try:
        arrays = np.load(path, allow_pickle=False)
        keys = set(arrays.files)
    except Exception as exc:  # not a zip, a pickled array, a torn file: unreadable
        raise DataError(f"cannot read {path}: {exc}", file=where, key="data.source") from None
    pairs = [("x", "y")] if {"x", "y"} <= keys else []
    pairs += [(f"x_{p}", f"y_{p}") for p in ("train", "test") if {f"x_{p}", f"y_{p}"} <= keys]
    if not pairs:
        raise DataError(
            f"{path} holds {sorted(keys)}; an array source needs `x` and `y`, or "
            "`x_train`, `y_train` (and `x_test`, `y_test`) as keras.datasets stores them",
            file=where,
            key="data.source",
        )
    xs = [np.asarray(arrays[x]) for x, _ in pairs]
    ys = [np.asarray(arrays[y]).reshape(-1) for _, y in pairs]
    codes = [2 if x == "x_test" else 0 for x, _ in pairs]
    return _rows(path, xs, ys, codes, target, where)


def read_npy_pair(
    x_path: Path, y_path: Path, target_key: str, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], None]:
    """Samples in one `.npy` file, their labels in another (`data.target`)."""
    arrays = []
    for path, key in ((x_path, "data.source"), (y_path, target_key)):
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except Exception as exc:
            raise DataError(f"cannot read {path}: {exc}", file=where, key=key) from None
    frame, name, shape, _ = _rows(x_path, [arrays[0]], [arrays[1].reshape(-1)], [0], None, where)
    return frame, name, shape, None


def _rows(
    path: Path,
    xs: list[np.ndarray],
    ys: list[np.ndarray],
    codes: list[int],
    target: str | None,
    where: str,
) -> tuple[pd.DataFrame, str, tuple[int, ...], np.ndarray | None]:
    shape = tuple(int(d) for d in xs[0].shape[1:])
    for x, y in zip(xs, ys, strict=True):
        if len(x) != len(y) or tuple(x.shape[1:]) != shape:
            raise DataError(
                f"{path}: {len(x)} samples of shape {x.shape[1:]} for {len(y)} labels; every "
                f"part needs one label a sample and samples of one shape {shape}",
                file=where,
                key="data.source",
            )
    name = target or TARGET
    columns = [f"p{i}" for i in range(int(np.prod(shape)))]
    # the parts joined while small (uint8 images), then one float32 copy as one block
    pixels = np.concatenate([x.reshape(len(x), -1) for x in xs]).astype(np.float32)
    frame = pd.DataFrame(pixels, columns=columns, copy=False)
    frame[name] = np.concatenate(ys)
    parts = None
    if 2 in codes:
        parts = np.concatenate(
            [np.full(len(x), code, np.int8) for x, code in zip(xs, codes, strict=True)]
        )
    return frame, name, shape, parts
