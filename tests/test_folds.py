"""Validation schemes: disjoint folds, groups kept together, time order kept."""

from __future__ import annotations

import numpy as np
import pytest

from search.data.folds import make_folds
from search.errors import DataError
from search.space.schema import ValidationSpec


def _check_partition(folds: list, n: int) -> None:  # type: ignore[type-arg]
    for f in folds:
        assert not set(f.train) & set(f.val), "a validation row is in its fold's training part"
        assert set(f.train) | set(f.val) <= set(range(n))


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [("holdout", 1), ("kfold", 4), ("repeated_kfold", 8), ("time_series", 4)],
)
def test_schemes_give_disjoint_folds(scheme: str, expected: int) -> None:
    y = np.tile([0, 1, 2], 40)
    folds = make_folds(
        ValidationSpec(scheme=scheme, folds=4, repeats=2), y, classification=True, seed=0
    )
    assert len(folds) == expected
    _check_partition(folds, len(y))
    if scheme == "kfold":  # every row is validated exactly once
        assert sorted(np.concatenate([f.val for f in folds]).tolist()) == list(range(len(y)))


def test_stratified_folds_keep_class_balance() -> None:
    y = np.array([0] * 90 + [1] * 10)
    for f in make_folds(ValidationSpec(folds=5), y, classification=True, seed=0):
        assert y[f.val].sum() == 2


def test_group_kfold_keeps_entities_together() -> None:
    groups = np.repeat(np.arange(15), 4)
    y = np.tile([0, 1], 30)
    folds = make_folds(
        ValidationSpec(scheme="group_kfold", folds=3), y, classification=True, seed=0, groups=groups
    )
    for f in folds:
        assert not set(groups[f.train]) & set(groups[f.val])


def test_time_series_validates_on_later_rows() -> None:
    folds = make_folds(
        ValidationSpec(scheme="time_series", folds=3), np.arange(40.0), classification=False, seed=0
    )
    for f in folds:
        assert f.train.max() < f.val.min()


def test_fewer_rows_than_folds() -> None:
    with pytest.raises(DataError, match=r"validation.folds: 3 training rows are fewer than the 5"):
        make_folds(ValidationSpec(folds=5), np.arange(3.0), classification=False, seed=0)


def test_a_class_smaller_than_the_folds_is_stratified_as_far_as_it_goes() -> None:
    # its 3 rows land in 3 different folds' validation rows (never two in one fold)
    y = np.array([0] * 20 + [1] * 3)
    folds = make_folds(ValidationSpec(folds=5), y, classification=True, seed=0)
    per_fold = [int(np.sum(y[f.val] == 1)) for f in folds]
    assert sorted(per_fold) == [0, 0, 1, 1, 1]


def test_folds_that_no_class_can_fill_are_refused() -> None:
    y = np.array([0] * 3 + [1] * 3)
    with pytest.raises(DataError, match=r"largest class has 3 rows, fewer than the 5 folds"):
        make_folds(ValidationSpec(folds=5), y, classification=True, seed=0)
