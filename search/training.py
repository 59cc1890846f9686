"""Training members: fold rows, one model fitted with early stopping, and the engine seam.

A *member* is one (trial, fold) pair: its parameters, seed and preprocessed rows. An
engine trains members and yields each one's result as soon as it has it; the objective,
selection and reproduce use engines and never call `fit` themselves.

- `SequentialEngine` fits one Keras model per member through `fit` (any model: the
  built-in MLP or a KerasTuner hypermodel).
- `search.pack.PackEngine` trains many members of the built-in MLP as one compiled JAX
  program.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import keras
import numpy as np

from search.data import Dataset, make_preprocessor
from search.errors import SpaceError, TrialFailed
from search.feed import fit_inputs, validation_inputs
from search.folds import Fold
from search.metrics import DATA_LOSS, keras_metrics, scores
from search.model import build_state, make_model, penalty, predict
from search.space import Space


@dataclass(frozen=True)
class FoldArrays:
    """A fold's rows, preprocessed with statistics of its training rows only."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class FoldResult:
    index: int
    scores: dict[str, float]
    best_epoch: int
    epochs: int
    history: dict[str, list[float]]
    fit_s: float = 0.0  # seconds inside Keras `fit` (the benchmark's overhead measure)
    build_s: float = 0.0  # seconds building, compiling and making the variables of the model


def fold_arrays(data: Dataset, rows: np.ndarray, fold: Fold) -> FoldArrays:
    """Fit the preprocessing on the fold's training rows only, then transform both parts."""
    X, y = data.X, data.y
    tr, va = rows[fold.train], rows[fold.val]
    pre = make_preprocessor(X).fit(X.iloc[tr])
    return FoldArrays(
        pre.transform(X.iloc[tr]).astype(np.float32),
        y[tr],
        pre.transform(X.iloc[va]).astype(np.float32),
        y[va],
    )


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

    A full collection walks every object the collector tracks: with TensorFlow, Keras and
    MLflow loaded, 0.39 s. What survives each collection (libraries, data, the state a
    first model leaves in Keras) is frozen into CPython's permanent generation, so the
    next one walks only what the last trial made: 138 -> 11 ms a trial over 60 trials,
    the same RSS at every trial (objects that die by reference counting still die).
    """
    gc.collect()
    gc.freeze()


_LIBRARIES_FROZEN = [False]


def freeze_libraries() -> None:
    """Before a process's first trial: freeze what exists (libraries, data) without a
    full collection first (0.4 s saved once per process; the little garbage imports
    leave stays). Once per process, whatever `backend.start` froze before MLflow and
    the data were loaded; later searches in the process rely on `collect_garbage`."""
    if not _LIBRARIES_FROZEN[0]:
        gc.freeze()
        _LIBRARIES_FROZEN[0] = True


STOP = threading.Event()  # set by a worker's signal handler: end the trial at the next epoch


class _StopOnRequest(keras.callbacks.Callback):  # type: ignore[misc]
    """Turn a stop request into KeyboardInterrupt at an epoch boundary (Ctrl-C on a pool)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt("stop requested")


class _ValidationDataLoss(keras.callbacks.Callback):  # type: ignore[misc]
    """Log `val_data_loss`: Keras' val_loss less the L1/L2 penalty of the current weights.

    Keras adds the penalty to val_loss, so a strongly regularized model looks worse than its
    predictions are, and one whose weights shrink looks better while its predictions get
    worse. The objective scores the predictions alone (log loss, MSE); early stopping, the
    restored epoch and the pruner follow the same number. Listed first, so that the
    callbacks after it and the history see the value.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is not None and "val_loss" in logs:
            logs[DATA_LOSS] = float(logs["val_loss"]) - penalty(self.model)


class ModelReuse:
    """One compiled model for all folds of a trial (or a candidate's recheck).

    Each fold still starts from a freshly built, freshly seeded model: its variables
    (weights, normalisation statistics, dropout RNG state) are copied into the held model
    and the optimizer's variables go back to their starting values. What is saved is the
    held model's traced (TensorFlow) or compiled (JAX) train and test steps: most of a
    fold's first epoch, 0.7 s on the default space (bench/overhead.py).
    """

    def __init__(self) -> None:
        self.model: keras.Model | None = None
        self._optimizer_start: list[np.ndarray] = []

    def take(self, fresh: keras.Model) -> keras.Model:
        held = self.model
        if held is None or not self._fits(held, fresh):
            fresh.optimizer.build(fresh.trainable_variables)
            self.model = fresh
            self._optimizer_start = [
                keras.ops.convert_to_numpy(v) for v in fresh.optimizer.variables
            ]
            return fresh
        for target, source in zip(held.variables, fresh.variables, strict=True):
            target.assign(source)
        for target, value in zip(held.optimizer.variables, self._optimizer_start, strict=True):
            target.assign(value)
        return held

    def _fits(self, held: keras.Model, fresh: keras.Model) -> bool:
        shapes = [(tuple(v.shape), v.dtype) for v in held.variables]
        return shapes == [(tuple(v.shape), v.dtype) for v in fresh.variables] and len(
            held.optimizer.variables
        ) == len(self._optimizer_start)


def fit_fold(
    params: dict[str, Any],
    arrays: FoldArrays,
    *,
    data: Dataset,
    seed: int,
    spe: int,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
    reuse: ModelReuse | None = None,
) -> tuple[keras.Model, FoldResult]:
    """Fit a freshly seeded model on a fold with early stopping on the validation loss of
    its predictions (`val_data_loss`); restore the best weights. With `reuse`, the fold's
    fresh model trains inside the held one."""
    keras.utils.set_random_seed(seed)
    build_started = time.perf_counter()
    model = make_model(
        params,
        n_features=arrays.x_train.shape[1],
        task=data.task,
        n_classes=data.n_classes,
        steps_per_execution=spe,
        metrics=keras_metrics(data.task),
    )
    if reuse is not None:
        model = reuse.take(model)
    build_state(model, arrays.x_train, arrays.y_train)
    build_s = time.perf_counter() - build_started
    stop = keras.callbacks.EarlyStopping(
        monitor=DATA_LOSS,
        mode="min",
        patience=int(params["patience"]),
        restore_best_weights=True,
    )
    train = fit_inputs(
        arrays.x_train, arrays.y_train, batch_size=int(params["batch_size"]), seed=seed
    )
    fit_started = time.perf_counter()
    fit = model.fit(
        **train,
        **validation_inputs(arrays.x_val, arrays.y_val),
        epochs=int(params["epochs"]),
        callbacks=[
            _ValidationDataLoss(),
            stop,
            keras.callbacks.TerminateOnNaN(),
            _StopOnRequest(),
            *(callbacks or []),
        ],
        verbose=verbose,
    )
    fit_s = time.perf_counter() - fit_started
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    losses = np.asarray(history.get("loss", []), dtype=float)
    if losses.size == 0 or not np.all(np.isfinite(losses)):
        bad = int(np.flatnonzero(~np.isfinite(losses))[0]) + 1 if losses.size else 0
        raise TrialFailed(
            f"training diverged: loss became NaN/inf at epoch {bad} "
            f"(learning_rate={params['learning_rate']:.3g})"
        )
    output = predict(model, arrays.x_val)
    if not np.all(np.isfinite(output)):
        raise TrialFailed("the model predicts NaN/inf on the validation rows")
    val = np.asarray(history[DATA_LOSS], dtype=float)
    best = int(np.nanargmin(val)) + 1 if np.isfinite(val).any() else len(val)
    result = FoldResult(
        index=-1,
        scores=scores(data.task, arrays.y_val, output),
        best_epoch=best,
        epochs=len(losses),
        history=history,
        fit_s=fit_s,
        build_s=build_s,
    )
    return model, result


# ---------------------------------------------------------------- the engine seam


@dataclass(frozen=True)
class Member:
    """One model to train: a trial's fold, with the trial's parameters and the fold's seed."""

    trial: int
    fold: int
    params: dict[str, Any]
    seed: int
    arrays: FoldArrays


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


class _EpochHookCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """An `EpochHook` as a Keras callback: stop training when it answers True."""

    def __init__(self, member: Member, hook: EpochHook) -> None:
        super().__init__()
        self.member, self.hook, self.pruned_at = member, hook, -1

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.hook(self.member, epoch, dict(logs or {})):
            self.pruned_at = epoch
            self.model.stop_training = True


@dataclass
class SequentialEngine:
    """One Keras model per member through `fit`; the members of one trial share a
    compiled model (`ModelReuse`)."""

    steps_per_execution: int = 16
    verbose: int = 0
    name: str = "sequential"

    def train(
        self, members: Sequence[Member], data: Dataset, on_epoch: EpochHook | None = None
    ) -> Iterator[Trained]:
        trials = {m.trial for m in members}
        reuse = {t: ModelReuse() for t in trials if sum(m.trial == t for m in members) > 1}
        try:
            for member in members:
                yield self._one(member, data, on_epoch, reuse.get(member.trial))
        finally:
            for held in reuse.values():
                held.model = None

    def _one(
        self, member: Member, data: Dataset, on_epoch: EpochHook | None, reuse: ModelReuse | None
    ) -> Trained:
        hook = [] if on_epoch is None else [_EpochHookCallback(member, on_epoch)]
        try:
            model, result = fit_fold(
                member.params,
                member.arrays,
                data=data,
                seed=member.seed,
                spe=self.steps_per_execution,
                callbacks=list(hook),
                verbose=self.verbose,
                reuse=reuse,
            )
        except Exception as exc:  # the trial fails with its reason; the study goes on
            return Trained(member, error=exc)
        result = dataclasses.replace(result, index=member.fold)
        pruned = hook[0].pruned_at if hook else -1
        return Trained(member, result=result, build=lambda: model, pruned_at=pruned)


def sequential_engine(space: Space) -> SequentialEngine:
    return SequentialEngine(steps_per_execution(space), space.training.verbose)


def make_engine(space: Space) -> Engine:
    """The engine the space's `training.engine` names (`auto`: the pack for the built-in
    MLP when JAX is installed)."""
    choice, sequential = space.training.engine, sequential_engine(space)
    has_jax = importlib.util.find_spec("jax") is not None
    if choice == "sequential" or (choice == "auto" and (space.model.hypermodel or not has_jax)):
        return sequential
    if not has_jax:
        raise SpaceError(
            "the pack engine needs JAX, which is not installed; run: pip install jax",
            file=space.path,
            key="training.engine",
        )
    if space.model.hypermodel:
        raise SpaceError(
            "the pack engine trains the built-in MLP only; a hypermodel needs "
            "engine: sequential (or auto)",
            file=space.path,
            key="training.engine",
        )
    from search.pack import PackEngine

    return PackEngine(fallback=sequential)
