"""Arrays as `keras.datasets` stores them: a `.npz` with `x`/`y`, or `x_train`/`y_train`
and `x_test`/`y_test` (MNIST's, Fashion-MNIST's, CIFAR's shapes).

Each sample is kept as one row of numbers (`p0`, `p1`, ... in C order) beside its label,
so the preprocessing, the folds, the test split and the champion's raw rows work as for a
table; its shape (28 x 28, 32 x 32 x 3, ...) travels with the data set, and every model
gets its rows back in that shape (`search.data.dataset.shaped`). A provided test part is the test
split, as given.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

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
        _check_npz_headers(path)
        arrays = np.load(path, allow_pickle=False)
        keys = set(arrays.files)
    except DataError as exc:
        raise DataError(exc.reason, file=where, key="data.source") from None
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
    try:  # each member is read here: a torn one is unreadable, not a traceback
        xs = [np.asarray(arrays[x]) for x, _ in pairs]
        ys = [np.asarray(arrays[y]).reshape(-1) for _, y in pairs]
    except Exception as exc:
        raise DataError(f"cannot read {path}: {exc}", file=where, key="data.source") from None
    codes = [2 if x == "x_test" else 0 for x, _ in pairs]
    return _rows(path, xs, ys, codes, target, where)


def read_npy_pair(
    x_path: Path, y_path: Path, target_key: str, where: str
) -> tuple[pd.DataFrame, str, tuple[int, ...], None]:
    """Samples in one `.npy` file, their labels in another (`data.target`)."""
    arrays = []
    for path, key in ((x_path, "data.source"), (y_path, target_key)):
        try:
            with path.open("rb") as stream:
                _check_header(stream, path.stat().st_size, f"{path}")
            arrays.append(np.load(path, allow_pickle=False))
        except DataError as exc:
            raise DataError(exc.reason, file=where, key=key) from None
        except Exception as exc:
            raise DataError(f"cannot read {path}: {exc}", file=where, key=key) from None
    frame, name, shape, _ = _rows(x_path, [arrays[0]], [arrays[1].reshape(-1)], [0], None, where)
    return frame, name, shape, None


# Deflate makes at most about 1032 bytes of one: a zip member said to be larger than
# that is a forged size (a zip bomb's), refused before anything is allocated.
_DEFLATE_RATIO = 1032


def _check_npz_headers(path: Path) -> None:
    """Each array of an .npz holds the bytes its header claims, before numpy allocates
    them (it sizes its buffer from the header alone)."""
    if not zipfile.is_zipfile(path):
        return  # np.load says what it is not
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            where = f"{path}, array {info.filename.removesuffix('.npy')!r}"
            bound = info.compress_size * _DEFLATE_RATIO + 1024
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > bound:
                raise DataError(
                    f"{where}: the archive says {info.file_size:,} bytes for "
                    f"{info.compress_size:,} compressed, more than deflate can make; "
                    "the file is damaged or forged"
                )
            with archive.open(info) as stream:
                _check_header(stream, info.file_size, where)


def _check_header(stream: IO[bytes], size: int, where: str) -> None:
    """An .npy header's shape and dtype claim no more bytes than follow it."""
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0
        if version != (1, 0):
            read = np.lib.format.read_array_header_2_0
        shape, _, dtype = read(stream)
    except Exception:  # not an .npy header: np.load says what is wrong
        return
    claimed = math.prod(int(d) for d in shape) * int(dtype.itemsize)
    held = size - stream.tell()
    if claimed > held:
        raise DataError(
            f"{where}: its header claims {claimed:,} bytes (shape {tuple(shape)}, "
            f"{dtype}) and the file holds {max(held, 0):,}; the file is cut short or forged"
        )


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
