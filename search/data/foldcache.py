"""Preprocessed folds kept for the next trial within a memory budget, remade when needed.

Every trial trains on the same folds, so their preprocessed rows are made once and kept.
On MNIST-sized data each fold's rows are nearly the size of the data itself, and keeping
all k of them would hold k copies: the cache keeps the most recently used folds while
they fit in `budget` bytes (at least one) and remakes the others when a trial reads them
again, with the same numbers (the preprocessing is deterministic).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from search.data.foldarrays import FoldArrays

Key = tuple[int, int | None]  # a fold's index, a vocabulary size (None: the data's)
KEEP_BYTES = 256 * 2**20  # preprocessed folds kept between trials, whatever the data's size


def fold_bytes(arrays: FoldArrays) -> int:
    return sum(a.nbytes for a in (arrays.x_train, arrays.y_train, arrays.x_val, arrays.y_val))


class FoldCache:
    """Folds by key, made by `make(index, max_tokens)` when first read or after they were
    let go."""

    def __init__(
        self, make: Callable[[int, int | None], FoldArrays], budget: int = KEEP_BYTES
    ) -> None:
        self.make, self.budget = make, budget
        self.made = 0  # how many times a fold was made (tests and benchmarks read it)
        self._kept: OrderedDict[Key, FoldArrays] = OrderedDict()
        self._handles: dict[Key, LazyFold] = {}

    def fold(self, key: Key) -> FoldArrays:
        """A handle for the fold `key`: the same object every time, its rows read on use."""
        if key not in self._handles:
            self._handles[key] = LazyFold(self, key)
        return self._handles[key]

    def rows(self, key: Key) -> FoldArrays:
        """The fold's rows, kept or made now. Before a fold is made, the least recently
        used folds are let go until it fits in the budget beside the others (taken to be
        the size of the largest fold kept): the one just read is always kept."""
        if key in self._kept:
            self._kept.move_to_end(key)
            return self._kept[key]
        sizes = [fold_bytes(a) for a in self._kept.values()]
        while sizes and sum(sizes) + max(sizes) > self.budget:
            self._kept.popitem(last=False)
            sizes.pop(0)
        arrays = self.make(*key)
        self.made += 1
        self._kept[key] = arrays
        return arrays


class _Read:
    """One of a fold's arrays, read through the fold's cache whenever it is used."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, fold: LazyFold, owner: type | None = None) -> np.ndarray:
        rows: np.ndarray = getattr(fold.cache.rows(fold.key), self.name)
        return rows


class LazyFold(FoldArrays):
    """A fold's rows as `FoldArrays`, read through its cache at each use, so that a fold
    let go by the cache is not held by the members that name it."""

    cache: FoldCache
    key: Key
    x_train, y_train, x_val, y_val = _Read(), _Read(), _Read(), _Read()  # type: ignore[assignment]

    def __init__(self, cache: FoldCache, key: Key) -> None:  # no rows of its own
        object.__setattr__(self, "cache", cache)
        object.__setattr__(self, "key", key)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"LazyFold({self.key!r})"
