"""What every trial of a study shares (the space, the data without its test rows, the folds
and their preprocessed rows, the study's recorder, the progress hooks, the engine)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import optuna

from search.attrs import Trial
from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays, fold_arrays
from search.data.foldcache import KEEP_BYTES, FoldCache
from search.data.folds import Fold
from search.data.split import TestSplit
from search.engines.base import Engine
from search.engines.sequential import sequential_engine
from search.space.schema import Space
from search.tracking.parent import StudyRecorder


@dataclass
class SearchContext:
    """What every trial of a study shares; the test rows are not in it."""

    space: Space
    data: Dataset
    split: TestSplit
    folds: list[Fold]
    recorder: StudyRecorder  # the study's MLflow run: each trial's run starts there
    tags: dict[str, str]
    on_fold: Callable[[int, int], None] | None = None  # (fold index, folds) -> progress line
    on_pack: Callable[[list[int]], None] | None = None  # trial numbers -> progress line
    on_start: Callable[[optuna.Trial], None] | None = None  # a trial starts: its owner
    on_tick: Callable[[int], None] | None = None  # an epoch ended: the live line
    on_note: Callable[[str], None] | None = None  # a line worth saying once
    engine: Engine | None = None  # None: the sequential engine
    _folds: FoldCache | None = field(default=None, repr=False)

    def arrays(self, fold: Fold, max_tokens: int | None = None) -> FoldArrays:
        """A fold's preprocessed rows (per vocabulary size a trial asks for): made once and
        reused in every trial, within a memory budget of the larger of `KEEP_BYTES` and the
        data's own size (search.data.foldcache)."""
        if self._folds is None:
            self._folds = FoldCache(self._make, max(KEEP_BYTES, self.data.nbytes))
        return self._folds.fold((fold.index, max_tokens))

    def _make(self, index: int, max_tokens: int | None) -> FoldArrays:
        fold = next(f for f in self.folds if f.index == index)
        return fold_arrays(self.data, self.split.train, fold, max_tokens)

    def trial_engine(self) -> Engine:
        if self.engine is None:
            self.engine = sequential_engine(self.space)
        return self.engine


def origin(trial: optuna.Trial, sampler: str) -> str:
    """Where a trial's parameters came from: the space's center, a retry, or the sampler."""
    attrs = trial.user_attrs
    return "retry" if Trial.RETRY_OF in attrs else str(attrs.get(Trial.START, sampler))
