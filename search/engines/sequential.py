"""The sequential engine: one Keras model per member, fitted with early stopping (or, for
a member with `epochs`, for exactly that many: `search.engines.exact`).

Any model trains here: the built-in MLP and a KerasTuner hypermodel alike. The members of
one trial share one compiled model (`ModelReuse`); each starts from freshly seeded
weights.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from search.data.dataset import Dataset
from search.data.foldarrays import FoldArrays
from search.data.target import TargetScale, target_scale
from search.engines.base import (
    EpochHook,
    FoldResult,
    Member,
    StopRule,
    Trained,
    steps_per_execution,
    stop_rule,
)
from search.engines.callbacks import (
    EpochHookCallback,
    EpochScore,
    StopOnRequest,
    ValidationDataLoss,
)
from search.engines.exact import train_exact
from search.engines.feed import fit_inputs, release, validation_inputs
from search.errors import TrialFailed
from search.metrics import keras_metrics, scores
from search.models.build import build_state, keras_targets, make_model
from search.models.forward import predict
from search.models.hypermodel import fit_with, own_fit_hypermodel
from search.models.knobs import class_weights, loss_power, lr_callbacks
from search.params import TrialParams
from search.space.schema import Space

LOSS = StopRule()


class ModelReuse:
    """One compiled model for all folds of a trial (or a candidate's recheck).

    Each fold still starts from a freshly built, freshly seeded model: its variables
    (weights, normalisation statistics, dropout RNG state) are copied into the held model
    and the optimizer's variables go back to their starting values. What is saved is the
    held model's traced (TensorFlow) or compiled (JAX) train and test steps: most of a
    fold's first epoch (bench/overhead.py).
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
    params: TrialParams,
    arrays: FoldArrays,
    *,
    data: Dataset,
    seed: int,
    spe: int,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
    reuse: ModelReuse | None = None,
    rule: StopRule = LOSS,
) -> tuple[keras.Model, FoldResult]:
    """Fit a freshly seeded model on a fold with early stopping on what `rule` names (the
    validation loss of its predictions, `val_data_loss`, by default); restore the best
    weights. With `reuse`, the fold's fresh model trains inside the held one."""
    build_started = time.perf_counter()
    model = _fresh_model(params, arrays, data, seed, spe, reuse)
    build_s = time.perf_counter() - build_started
    y_train = keras_targets(model, arrays.y_train, data.n_classes)
    y_val = keras_targets(model, arrays.y_val, data.n_classes)
    target = target_scale(params, arrays.y_train)
    if target is not None:
        y_train, y_val = target.forward(y_train), target.forward(y_val)
    fitted = _callbacks(params, arrays, data, rule, target, y_val) + list(callbacks or [])
    run = {"epochs": params.epochs, "callbacks": fitted, "verbose": verbose}
    fit_started = time.perf_counter()
    fit = _fit(model, params, arrays, data, (y_train, y_val), seed, run)
    fit_s = time.perf_counter() - fit_started
    if target is not None:
        target.fold_into(model)
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    result = _scored(model, params, arrays, data, history, rule)
    return model, dataclasses.replace(result, fit_s=fit_s, build_s=build_s)


def _fit(
    model: keras.Model,
    params: TrialParams,
    arrays: FoldArrays,
    data: Dataset,
    targets: tuple[np.ndarray, np.ndarray],
    seed: int,
    run: dict[str, Any],
) -> Any:
    """Keras' `fit` on the fold (with class weights), or a KerasTuner HyperModel's own
    `fit` given the rows and our validation data and callbacks; its History."""
    y_train, y_val = targets
    hypermodel = own_fit_hypermodel(params)
    if hypermodel is not None:  # KerasTuner's way: its fit gets the rows and ours
        validation = (arrays.x_val, y_val)
        return fit_with(
            hypermodel,
            params,
            model,
            x=arrays.x_train,
            y=y_train,
            validation_data=validation,
            **run,
        )
    train = fit_inputs(arrays.x_train, y_train, batch_size=params.batch_size, seed=seed)
    val = validation_inputs(arrays.x_val, y_val)
    weights = class_weights(params, arrays.y_train, data.n_classes)
    try:
        return model.fit(**train, **val, class_weight=weights, **run)
    finally:
        release(train, val)


def _callbacks(
    params: TrialParams,
    arrays: FoldArrays,
    data: Dataset,
    rule: StopRule,
    target: TargetScale | None,
    y_val: np.ndarray,
) -> list[keras.callbacks.Callback]:
    """In order: the epoch's values in the target's units and the objective scored (the
    callbacks after them see both), the learning rate's knobs, early stopping on `rule`
    with the best weights restored, and the stops on NaN and on request."""
    stop = keras.callbacks.EarlyStopping(
        monitor=rule.key,
        mode=rule.mode,
        patience=params.patience,
        min_delta=params.min_delta,
        restore_best_weights=True,
    )
    rows = None  # `y_val`: the validation targets as the model trains on them
    if params.activity_l1 or params.activity_l2:  # a penalty on the outputs
        rows = (arrays.x_val, y_val)
    return [
        ValidationDataLoss(target, loss_power(params), rows),
        *([EpochScore(rule.scored, data.task, arrays, target)] if rule.scored else []),
        *lr_callbacks(params, monitor=rule.key, mode=rule.mode),
        stop,
        keras.callbacks.TerminateOnNaN(),
        StopOnRequest(),
    ]


def _fresh_model(
    params: TrialParams,
    arrays: FoldArrays,
    data: Dataset,
    seed: int,
    spe: int,
    reuse: ModelReuse | None,
) -> keras.Model:
    """The fold's freshly seeded model (inside the held one with `reuse`), its optimizer's
    and metrics' variables made."""
    keras.utils.set_random_seed(seed)
    model = make_model(
        params,
        n_features=arrays.x_train.shape[1:],
        task=data.task,
        n_classes=data.n_classes,
        steps_per_execution=spe,
        metrics=keras_metrics(data.task),
    )
    if reuse is not None:
        model = reuse.take(model)
    build_state(model, arrays.x_train, keras_targets(model, arrays.y_train, data.n_classes))
    return model


def _scored(
    model: keras.Model,
    params: TrialParams,
    arrays: FoldArrays,
    data: Dataset,
    history: dict[str, list[float]],
    rule: StopRule,
) -> FoldResult:
    """The restored model's scores on the validation rows; TrialFailed if it diverged."""
    losses = np.asarray(history.get("loss", []), dtype=float)
    if losses.size == 0 or not np.all(np.isfinite(losses)):
        bad = int(np.flatnonzero(~np.isfinite(losses))[0]) + 1 if losses.size else 0
        rate = (
            "" if params.hypermodel_compiles else (f" (learning_rate={params.learning_rate:.3g})")
        )
        raise TrialFailed(f"training diverged: loss became NaN/inf at epoch {bad}{rate}")
    output = predict(model, arrays.x_val)
    if not np.all(np.isfinite(output)):
        raise TrialFailed("the model predicts NaN/inf on the validation rows")
    return FoldResult(
        index=-1,
        scores=scores(data.task, arrays.y_val, output),
        best_epoch=rule.best_epoch(history[rule.key], params.min_delta),
        epochs=len(losses),
        history=history,
    )


@dataclass
class SequentialEngine:
    """One Keras model per member through `fit`; the members of one trial share a
    compiled model (`ModelReuse`)."""

    steps_per_execution: int = 16
    verbose: int = 0
    rule: StopRule = LOSS
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
        hook = [] if on_epoch is None else [EpochHookCallback(member, on_epoch)]
        try:
            if member.epochs is not None:  # the refit: every row, a fixed number of epochs
                return train_exact(member, data, self.steps_per_execution, on_epoch)
            model, result = fit_fold(
                member.params,
                member.arrays,
                data=data,
                seed=member.seed,
                spe=self.steps_per_execution,
                callbacks=list(hook),
                verbose=self.verbose,
                reuse=reuse,
                rule=self.rule,
            )
        except Exception as exc:  # the trial fails with its reason; the study goes on
            return Trained(member, error=exc)
        result = dataclasses.replace(result, index=member.fold)
        pruned = hook[0].pruned_at if hook else -1
        return Trained(member, result=result, build=lambda: model, pruned_at=pruned)


def sequential_engine(space: Space) -> SequentialEngine:
    return SequentialEngine(steps_per_execution(space), space.training.verbose, stop_rule(space))
