"""Data sources, task inference, the test split, the fingerprint and per-fold preprocessing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as skdatasets
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GroupShuffleSplit, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from search.errors import DataError
from search.space import DataSpec

BUILTIN = ("breast_cancer", "digits", "diabetes", "wine", "iris")
MAX_CLASSES_INFERRED = 20


@dataclass(frozen=True)
class Dataset:
    """Rows, encoded target and what is known about them."""

    name: str
    X: pd.DataFrame
    y: np.ndarray  # int class codes for classification, float for regression
    task: str  # binary | multiclass | regression
    classes: tuple[str, ...]  # original labels, in code order; empty for regression
    groups: np.ndarray | None
    fingerprint: str

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def n_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class TestSplit:
    """The rows the search may use (`train`) and the rows only the final evaluation sees."""

    __test__ = False  # not a pytest class
    train: np.ndarray
    test: np.ndarray
    seed: int

    def digest(self) -> str:
        return hashlib.sha256(np.sort(self.test).astype(np.int64).tobytes()).hexdigest()[:16]


def load_dataset(spec: DataSpec, *, base_dir: Path, where: str = "<space>") -> Dataset:
    """Load the source named in the space file and encode its target."""
    frame, target, name = _read_source(spec, base_dir, where)
    if target not in frame.columns:
        near = ", ".join(map(str, frame.columns[:12]))
        raise DataError(
            f"{where}: data.target: column {target!r} not found in {name} "
            f"(columns: {near}{', ...' if frame.shape[1] > 12 else ''})"
        )
    for key in ("group_column", "time_column"):
        col = getattr(spec, key)
        if col is not None and col not in frame.columns:
            raise DataError(f"{where}: data.{key}: column {col!r} not found in {name}")
    missing = [c for c in spec.drop_columns if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: data.drop_columns: columns {missing} not found in {name}")
    if spec.time_column:
        frame = frame.sort_values(spec.time_column, kind="stable").reset_index(drop=True)
    y_raw = frame[target]
    bad = y_raw.isna().to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise DataError(
            f"{where}: data.target: column {target!r} of {name} has {bad.sum()} "
            f"missing (NaN) values, first at rows {rows}; drop or fill them first"
        )
    task = _infer_task(y_raw, spec.task, where, target)
    y, classes = _encode_target(y_raw, task, where, target)
    drop = [target, *spec.drop_columns] + [c for c in (spec.group_column, spec.time_column) if c]
    X = categorical_as_object(frame.drop(columns=drop))
    if X.shape[1] == 0:
        raise DataError(f"{where}: data.source: {name} has no feature columns besides the target")
    groups = frame[spec.group_column].to_numpy() if spec.group_column else None
    return Dataset(
        name=name,
        X=X,
        y=y,
        task=task,
        classes=classes,
        groups=groups,
        fingerprint=fingerprint(frame),
    )


def _read_source(spec: DataSpec, base_dir: Path, where: str) -> tuple[pd.DataFrame, str, str]:
    if spec.source in BUILTIN:
        bunch = getattr(skdatasets, f"load_{spec.source}")(as_frame=True)
        frame = bunch.frame.copy()
        return frame, spec.target or "target", spec.source
    path = Path(spec.source)
    if not path.is_absolute():
        path = base_dir / path if not (Path.cwd() / path).exists() else Path.cwd() / path
    if path.suffix.lower() not in (".csv", ".parquet", ".pq", ".tsv"):
        raise DataError(
            f"{where}: data.source: {spec.source!r} is neither a built-in data set "
            f"({', '.join(BUILTIN)}) nor a .csv/.tsv/.parquet file"
        )
    if not path.is_file():
        raise DataError(
            f"{where}: data.source: no such data file {spec.source!r} (looked at {path})"
        )
    if spec.target is None:
        raise DataError(f"{where}: data.target: a file source needs the name of its target column")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as exc:  # pandas raises many kinds; all mean "unreadable"
        raise DataError(f"{where}: data.source: cannot read {path}: {exc}") from None
    return frame, spec.target, str(spec.source)


def _infer_task(y: pd.Series, task: str, where: str, target: str) -> str:
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if task == "regression":
        if not numeric:
            raise DataError(
                f"{where}: data.target: task is regression but column {target!r} is "
                f"not numeric (dtype {y.dtype}, e.g. {y.iloc[0]!r})"
            )
        return task
    n_unique = y.nunique()
    if task == "auto":
        integral = not numeric or bool(np.all(np.mod(y.to_numpy(dtype=float), 1) == 0))
        if numeric and (not integral or n_unique > MAX_CLASSES_INFERRED):
            return "regression"
        task = "binary" if n_unique == 2 else "multiclass"
    if n_unique < 2:
        raise DataError(f"{where}: data.target: column {target!r} has a single class")
    if task == "binary" and n_unique != 2:
        raise DataError(f"{where}: data.task: binary needs 2 classes, {target!r} has {n_unique}")
    return task


def _encode_target(
    y: pd.Series, task: str, where: str, target: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    if task == "regression":
        return y.to_numpy(dtype=np.float32), ()
    codes, uniques = pd.factorize(y, sort=True)
    return codes.astype(np.int32), tuple(str(u) for u in uniques)


def fingerprint(frame: pd.DataFrame) -> str:
    """A stable hash of the rows, columns and values of a data set."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def split_test(data: Dataset, spec: DataSpec, *, where: str = "<space>") -> TestSplit:
    """Hold out the test rows once: seeded, stratified, group- and time-aware."""
    rows = np.arange(len(data.y))
    n_test = int(np.ceil(len(rows) * spec.test_size))
    if len(rows) - n_test < 4 or n_test < 1:
        raise DataError(
            f"{where}: data.test_size: {len(rows)} rows are too few to hold out "
            f"{spec.test_size:.0%} for testing"
        )
    if spec.time_column:
        return TestSplit(train=rows[:-n_test], test=rows[-n_test:], seed=spec.seed)
    if data.groups is not None:
        gss = GroupShuffleSplit(n_splits=1, test_size=spec.test_size, random_state=spec.seed)
        train, test = next(gss.split(rows, groups=data.groups))
        return TestSplit(train=np.sort(train), test=np.sort(test), seed=spec.seed)
    stratify = None
    if data.is_classifier:
        counts = np.bincount(data.y)
        if counts.min() < 2:
            cls = data.classes[int(counts.argmin())]
            raise DataError(
                f"{where}: data.target: class {cls!r} has {counts.min()} row; "
                "stratified test split needs at least 2 per class"
            )
        stratify = data.y
    train, test = train_test_split(
        rows, test_size=spec.test_size, random_state=spec.seed, stratify=stratify
    )
    return TestSplit(train=np.sort(train), test=np.sort(test), seed=spec.seed)


def make_preprocessor(X: pd.DataFrame) -> ColumnTransformer:
    """Impute, scale numerics and one-hot encode categoricals; fit it on training rows only."""
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    return ColumnTransformer(
        [
            (
                "num",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            ),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )


def categorical_as_object(X: pd.DataFrame) -> pd.DataFrame:
    """Give non-numeric columns one dtype (object with np.nan) that the imputers accept."""
    out = X.copy()
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(object).where(out[col].notna(), np.nan)
    return out
