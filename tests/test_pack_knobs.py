"""The course's training knobs in the pack engine: class weights, a learning-rate schedule
and early stopping's min_delta train a member as Keras' `fit` trains the same network."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from search.data.dataset import Dataset, load_dataset
from search.data.foldarrays import FoldArrays, fold_arrays
from search.data.folds import make_folds
from search.data.split import split_test
from search.data.target import target_scale
from search.engines.base import Member, StopRule
from search.engines.pack.engine import PackEngine
from search.engines.pack.members import _member_weights, _moving_stats, keras_model, unpad
from search.engines.pack.shape import Limits, group_shape, unpackable
from search.engines.sequential import _callbacks
from search.metrics import DATA_LOSS, keras_metrics
from search.models.build import keras_targets
from search.models.knobs import class_weights
from search.params import TrialParams
from search.space.schema import DataSpec, ValidationSpec
from tests.conftest import ROOT
from tests.test_pack import BASE as PACK_BASE

BASE: dict[str, Any] = PACK_BASE | {
    "depth": 2,
    "widths": [12, 7],
    "l2": 1e-3,
    "learning_rate": 0.02,
    "batch_size": 10_000,  # one batch an epoch: the rows' order does not matter
    "epochs": 10,
}
KNOBS = {
    "cosine, balanced, min_delta": {
        "schedule": "cosine",
        "class_weight": "balanced",
        "min_delta": 0.01,
    },
    "exponential, sgd": {
        "schedule": "exponential",
        "lr_decay": 0.7,
        "optimizer": "sgd",
        "momentum": 0.9,
        "learning_rate": 0.1,
    },
    "balanced, rmsprop": {"class_weight": "balanced", "optimizer": "rmsprop"},
}


def _fold(source: str) -> tuple[Dataset, FoldArrays]:
    spec = DataSpec(source=source)
    data = load_dataset(spec, base_dir=ROOT)
    rows = split_test(data, spec).train
    classification = data.task != "regression"
    folds = make_folds(ValidationSpec(folds=3), data.y[rows], classification=classification, seed=1)
    return data, fold_arrays(data, rows, folds[0])


def _keras_fit(member: Member, data: Dataset) -> tuple[keras.Model, dict[str, list[float]], int]:
    """The member's network with the pack's starting weights, trained by Keras' `fit` with
    the sequential engine's callbacks (its `val_data_loss`, ReduceLROnPlateau, early
    stopping on `val_data_loss` with the best weights restored) on a regression target
    standardized as that engine does; its history and the epoch early stopping restored."""
    shape, _ = group_shape([member], data, Limits())
    start = {k: v[None] for k, v in _member_weights(shape, member).items()}
    arrays, params = member.arrays, member.params
    codes = np.zeros(1, np.int64)  # no target to fold in: the head starts as the pack's
    model = keras_model(
        params, unpad(shape, params, start, _moving_stats(shape, 1), 0, codes), data
    )
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=keras_metrics(data.task))
    target = target_scale(params, arrays.y_train)
    y_train = keras_targets(model, arrays.y_train, data.n_classes)
    y_val = keras_targets(model, arrays.y_val, data.n_classes)
    if target is not None:
        y_train, y_val = target.forward(y_train), target.forward(y_val)
    callbacks = _callbacks(params, arrays, data, StopRule(), target, y_val)
    (stop,) = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    weights = class_weights(params, arrays.y_train, max(2, data.n_classes))
    history = model.fit(
        arrays.x_train,
        y_train,
        batch_size=len(arrays.y_train),
        epochs=params.epochs,
        validation_data=(arrays.x_val, y_val),
        class_weight=weights,
        callbacks=callbacks,
        shuffle=False,
        verbose=0,
    ).history
    if target is not None:
        target.fold_into(model)
    return model, history, stop.best_epoch + 1


@pytest.mark.parametrize("source", ["breast_cancer", "wine"])
@pytest.mark.parametrize("knobs", list(KNOBS), ids=list(KNOBS))
def test_a_member_with_the_courses_knobs_trains_as_keras_fit_does(source: str, knobs: str) -> None:
    data, arrays = _fold(source)
    params = BASE | KNOBS[knobs]
    assert unpackable(TrialParams.read(params)) is None
    member = Member(0, 0, TrialParams.read(params), 7, arrays)
    (packed,) = PackEngine(limits=Limits(width=16)).train([member], data)
    assert packed.result is not None and packed.build is not None, packed.error
    model, history, restored = _keras_fit(member, data)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", DATA_LOSS):
        assert packed.result.history[key] == pytest.approx(history[key], rel=2e-4, abs=1e-5), key
    assert packed.result.best_epoch == restored
    ours = np.asarray(packed.build()(arrays.x_val, training=False))
    assert ours == pytest.approx(np.asarray(model(arrays.x_val, training=False)), abs=1e-4)


def test_class_weights_and_schedules_change_the_training() -> None:
    """The knobs are not ignored: the same member without them ends elsewhere."""
    data, arrays = _fold("breast_cancer")
    plain = Member(0, 0, TrialParams.read(BASE), 7, arrays)
    knobbed = Member(1, 0, TrialParams.read(BASE | KNOBS["cosine, balanced, min_delta"]), 7, arrays)
    out = list(PackEngine(limits=Limits(width=16)).train([plain, knobbed], data))
    assert out[0].result is not None and out[1].result is not None
    assert out[0].result.history["loss"][0] != pytest.approx(out[1].result.history["loss"][0])
    assert out[0].result.history["loss"][-1] != pytest.approx(out[1].result.history["loss"][-1])


def test_min_delta_restores_the_last_epoch_better_by_that_much() -> None:
    """Keras' rule, for both engines: an improvement smaller than min_delta is no
    improvement, and its weights are not the ones restored."""
    values = [1.0, 0.5, 0.49, 0.3, 0.295, float("nan")]
    assert StopRule().best_epoch(values) == 5
    assert StopRule().best_epoch(values, min_delta=0.02) == 4
    assert StopRule().best_epoch(values, min_delta=0.3) == 2
    assert StopRule(key="val_accuracy", mode="max").best_epoch([0.5, 0.8, 0.81], 0.05) == 2


def test_per_layer_dropout_draws_each_layers_own_rate() -> None:
    """Per-layer rates equal to one rate draw the very masks that rate draws (which the
    engine battery's statistics row holds to Keras'), and another layer's rate changes
    the training: each layer drops at its own rate."""
    data, arrays = _fold("breast_cancer")
    plain = BASE | {"l2": 0.0, "batch_size": 32}
    knobs = [{"dropout": 0.3}, {"dropouts": [0.3, 0.3]}, {"dropouts": [0.3, 0.0]}]
    members = [Member(i, 0, TrialParams.read(plain | k), 7, arrays) for i, k in enumerate(knobs)]
    assert all(unpackable(m.params) is None for m in members)
    val = []
    for member in members:
        (trained,) = PackEngine(limits=Limits(width=16)).train([member], data)
        assert trained.result is not None, trained.error
        val.append(trained.result.history[DATA_LOSS])
    assert val[0] == val[1]
    assert val[0] != val[2]


MIXED = {
    "plain": {},
    "per-layer l2": {"l2s": [1e-2, 0.0]},
    "constants": {"beta_1": 0.8, "epsilon": 1e-4},
    "lion": {"optimizer": "lion", "learning_rate": 0.002, "weight_decay": 0.1},
    "activity": {"activity_l1": 1e-3},
    "bias": {"bias_l2": 1e-2},
    "reduce_lr": {"reduce_lr": 0.3, "reduce_lr_patience": 1, "learning_rate": 0.2},
    "hinge": {"loss": "hinge"},
    "focal": {"loss": "binary_focal_crossentropy", "optimizer": "nadam"},
}


def test_members_with_different_knobs_share_a_program_each_as_it_trains_alone() -> None:
    """One program computes every member's own knobs (its loss, optimizer, constants,
    penalties and plateau selected per member): each ends as it does in a pack of one."""
    data, arrays = _fold("breast_cancer")
    members = [
        Member(i, 0, TrialParams.read(BASE | knobs), 7, arrays)
        for i, knobs in enumerate(MIXED.values())
    ]
    together = list(PackEngine(limits=Limits(width=16)).train(members, data))
    assert len({t.notes["pack.width"] for t in together}) == 1
    for member, packed in zip(members, together, strict=True):
        (alone,) = PackEngine(limits=Limits(width=16)).train([member], data)
        assert packed.result is not None and alone.result is not None, packed.error
        for key in ("loss", "val_loss", DATA_LOSS):
            got, own = packed.result.history[key], alone.result.history[key]
            assert got == pytest.approx(own, rel=1e-5, abs=1e-7), (member.trial, key)
