"""A member trained for exactly its `epochs` on every row it has, stopping on nothing: the
refit of the chosen parameters on all training rows, in the sequential engine."""

from __future__ import annotations

import time
from typing import Any

import keras

from search.data.dataset import Dataset
from search.data.target import target_scale
from search.engines.base import EpochHook, FoldResult, Member, Trained
from search.engines.callbacks import EpochHookCallback
from search.engines.feed import fit_inputs, release
from search.models.build import build_state, keras_targets, make_model
from search.models.hypermodel import fit_with, own_fit_hypermodel
from search.models.knobs import class_weights, lr_callbacks
from search.params import TrialParams


def train_exact(member: Member, data: Dataset, spe: int, on_epoch: EpochHook | None) -> Trained:
    """The member's model, freshly seeded, after exactly `member.epochs` epochs with the
    trial's learning-rate schedule (a plateau needs validation rows: none here)."""
    assert member.epochs is not None
    params, x, labels = member.params, member.arrays.x_train, member.arrays.y_train
    started = time.perf_counter()
    keras.utils.set_random_seed(member.seed)
    net = make_model(
        params, n_features=x.shape[1:], task=data.task, n_classes=data.n_classes,
        steps_per_execution=spe,
    )  # fmt: skip
    y = keras_targets(net, labels, data.n_classes)
    build_state(net, x, y)
    target = target_scale(params, y)
    if target is not None:  # standardized on the rows it trains on (search.data.target)
        y = target.forward(y)
    hook = [] if on_epoch is None else [EpochHookCallback(member, on_epoch)]
    run = {"epochs": member.epochs, "verbose": 0, "callbacks": [*hook, *lr_callbacks(params)]}
    fit_started = time.perf_counter()
    history = _fit(net, params, y, member, data, run)
    if target is not None:
        target.fold_into(net)
    result = FoldResult(
        index=member.fold,
        scores={},
        best_epoch=member.epochs,
        epochs=member.epochs,
        history={k: [float(v) for v in vals] for k, vals in history.items()},
        fit_s=time.perf_counter() - fit_started,
        build_s=fit_started - started,
    )
    return Trained(member, result=result, build=lambda: net)


def _fit(
    net: keras.Model,
    params: TrialParams,
    y: Any,
    member: Member,
    data: Dataset,
    run: dict[str, Any],
) -> dict[str, list[float]]:
    """Keras' `fit` on every row (with class weights), or a KerasTuner HyperModel's own."""
    x = member.arrays.x_train
    hypermodel = own_fit_hypermodel(params)
    if hypermodel is not None:  # a KerasTuner HyperModel trains with its own fit
        fitted = fit_with(hypermodel, params, net, x=x, y=y, **run)
        return dict(getattr(fitted, "history", {}) or {})
    weights = class_weights(params, member.arrays.y_train, data.n_classes)
    train = fit_inputs(x, y, batch_size=params.batch_size, seed=member.seed)
    try:
        return dict(net.fit(**train, class_weight=weights, **run).history)
    finally:
        release(train)
