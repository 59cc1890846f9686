"""Data sources, task inference, target encoding, the fingerprint and preprocessing."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search.data.columns import ENCODINGS, MAX_TOKENS, Preprocessor
from search.data.sources import Source, read_source, with_given_parts
from search.data.task import infer_task
from search.errors import DataError
from search.space.schema import DataSpec


@dataclass(frozen=True)
class Dataset:
    """Rows, encoded target and what is known about them."""

    name: str
    X: pd.DataFrame
    y: np.ndarray  # int class codes for classification, float for regression
    task: str  # binary | multiclass | regression
    classes: tuple[str, ...]  # original labels as text, in code order; empty for regression
    groups: np.ndarray | None
    fingerprint: str
    dropped_rows: int = 0  # rows without a target, left out (`data.missing_target: drop`)
    labels: tuple[Any, ...] = ()  # the same labels in the target's own type (1, True, "a")
    # `data.columns` of the space (and `number` for each value of an image)
    encodings: Mapping[str, str] = field(default_factory=dict)
    parts: np.ndarray | None = None  # rows from files given: 0 source, 1 validation, 2 test
    input_shape: tuple[int, ...] | None = None  # an array source's sample shape (28, 28)
    max_tokens: int = MAX_TOKENS  # words a text column's vocabulary keeps (`data.max_tokens`)

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def nbytes(self) -> int:
        """The feature table's size in memory (text counted as references)."""
        return int(self.X.memory_usage(index=False).sum())


def load_dataset(
    spec: DataSpec, *, base_dir: Path, where: str = "<space>", validation_source: str | None = None
) -> Dataset:
    """Load the source named in the space file (and the validation and test rows given in
    files of their own) and encode its target."""
    source = read_source(spec, base_dir, where)
    target, name = source.target, source.name
    frame, parts = _with_parts(spec, source, base_dir, where, validation_source)
    _check_roles(spec, frame, target, name, where)
    _check_encodings(spec, frame, name, where)
    if spec.time_column and parts is None:
        frame = frame.sort_values(spec.time_column, kind="stable").reset_index(drop=True)
    bad = _missing_target(spec, frame, target, name, where)
    if bad.any():  # rows without a target left out (a copy only then)
        frame = frame[~bad].reset_index(drop=True)
        parts = parts[~bad] if parts is not None else None
    if frame.empty:
        raise DataError(f"{name} has no rows with a target", file=where, key="data.target")
    y_raw = frame[target]
    drop = [target, *spec.drop_columns] + [c for c in (spec.group_column, spec.time_column) if c]
    X = categorical_as_object(frame.drop(columns=drop))
    _refuse_infinity(X, y_raw, name, where)
    task = infer_task(y_raw, spec.task, where=where, target=target, known=source.task)
    y, classes = _encode_target(y_raw, task, where, target)
    if X.shape[1] == 0:
        raise DataError(
            f"{name} has no feature columns besides the target", file=where, key="data.source"
        )
    groups = frame[spec.group_column].to_numpy() if spec.group_column else None
    shape = _sample_shape(spec, X, source.shape, where)
    return Dataset(
        name=name,
        X=X,
        y=y,
        task=task,
        classes=classes,
        groups=groups,
        fingerprint=fingerprint(frame),
        dropped_rows=int(bad.sum()),
        labels=target_labels(y_raw, task),
        encodings=_fixed(spec.columns, X, shape),
        parts=parts,
        input_shape=shape,
        max_tokens=spec.max_tokens,
    )


def _fixed(
    chosen: Mapping[str, str], X: pd.DataFrame, shape: tuple[int, ...] | None
) -> dict[str, str]:
    """The space's encodings; and every value of an image a number, kept even where it is
    constant (a border pixel), so that each sample keeps its shape."""
    if shape is None or len(shape) < 2:
        return dict(chosen)
    return {str(c): "number" for c in X.columns} | dict(chosen)


def _sample_shape(
    spec: DataSpec, X: pd.DataFrame, given: tuple[int, ...] | None, where: str
) -> tuple[int, ...] | None:
    """Each sample's shape: the array source's, or `data.shape` over a table's numeric
    columns (its pixels, in C order)."""
    if spec.shape is None:
        return given
    shape = tuple(spec.shape)
    numeric = all(pd.api.types.is_numeric_dtype(X[c]) for c in X.columns)
    if not numeric or int(np.prod(shape)) != X.shape[1]:
        raise DataError(
            f"{list(shape)} holds {int(np.prod(shape))} values a sample, and the "
            f"features are {X.shape[1]} columns{'' if numeric else ', not all numbers'}",
            file=where,
            key="data.shape",
        )
    return shape


def _with_parts(
    spec: DataSpec, source: Source, base_dir: Path, where: str, validation_source: str | None
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The source's rows and the given files' after them, and each row's part (0 source,
    1 validation, 2 test): an array file's own test part first, then any files given."""
    if source.parts is not None and spec.test_source:
        raise DataError(
            f"{source.name} provides its own test part (x_test, y_test); leave "
            "data.test_source out",
            file=where,
            key="data.test_source",
        )
    given = {"validation.source": validation_source, "data.test_source": spec.test_source}
    frame, parts = with_given_parts(source.frame, given, base_dir, where, spec.time_column)
    if source.parts is not None:
        n = len(source.parts)
        parts = np.concatenate([source.parts, parts[n:] if parts is not None else []])
        parts = parts.astype(np.int8)
    return frame, parts


def _check_roles(spec: DataSpec, frame: pd.DataFrame, target: str, name: str, where: str) -> None:
    """The target, group, time and dropped columns exist, and the target has no other role."""
    if target not in frame.columns:
        near = ", ".join(map(str, frame.columns[:12]))
        raise DataError(
            f"column {target!r} not found in {name} "
            f"(columns: {near}{', ...' if frame.shape[1] > 12 else ''})",
            file=where,
            key="data.target",
        )
    for key in ("group_column", "time_column"):
        col = getattr(spec, key)
        if col is not None and col not in frame.columns:
            raise DataError(f"column {col!r} not found in {name}", file=where, key=f"data.{key}")
    roles = {"group_column": spec.group_column, "time_column": spec.time_column}
    for key, col in [*roles.items(), *(("drop_columns", c) for c in spec.drop_columns)]:
        if col == target:
            raise DataError(
                f"column {target!r} is the target; it cannot also be in data.{key}",
                file=where,
                key=f"data.{key}",
            )
    missing = [c for c in spec.drop_columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"columns {missing} not found in {name}", file=where, key="data.drop_columns"
        )


def _missing_target(
    spec: DataSpec, frame: pd.DataFrame, target: str, name: str, where: str
) -> np.ndarray:
    """The rows without a target: refused (`data.missing_target: error`) or to drop."""
    bad: np.ndarray = frame[target].isna().to_numpy()
    if bad.any() and spec.missing_target == "error":
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(
            f"column {target!r} of {name} has {bad.sum()} missing (NaN) values, first at "
            f"rows {rows}; set `data.missing_target: drop` to leave those rows out",
            file=where,
            key="data.target",
        )
    return bad


def _check_encodings(spec: DataSpec, frame: pd.DataFrame, name: str, where: str) -> None:
    """`data.columns` names feature columns of the source, with encodings that fit them."""
    roles = {spec.target, spec.group_column, spec.time_column, *spec.drop_columns}
    for col, encoding in spec.columns.items():
        key = f"data.columns.{col}"
        if col not in frame.columns or col in roles:
            what = "is not a feature column" if col in frame.columns else "is not a column"
            raise DataError(f"{col!r} {what} of {name}", file=where, key=key)
        if encoding not in ENCODINGS:
            raise DataError(
                f"unknown encoding {encoding!r} (allowed: {', '.join(ENCODINGS)})",
                file=where,
                key=key,
            )
        if encoding == "number" and not pd.api.types.is_numeric_dtype(frame[col]):
            raise DataError(
                f"{col!r} holds text (e.g. {frame[col].dropna().iloc[0]!r}), not numbers",
                file=where,
                key=key,
            )


def _refuse_infinity(X: pd.DataFrame, y: pd.Series, name: str, where: str) -> None:
    """Infinity has no place in a feature or a target: name the column and the first row."""
    for col, values in [*X.items(), (y.name, y)]:
        if not pd.api.types.is_float_dtype(values):
            continue
        bad = np.isinf(values.to_numpy(dtype=float))
        if bad.any():
            key = "data.target" if col == y.name else "data.source"
            raise DataError(
                f"column {col!r} of {name} holds {int(bad.sum())} infinite values, first at "
                f"row {int(np.flatnonzero(bad)[0])}; replace them (NaN is imputed) or drop "
                "the column with `data.drop_columns`",
                file=where,
                key=key,
            )


def _encode_target(
    y: pd.Series, task: str, where: str, target: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    if task == "regression":
        return y.to_numpy(dtype=np.float32), ()
    codes, uniques = pd.factorize(y, sort=True)
    return codes.astype(np.int32), tuple(str(u) for u in uniques)


def target_labels(y: pd.Series, task: str) -> tuple[Any, ...]:
    """The classes in code order, as Python values of the target's own type."""
    if task == "regression":
        return ()
    _, uniques = pd.factorize(y, sort=True)
    return tuple(u.item() if hasattr(u, "item") else u for u in uniques)


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable hash of the rows, columns and values of a data set."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def shaped(data: Dataset, x: np.ndarray) -> np.ndarray:
    """Preprocessed rows in the shape a model takes: each sample's own shape for an array
    source (images), else rows of features."""
    if data.input_shape is None or len(data.input_shape) < 2:
        return x
    return x.reshape((-1, *data.input_shape))


def make_preprocessor(
    chosen: Mapping[str, str] | None = None, max_tokens: int = MAX_TOKENS
) -> Preprocessor:
    """Impute, standardize and encode each column (search.data.columns); fit it on training rows
    only. `chosen`: the space file's `data.columns`, the encodings it names."""
    return Preprocessor(dict(chosen or {}), max_tokens)


def categorical_as_object(X: pd.DataFrame) -> pd.DataFrame:
    """Give non-numeric columns one dtype (object with np.nan) that the imputers accept."""
    out = X.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(object).where(out[col].notna(), np.nan)
    return out
