"""Where rows come from: scikit-learn's data sets, CSV/TSV/Parquet files, and the
validation and test rows a space gives in files of their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import datasets as skdatasets

from search.errors import DataError
from search.space import DataSpec

BUILTIN = ("breast_cancer", "digits", "diabetes", "wine", "iris")


def read_source(spec: DataSpec, base_dir: Path, where: str) -> tuple[pd.DataFrame, str, str]:
    if spec.source in BUILTIN:
        bunch = getattr(skdatasets, f"load_{spec.source}")(as_frame=True)
        frame = bunch.frame.copy()
        return frame, spec.target or "target", spec.source
    if spec.target is None:
        raise DataError(
            "a file source needs the name of its target column", file=where, key="data.target"
        )
    return _read_file(spec.source, base_dir, where, "data.source"), spec.target, spec.source


def _read_file(source: str, base_dir: Path, where: str, key: str) -> pd.DataFrame:
    """A CSV, TSV or Parquet file, found in the working folder or beside the space file."""
    path = Path(source)
    if not path.is_absolute():
        path = base_dir / path if not (Path.cwd() / path).exists() else Path.cwd() / path
    if path.suffix.lower() not in (".csv", ".parquet", ".pq", ".tsv"):
        raise DataError(
            f"{source!r} is neither a built-in data set "
            f"({', '.join(BUILTIN)}) nor a .csv/.tsv/.parquet file",
            file=where,
            key=key,
        )
    if not path.is_file():
        raise DataError(f"no such data file {source!r} (looked at {path})", file=where, key=key)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: no header, no rows", file=where, key=key) from None
    except Exception as exc:  # pandas raises many kinds; all mean "unreadable"
        raise DataError(f"cannot read {path}: {exc}", file=where, key=key) from None
    if frame.empty:
        raise DataError(
            f"{path} has no rows (columns: {', '.join(map(str, frame.columns[:12]))})",
            file=where,
            key=key,
        )
    return frame


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
