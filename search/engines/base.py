"""The engine seam: members in, trained members out; and what every engine shares.

A *member* is one (trial, fold) pair: its parameters, seed and preprocessed rows. An
engine trains members and yields each one's result as soon as it has it; the objective
and selection's recheck hand members to an engine and never call `fit` themselves.

- `search.engines.sequential.SequentialEngine` fits one Keras model per member through
  `fit` (any model: the built-in MLP or a KerasTuner hypermodel).
- `search.engines.pack.engine.PackEngine` trains many members of the built-in MLP as one
  compiled JAX program.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import keras
import numpy as np

from search import interrupt
from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays
from search.metrics import DATA_LOSS, EPOCH_KEYS, SCORED_EACH_EPOCH
from search.names import METRICS
from search.params import TrialParams
from search.space.schema import Space


@dataclass(frozen=True)
class FoldResult:
    index: int
    scores: dict[str, float]
    best_epoch: int
    epochs: int
    history: dict[str, list[float]]
    fit_s: float = 0.0  # seconds inside Keras `fit` (the benchmark's overhead measure)
    build_s: float = 0.0  # seconds building, compiling and making the variables of the model


@dataclass(frozen=True)
class StopRule:
    """What early stopping, the restored epoch and the best epoch follow: a per-epoch log
    key and its better direction; `scored` is the objective metric the sequential engine
    scores on the validation rows after each epoch (one Keras does not log), or ""."""

    key: str = DATA_LOSS
    mode: str = "min"
    scored: str = ""

    def best_epoch(self, values: Sequence[float], min_delta: float = 0.0) -> int:
        """The 1-based epoch whose weights early stopping restores: the first with the best
        finite value or, with a `min_delta`, the last that beat the best before it by more
        than that (Keras' EarlyStopping); the last epoch if no value is finite."""
        v = np.asarray(values, dtype=float)
        if not np.isfinite(v).any():
            return len(v)
        if min_delta > 0:
            signed = -v if self.mode == "max" else v
            best, at = math.inf, 0
            for epoch, value in enumerate(signed):
                if math.isfinite(value) and value + min_delta < best:
                    best, at = value, epoch
            return at + 1
        return int(np.nanargmax(v) if self.mode == "max" else np.nanargmin(v)) + 1


def stop_rule(space: Space) -> StopRule:
    metric = space.objective.metric
    scored = metric if metric in SCORED_EACH_EPOCH else ""
    key = EPOCH_KEYS.get(metric, DATA_LOSS)
    if space.objective.early_stopping == "loss" or key == DATA_LOSS:
        return StopRule(DATA_LOSS, "min", scored)
    return StopRule(key, "max" if METRICS[metric] == "maximize" else "min", scored)


def trial_seed(study_seed: int, number: int) -> int:
    return (study_seed * 100_003 + number) % (2**31 - 1)


def steps_per_execution(space: Space) -> int:
    value = space.training.steps_per_execution
    return 16 if value == "auto" else int(value)


def precision(space: Space) -> str:
    """The Keras dtype policy of the space's models.

    `auto` is float32: on an H100, mixed_bfloat16 made MLPs up to 3 x 1024 units 7-14%
    slower per epoch (bench/gpu.py); it pays off for wider or convolutional models, where
    the space file can ask for it.
    """
    value = space.training.precision
    return "float32" if value == "auto" else value


def collect_garbage() -> None:
    """Free the previous trial's models (TensorFlow keeps them in reference cycles).

    A full collection walks every object the collector tracks, TensorFlow's, Keras' and
    MLflow's included. What survives each collection (libraries, data, the state a first
    model leaves in Keras) is frozen into CPython's permanent generation, so the next one
    walks only what the last trial made, with the same RSS at every trial (objects that
    die by reference counting still die). Figures: bench/RESULTS.md.
    """
    gc.collect()
    gc.freeze()


_LIBRARIES_FROZEN = [False]


def freeze_libraries() -> None:
    """Before a process's first trial: freeze what exists (libraries, data) without a
    full collection first (the little garbage imports leave stays). Once per process,
    whatever `backend.start` froze before MLflow and the data were loaded; later searches
    in the process rely on `collect_garbage`."""
    if not _LIBRARIES_FROZEN[0]:
        gc.freeze()
        _LIBRARIES_FROZEN[0] = True


STOP = interrupt.STOP  # set by a worker's signal handler: end the trial at the next epoch


# ---------------------------------------------------------------- the engine seam


@dataclass(frozen=True)
class Member:
    """One model to train: a trial's fold, with the trial's parameters and the fold's seed.

    With `epochs`, the member trains exactly that many epochs on its training rows and
    stops on nothing (the refit on every training row: no validation rows are left); its
    result has no scores.
    """

    trial: int
    fold: int
    params: TrialParams
    seed: int
    arrays: FoldArrays
    epochs: int | None = None


# Called after each epoch of a member with that epoch's logs (`loss`, `val_loss`,
# `val_data_loss`, ...); answering True stops that member there (the pruner's decision).
EpochHook = Callable[[Member, int, dict[str, float]], bool]


@dataclass
class Trained:
    """What an engine hands back for one member: its result, or why it has none.

    `build()` gives a Keras model with the restored (best) weights, made from the member's
    parameters alone whatever the engine; `pruned_at` is the epoch at which the hook
    stopped it (-1: not stopped); `notes` what the engine records about how it trained
    (kept on the Optuna trial); `pack` what a pack engine needs to train the member's
    whole pack again, number for number (logged as the trial's `pack.json`).
    """

    member: Member
    result: FoldResult | None = None
    build: Callable[[], keras.Model] | None = None
    pruned_at: int = -1
    error: Exception | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    pack: dict[str, Any] | None = None


class Engine(Protocol):
    """Trains members; yields each `Trained` as soon as it is done, in the order given.

    A consumer may stop iterating at any time (a trial pruned between folds): the members
    not yet yielded are then not trained, or their work is dropped.
    """

    name: str

    def train(
        self, members: Sequence[Member], data: Dataset, on_epoch: EpochHook | None = None
    ) -> Iterator[Trained]: ...
