"""Where rows come from: scikit-learn's data sets, CSV/TSV/Parquet files, and the
validation and test rows a space gives in files of their own."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as skdatasets

from search.data.arrays import read_npy_pair, read_npz
from search.data.columns import time_problem
from search.data.kerasdata import read_keras
from search.errors import DataError
from search.space.schema import DataSpec

BUILTIN = ("breast_cancer", "digits", "diabetes", "wine", "iris")
# what each known data set's target is, by construction ("classes": binary or multiclass)
KNOWN_TASKS = {"diabetes": "regression", "keras:boston_housing": "regression"}


@dataclass(frozen=True)
class Source:
    """The rows of a source, its target's name, and for arrays each sample's shape and
    the rows' parts (2: a test part the file provides)."""

    frame: pd.DataFrame
    target: str
    name: str
    shape: tuple[int, ...] | None = None
    parts: np.ndarray | None = None
    task: str | None = None  # "classes" or "regression" when known by construction


def read_source(spec: DataSpec, base_dir: Path, where: str) -> Source:
    if spec.source in BUILTIN:
        bunch = getattr(skdatasets, f"load_{spec.source}")(as_frame=True)
        frame = bunch.frame.copy()
        return Source(frame, spec.target or "target", spec.source, task=_known(spec, "target"))
    if spec.source.startswith("keras:"):  # the course's data sets, from Keras' cache
        frame, target, shape, parts = read_keras(spec.source[6:], spec.target, where)
        return Source(frame, target, spec.source, shape, parts, task=_known(spec, target))
    folder = _folder(spec.source, base_dir)
    if folder is not None:  # one subfolder per class of images
        from search.data.images import read_image_folder  # Pillow: image folders only

        size = (spec.image_size[0], spec.image_size[1])
        frame, target, shape, _ = read_image_folder(
            folder, size, spec.color_mode, spec.target, where
        )
        return Source(frame, target, spec.source, shape)
    if Path(spec.source).suffix.lower() == ".npz":
        path = _existing(spec.source, base_dir, where, "data.source")
        frame, target, shape, parts = read_npz(path, spec.target, where)
        return Source(frame, target, spec.source, shape, parts)
    if Path(spec.source).suffix.lower() == ".npy":  # samples; their labels: data.target
        if spec.target is None or Path(spec.target).suffix.lower() != ".npy":
            raise DataError(
                "a .npy source needs its labels in another .npy file, named by data.target",
                file=where,
                key="data.target",
            )
        path = _existing(spec.source, base_dir, where, "data.source")
        labels = _existing(spec.target, base_dir, where, "data.target")
        frame, target, shape, _ = read_npy_pair(path, labels, "data.target", where)
        return Source(frame, target, spec.source, shape)
    if spec.target is None:
        raise DataError(
            "a file source needs the name of its target column", file=where, key="data.target"
        )
    frame = _read_file(spec.source, base_dir, where, "data.source")
    check_times(frame, spec.time_column, spec.source, where)
    return Source(frame, spec.target, spec.source)


def check_times(frame: pd.DataFrame, column: str | None, source: str, where: str) -> None:
    """A time column orders the rows: every value a time (search.data.columns.time_problem)."""
    if column is None or column not in frame.columns:
        return  # none, or its absence is said with the other roles' (search.data.dataset)
    problem = time_problem(frame[column])
    if problem:
        raise DataError(
            f"time column {column!r} of {source}: {problem}", file=where, key="data.time_column"
        )


def _known(spec: DataSpec, own: str) -> str | None:
    """A built-in or keras: set's task by construction (a regression, or classes) when
    its own target is the target; None when the space picked another column."""
    if spec.target not in (None, own):
        return None
    return KNOWN_TASKS.get(spec.source, "classes")


def _folder(source: str, base_dir: Path) -> Path | None:
    """The folder a source names (in the working folder, or beside the space file)."""
    path = Path(source)
    for place in [path] if path.is_absolute() else [Path.cwd() / path, base_dir / path]:
        if place.is_dir():
            return place
    return None


def _located(source: str, base_dir: Path) -> Path:
    """Where a source is: in the working folder, or beside the space file."""
    path = Path(source)
    if not path.is_absolute():
        path = base_dir / path if not (Path.cwd() / path).exists() else Path.cwd() / path
    return path


def _existing(source: str, base_dir: Path, where: str, key: str) -> Path:
    """The file a source names: in the working folder, or beside the space file."""
    path = _located(source, base_dir)
    if not path.is_file():
        raise DataError(f"{_not_a_file(path)} {source!r} (looked at {path})", file=where, key=key)
    return path


def _not_a_file(path: Path) -> str:
    """Why `path` is not a file to read, in words: a symlink loop is not "no such file"."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symlink loop, not a data file:"
        if path.is_symlink():
            return f"a symlink to nothing ({os.readlink(path)}), not a data file:"
        if exc.errno == errno.EACCES:
            return "no permission to read the data file"
        return "no such data file"
    return "not a regular file:"


def _read_file(source: str, base_dir: Path, where: str, key: str) -> pd.DataFrame:
    """A CSV, TSV or Parquet file, found in the working folder or beside the space file."""
    if Path(source).suffix.lower() not in (".csv", ".parquet", ".pq", ".tsv"):
        path = _located(source, base_dir)
        if path.is_symlink() and not path.exists():  # a loop, or a link to nothing
            raise DataError(
                f"{_not_a_file(path)} {source!r} (looked at {path})", file=where, key=key
            )
        raise DataError(
            f"{source!r} is neither a built-in data set "
            f"({', '.join(BUILTIN)}), nor keras:NAME, nor a .csv/.tsv/.parquet/.npz/.npy "
            "file, nor a folder of class folders",
            file=where,
            key=key,
        )
    path = _existing(source, base_dir, where, key)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: no header, no rows", file=where, key=key) from None
    except Exception as exc:  # pandas raises many kinds; all mean "unreadable"
        raise DataError(f"cannot read {path}: {exc}", file=where, key=key) from None
    _check_unique_columns(path, frame, where, key)
    if frame.empty:
        raise DataError(
            f"{path} has no rows (columns: {', '.join(map(str, frame.columns[:12]))})",
            file=where,
            key=key,
        )
    return frame


def _check_unique_columns(path: Path, frame: pd.DataFrame, where: str, key: str) -> None:
    """No column named twice: pandas renames a CSV's second `x` to `x.1` in silence, and a
    Parquet file may hold two."""
    names = [str(c) for c in frame.columns]
    if path.suffix.lower() in (".csv", ".tsv"):
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str)
        names = [str(c) for c in header.iloc[0] if isinstance(c, str)] if len(header) else []
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise DataError(
                f"{path}: column {name!r} is named twice in its header (columns {seen[name] + 1} "
                f"and {i + 1}); name each column once",
                file=where,
                key=key,
            )
        seen[name] = i


def with_given_parts(
    frame: pd.DataFrame,
    given: dict[str, str | None],
    base_dir: Path,
    where: str,
    time_column: str | None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The source's rows, then the given validation rows, then the given test rows (each
    part in its own time order), and each row's part: 0 source, 1 validation, 2 test."""
    parts, frames = [np.zeros(len(frame), np.int8)], [frame]
    for code, (key, source) in enumerate(given.items(), start=1):
        if source is None:
            continue
        extra = _read_file(source, base_dir, where, key)
        check_times(extra, time_column, source, where)
        missing = [c for c in frame.columns if c not in extra.columns]
        surplus = [c for c in extra.columns if c not in frame.columns]
        if missing or surplus:
            raise DataError(
                f"{source} must have the source's columns: missing {missing}, extra {surplus}",
                file=where,
                key=key,
            )
        frames.append(extra[list(frame.columns)])
        parts.append(np.full(len(extra), code, np.int8))
    if len(frames) == 1:
        return frame, None
    if time_column:
        frames = [f.sort_values(time_column, kind="stable") for f in frames]
    return pd.concat(frames, ignore_index=True), np.concatenate(parts)
