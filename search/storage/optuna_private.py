"""The private names of Optuna this package reads, each once, here: a study's storage and a
trial's storage id have no public accessor (tests/test_stores.py fails when Optuna renames
them). A study's id comes from the public `get_study_id_from_name`."""

from __future__ import annotations

from typing import Protocol

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes (Optuna keeps it as `Study._storage`)."""
    storage: BaseStorage = study._storage
    return storage


def trial_id(trial: optuna.Trial | FrozenTrial) -> int:
    """A trial's id in its storage (`_trial_id` on both `Trial` and `FrozenTrial`), which
    the storage's per-trial calls take."""
    return int(trial._trial_id)


class _Named(Protocol):
    @property
    def study_name(self) -> str: ...


def study_id(storage: BaseStorage, summary: _Named) -> int:
    """A listed study's id in its storage (`StudySummary` or what `get_all_studies` lists)."""
    return storage.get_study_id_from_name(summary.study_name)
