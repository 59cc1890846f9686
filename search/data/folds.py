"""Validation schemes: fold index pairs over the search rows (the test rows never enter)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    TimeSeriesSplit,
    train_test_split,
)

from search.errors import DataError
from search.space.schema import ValidationSpec


@dataclass(frozen=True)
class Fold:
    """Positions into the search rows: fit on `train`, score on `val`."""

    index: int
    train: np.ndarray
    val: np.ndarray


def make_folds(
    spec: ValidationSpec,
    y: np.ndarray,
    *,
    classification: bool,
    seed: int,
    groups: np.ndarray | None = None,
    where: str = "<space>",
) -> list[Fold]:
    """Split the search rows (already without the test rows) into folds."""
    n = len(y)
    stratify = classification and spec.stratify and spec.scheme != "time_series"
    _check_sizes(spec, y, n, stratify=stratify, groups=groups, where=where)
    rows = np.arange(n)
    if spec.scheme == "given":
        raise ValueError("given validation rows come with the data (search.study)")
    if spec.scheme == "holdout":
        train, val = train_test_split(
            rows, test_size=spec.val_fraction, random_state=seed, stratify=y if stratify else None
        )
        pairs = [(np.sort(train), np.sort(val))]
    else:
        splitter = _splitter(spec, stratify=stratify, seed=seed)
        with warnings.catch_warnings():  # rare classes: said by name on the start line
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            pairs = list(splitter.split(rows, y, groups))
    return [Fold(i, np.asarray(tr), np.asarray(va)) for i, (tr, va) in enumerate(pairs)]


def _splitter(spec: ValidationSpec, *, stratify: bool, seed: int) -> Any:
    k = spec.folds
    if spec.scheme == "kfold":
        return (
            StratifiedKFold(k, shuffle=True, random_state=seed)
            if stratify
            else KFold(k, shuffle=True, random_state=seed)
        )
    if spec.scheme == "repeated_kfold":
        cls = RepeatedStratifiedKFold if stratify else RepeatedKFold
        return cls(n_splits=k, n_repeats=spec.repeats, random_state=seed)
    if spec.scheme == "group_kfold":
        if stratify:
            return StratifiedGroupKFold(k, shuffle=True, random_state=seed)
        return GroupKFold(k, shuffle=True, random_state=seed)
    return TimeSeriesSplit(k)


def _check_sizes(
    spec: ValidationSpec,
    y: np.ndarray,
    n: int,
    *,
    stratify: bool,
    groups: np.ndarray | None,
    where: str,
) -> None:
    k = 2 if spec.scheme == "holdout" else spec.folds
    key = "validation.val_fraction" if spec.scheme == "holdout" else "validation.folds"
    if spec.scheme == "time_series":
        k += 1
    if n < k:
        raise DataError(
            f"{n} training rows are fewer than the {k} parts that `{spec.scheme}` needs",
            file=where,
            key=key,
        )
    if spec.scheme == "group_kfold" and groups is not None:
        n_groups = len(np.unique(groups))
        if n_groups < k:
            raise DataError(f"{n_groups} groups are fewer than {k} folds", file=where, key=key)
    if spec.scheme == "holdout":
        _check_holdout(spec, y, n, stratify=stratify, where=where)
    if stratify:
        counts = np.bincount(y.astype(int))
        counts = counts[counts > 0]
        if counts.max() < k:  # scikit-learn stratifies rare classes as far as they go
            raise DataError(
                f"the largest class has {counts.max()} rows, fewer "
                f"than the {k} folds a stratified `{spec.scheme}` needs; lower "
                "`validation.folds` or set `validation.stratify: false`",
                file=where,
                key=key,
            )


def _check_holdout(
    spec: ValidationSpec, y: np.ndarray, n: int, *, stratify: bool, where: str
) -> None:
    """The validation part must hold a row (of each class, when stratified); so must the rest."""
    n_val = int(np.ceil(n * spec.val_fraction))
    need = len(np.unique(y)) if stratify else 1
    if min(n_val, n - n_val) < need:
        what = f"one row of each of the {need} classes" if stratify else "one row"
        raise DataError(
            f"{spec.val_fraction:g} of {n} training rows is {n_val} validation rows and "
            f"{n - n_val} to train on: each part needs at least {what}",
            file=where,
            key="validation.val_fraction",
        )
