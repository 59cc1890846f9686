"""A fold's rows as a model trains on them: preprocessed with statistics of the fold's
training rows only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from search.data.dataset import Dataset, make_preprocessor, shaped
from search.data.folds import Fold


@dataclass(frozen=True)
class FoldArrays:
    """A fold's rows, preprocessed with statistics of its training rows only."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def fold_arrays(
    data: Dataset, rows: np.ndarray, fold: Fold, max_tokens: int | None = None
) -> FoldArrays:
    """Fit the preprocessing on the fold's training rows only, then transform both parts
    (a text column keeps `max_tokens` words: a trial's own, or the data's)."""
    X, y = data.X, data.y
    tr, va = rows[fold.train], rows[fold.val]
    pre = make_preprocessor(data.encodings, max_tokens or data.max_tokens).fit(X.iloc[tr])
    return FoldArrays(
        shaped(data, pre.transform(X, tr).astype(np.float32, copy=False)),
        y[tr],
        shaped(data, pre.transform(X, va).astype(np.float32, copy=False)),
        y[va],
    )
