"""The test split, held out once a study (seeded, stratified, group- and time-aware, or
the test part a source gives), and the share of the training rows a search may use."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from search.data.dataset import Dataset
from search.errors import DataError
from search.space.schema import DataSpec


@dataclass(frozen=True)
class TestSplit:
    """The rows the search may use (`train`) and the rows only the final evaluation sees."""

    __test__ = False  # not a pytest class
    train: np.ndarray
    test: np.ndarray
    seed: int
    # every training row, when the search samples `train` from them (`data.subsample`)
    everything: np.ndarray | None = None

    @property
    def refit_rows(self) -> np.ndarray:
        """The rows the final model is refitted on and its baseline learned from: every
        training row, the search's subsample or not."""
        return self.train if self.everything is None else self.everything

    def digest(self) -> str:
        return hashlib.sha256(np.sort(self.test).astype(np.int64).tobytes()).hexdigest()[:16]


def split_test(data: Dataset, spec: DataSpec, *, where: str = "<space>") -> TestSplit:
    """Hold out the test rows once: seeded, stratified, group- and time-aware; then, with
    `data.subsample`, the share of the training rows the search itself uses."""
    split = _held_out(data, spec, where)
    if spec.subsample >= 1.0:
        return split
    return replace(split, train=_subsample(data, spec, split.train, where), everything=split.train)


def _subsample(data: Dataset, spec: DataSpec, rows: np.ndarray, where: str) -> np.ndarray:
    """A share of `rows`, as the test split is drawn: stratified by class, whole groups,
    or the latest rows of a time series."""
    n = int(np.ceil(len(rows) * spec.subsample))
    if n < 8:
        raise DataError(
            f"a subsample of {spec.subsample:g} keeps {n} of {len(rows)} training rows; "
            "a search needs 8 or more",
            file=where,
            key="data.subsample",
        )
    if spec.time_column:
        return rows[-n:]
    seed = spec.seed + 1
    if data.groups is not None:
        gss = GroupShuffleSplit(n_splits=1, train_size=spec.subsample, random_state=seed)
        kept, _ = next(gss.split(rows, groups=data.groups[rows]))
        return np.sort(rows[kept])
    y = data.y[rows]
    stratify = y if data.is_classifier and np.bincount(y).min() >= 2 else None
    kept = train_test_split(rows, train_size=n, random_state=seed, stratify=stratify)[0]
    return np.sort(kept)


def _held_out(data: Dataset, spec: DataSpec, where: str) -> TestSplit:
    rows = np.arange(len(data.y))
    if data.parts is not None and (data.parts == 2).any():  # the test rows given, as given
        train, test = np.flatnonzero(data.parts != 2), np.flatnonzero(data.parts == 2)
        return TestSplit(train=train, test=test, seed=spec.seed)
    n_test = int(np.ceil(len(rows) * spec.test_size))
    if len(rows) - n_test < 4 or n_test < 1:
        raise DataError(
            f"{len(rows)} rows are too few to hold out {spec.test_size:.0%} for testing",
            file=where,
            key="data.test_size",
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
            rare = [repr(data.classes[c]) for c in np.flatnonzero(counts < 2)]
            raise DataError(
                f"class{'es' if len(rare) > 1 else ''} {', '.join(rare[:10])}"
                f"{' ...' if len(rare) > 10 else ''} {'have' if len(rare) > 1 else 'has'} 1 row; "
                "a stratified test split needs at least 2 per class",
                file=where,
                key="data.target",
            )
        stratify = data.y
    train, test = train_test_split(
        rows, test_size=spec.test_size, random_state=spec.seed, stratify=stratify
    )
    return TestSplit(train=np.sort(train), test=np.sort(test), seed=spec.seed)
