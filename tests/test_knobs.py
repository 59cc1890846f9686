"""The course's knobs (issue 22): optimizers as Keras defines them, the loss, class weights,
learning-rate schedules and plateaus, early stopping's min_delta, the task inference
note. Each: its schema, the model built as asked, the value logged, its effect."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from search import run_search
from search.data.dataset import Dataset, load_dataset
from search.data.foldarrays import FoldArrays, fold_arrays
from search.data.folds import make_folds
from search.data.split import split_test
from search.engines.base import Member
from search.engines.pack.engine import PackEngine
from search.engines.pack.shape import Limits, unpackable
from search.engines.sequential import fit_fold
from search.models.build import build_model, keras_targets, make_optimizer
from search.models.knobs import class_weights
from search.params import TrialParams
from search.prepare import prepare
from search.space.file import load_space
from search.space.sampling import suggest
from search.space.schema import DataSpec, Params, ValidationSpec
from tests.conftest import ROOT, run_cli

BASE: dict[str, Any] = {
    "widths": [8],
    "activation": "relu",
    "dropout": 0.0,
    "l1": 0.0,
    "l2": 0.0,
    "batch_norm": False,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "batch_size": 32,
    "epochs": 8,
    "patience": 100,
    "precision": "float32",
}


@pytest.mark.parametrize(
    ("params", "kind", "config"),
    [
        ({"optimizer": "sgd"}, "SGD", {"momentum": 0.0, "nesterov": False}),  # Keras' own
        ({"optimizer": "sgd", "momentum": 0.9, "nesterov": True}, "SGD", {"nesterov": True}),
        ({"optimizer": "rmsprop"}, "RMSprop", {"momentum": 0.0}),
        ({"optimizer": "adam", "beta_1": 0.8, "beta_2": 0.99}, "Adam", {"beta_1": 0.8}),
        ({"optimizer": "amsgrad", "epsilon": 1e-5}, "Adam", {"amsgrad": True, "epsilon": 1e-5}),
        ({"optimizer": "adadelta"}, "Adadelta", {}),
        ({"optimizer": "ftrl"}, "Ftrl", {}),
        ({"optimizer": "adam"}, "Adam", {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    ],
)
def test_optimizers_are_keras_own_with_its_defaults(
    params: dict[str, Any], kind: str, config: dict[str, Any]
) -> None:
    optimizer = make_optimizer(TrialParams.read({"learning_rate": 0.01, **params}))
    assert type(optimizer).__name__ == kind
    got = optimizer.get_config()
    for key, value in config.items():
        assert got[key] == pytest.approx(value), key


def _suggested(text: str) -> dict[str, Any]:
    import yaml

    params = Params.model_validate(yaml.safe_load(text))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return suggest(params, study.ask()).record()


def test_only_the_knobs_that_apply_are_a_trials_parameters() -> None:
    plain = _suggested("optimizer: adam")
    for knob in ("momentum", "nesterov", "beta_1", "loss", "class_weight", "schedule", "min_delta"):
        assert knob not in plain  # defaults: not listed, Keras' values used
    sgd = _suggested("optimizer: sgd\nschedule: exponential\nlr_decay: 0.9\nmin_delta: 0.001")
    assert sgd["momentum"] == 0.0 and sgd["nesterov"] is False  # the values used, shown
    assert sgd["schedule"] == "exponential" and sgd["lr_decay"] == 0.9
    assert sgd["min_delta"] == 0.001
    assert "lr_decay" not in _suggested("schedule: cosine\nlr_decay: 0.9")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("class_weight: balance", "unknown class_weight 'balance'; did you mean `balanced`?"),
        ("schedule: {low: 0, high: 1}", "schedule must be a name or a choice of names"),
        ("nesterov: 1", "nesterov must be true/false"),
        ("beta_1: 1.0", "beta_1 must lie in [0, 1)"),
        ("epsilon: 0", "epsilon must be > 0"),
        ("optimizer: adamm", "did you mean `adam`?"),
        ("loss: mae", "loss 'mae' does not fit a binary task"),
        ("class_weight: balanced\n", None),
        ("schedule: cosine\n  reduce_lr: 0.5", "use one of schedule and reduce_lr"),
    ],
)
def test_a_bad_knob_is_one_line_and_exit_2(
    tmp_path: Path, params: str, message: str | None
) -> None:
    (tmp_path / "s.yaml").write_text(
        f"study: {{name: k, trials: 1}}\ndata: {{source: breast_cancer}}\nparams:\n  {params}\n"
    )
    if message is None:  # a good one: accepted
        prepare(load_space(tmp_path / "s.yaml"))
        return
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = [x for x in out.stderr.splitlines() if x.startswith("error")]
    assert len(lines) == 1 and message in lines[0], out.stderr
    assert re.search(r"s\.yaml:[45]: params\.\w+: ", lines[0]), lines[0]  # file, line, key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def test_class_weight_on_a_regression_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        "data: {source: diabetes}\nparams:\n  class_weight: {choices: [none, balanced]}\n"
    )
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2 and "a regression has none" in out.stderr


def _imbalanced() -> tuple[Dataset, FoldArrays]:
    """breast_cancer with the malignant class cut to about 6% of the rows."""
    spec = DataSpec(source="breast_cancer")
    data = load_dataset(spec, base_dir=ROOT)
    keep = np.flatnonzero(data.y == 1)
    rare = np.flatnonzero(data.y == 0)[:22]
    rows = np.sort(np.concatenate([keep, rare]))
    fold = make_folds(ValidationSpec(scheme="holdout"), data.y[rows], classification=True, seed=0)
    return data, fold_arrays(data, rows, fold[0])


def test_balanced_weights_follow_the_training_rows_and_lift_the_rare_class() -> None:
    data, arrays = _imbalanced()
    weights = class_weights(TrialParams.read({"class_weight": "balanced"}), arrays.y_train, 2)
    assert weights is not None
    counts = np.bincount(arrays.y_train)
    assert weights[0] * counts[0] == pytest.approx(weights[1] * counts[1])  # equal totals
    assert class_weights(TrialParams.read({}), arrays.y_train, 2) is None
    rare = arrays.x_val[arrays.y_val == 0]
    mean_rare: dict[str, float] = {}
    for weight in ("none", "balanced"):
        model, _ = fit_fold(
            TrialParams.read(BASE | {"class_weight": weight}),
            arrays,
            data=data,
            seed=1,
            spe=1,
        )
        mean_rare[weight] = float(np.mean(np.asarray(model(rare, training=False))))
    # P(benign) on the rare (malignant) rows falls when their class weighs more
    assert mean_rare["balanced"] < mean_rare["none"]


def _regression() -> tuple[Dataset, FoldArrays]:
    spec = DataSpec(source="diabetes")
    data = load_dataset(spec, base_dir=ROOT)
    rows = split_test(data, spec).train
    fold = make_folds(ValidationSpec(scheme="holdout"), data.y[rows], classification=False, seed=0)
    return data, fold_arrays(data, rows, fold[0])


def test_schedules_set_the_learning_rate_each_epoch() -> None:
    data, arrays = _regression()
    _, cosine = fit_fold(
        TrialParams.read(BASE | {"schedule": "cosine"}), arrays, data=data, seed=1, spe=1
    )
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 8)) for e in range(8)]
    assert cosine.history["learning_rate"] == pytest.approx(expected, rel=1e-5)
    params = BASE | {"schedule": "exponential", "lr_decay": 0.5}
    _, decay = fit_fold(TrialParams.read(params), arrays, data=data, seed=1, spe=1)
    assert decay.history["learning_rate"] == pytest.approx([0.01 * 0.5**e for e in range(8)])


def test_plateaus_cut_the_rate_and_min_delta_stops_sooner() -> None:
    data, arrays = _regression()
    params = BASE | {"reduce_lr": 0.5, "reduce_lr_patience": 0, "epochs": 12, "learning_rate": 0.5}
    _, plateau = fit_fold(TrialParams.read(params), arrays, data=data, seed=1, spe=1)
    rates = plateau.history["learning_rate"]
    assert rates[0] == pytest.approx(0.5) and min(rates) < 0.5  # cut after a worse epoch
    strict = BASE | {"epochs": 40, "patience": 2, "min_delta": 1e9}
    _, stopped = fit_fold(TrialParams.read(strict), arrays, data=data, seed=1, spe=1)
    assert stopped.epochs == 3  # no epoch improves by a billion: stopped at patience + 1


@pytest.mark.parametrize(
    ("task", "loss"),
    [("binary", "hinge"), ("regression", "mae"), ("multiclass", "categorical_hinge")],
)
def test_the_loss_is_compiled_as_asked_and_its_labels_follow(task: str, loss: str) -> None:
    model = build_model(
        TrialParams.read({**BASE, "loss": loss}),
        n_features=3,
        task=task,
        n_classes=3 if task == "multiclass" else 0,
    )
    assert model.loss == loss
    y = np.array([0, 2, 1])
    expected_shape = (3, 3) if loss == "categorical_hinge" else (3,)
    assert keras_targets(model, y, 3 if task == "multiclass" else 0).shape == expected_shape


def test_the_pack_trains_what_it_can_express_and_leaves_the_rest(tmp_path: Path) -> None:
    for knob in (  # the pack carries these (tests/test_pack_knobs.py: as Keras' fit trains)
        {"optimizer": "sgd", "momentum": 0.9, "nesterov": True},
        {"class_weight": "balanced"},
        {"schedule": "cosine"},
        {"schedule": "exponential", "lr_decay": 0.9},
        {"min_delta": 0.01},
        {"loss": "hinge"},
        {"beta_1": 0.8},
        {"reduce_lr": 0.5},
    ):
        assert unpackable(TrialParams.read(BASE | knob)) is None, knob
    for knob in (
        {"optimizer": "amsgrad"},
        {"precision": "mixed_float16"},
    ):
        assert unpackable(TrialParams.read(BASE | knob)) is not None, knob
    data, arrays = _imbalanced()
    members = [
        Member(
            0,
            0,
            TrialParams.read(BASE | {"optimizer": "sgd", "momentum": 0.9}),
            3,
            arrays,
        ),
        Member(1, 0, TrialParams.read(BASE | {"optimizer": "amsgrad"}), 3, arrays),
    ]
    done = list(PackEngine(limits=Limits()).train(members, data))
    assert done[0].pack is not None and done[1].pack is None  # the second trained alone
    assert all(t.result is not None for t in done)


@pytest.mark.parametrize("nesterov", [False, True])
def test_the_packs_sgd_steps_as_keras_sgd(nesterov: bool) -> None:
    from search.engines.pack.optimizers import _leaf

    w, g, m = np.array([1.0, 2.0]), np.array([0.5, -0.25]), np.array([0.1, 0.2])
    h = {"learning_rate": 0.1, "momentum": 0.9, "nesterov": float(nesterov)}
    w2, m2, _ = _leaf("sgd", h, {"t": 1.0}, w, g, m, np.zeros(2))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov)
    variable = keras.Variable(w.astype("float32"))
    optimizer.build([variable])
    optimizer.momentums[0].assign(m.astype("float32"))
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(g.astype("float32")), variable)])
    np.testing.assert_allclose(np.asarray(w2), keras.ops.convert_to_numpy(variable), rtol=1e-6)
    momentum = keras.ops.convert_to_numpy(optimizer.momentums[0])
    np.testing.assert_allclose(np.asarray(m2), momentum, rtol=1e-6)


def test_knobs_are_logged_and_the_task_inference_is_said(tmp_path: Path) -> None:
    """A whole-number target with many values is taken for classes, as the course teaches,
    in one line that gives the other reading's fix; the knobs a trial used are its MLflow
    parameters."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=480), "b": rng.normal(size=480)})
    frame["topic"] = rng.integers(0, 24, size=480)
    frame.to_csv(tmp_path / "topics.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        "study: {name: t, trials: 1, sampler: random, pruner: none}\n"
        "data: {source: topics.csv, target: topic}\nvalidation: {scheme: holdout}\n"
        "params: {depth: 1, width: 4, epochs: 2, loss: categorical_hinge, schedule: cosine,\n"
        "         min_delta: 0.001}\ntraining: {engine: sequential}\n"
    )
    said = io.StringIO()
    result = run_search(tmp_path / "s.yaml", home=tmp_path / "m", stream=said)
    note = [x for x in said.getvalue().splitlines() if x.startswith("target 'topic'")]
    assert len(note) == 1 and "set data.task: regression" in note[0]
    mlflow.set_tracking_uri(result.tracking_uri)
    trial_run = mlflow.search_runs(
        [mlflow.get_run(result.parent_run_id).info.experiment_id],
        filter_string="tags.`search.role` = 'trial'",
        output_format="list",
    )[0]
    params = trial_run.data.params
    assert params["loss"] == "categorical_hinge" and params["schedule"] == "cosine"
    assert params["min_delta"] == "0.001"


def test_per_layer_dropout_and_regularization_and_bias_penalties() -> None:
    params = _suggested(
        "depth: 3\ndropout: {low: 0.0, high: 0.5, per_layer: true}\n"
        "l2: {low: 1.0e-5, high: 1.0e-2, log: true, per_layer: true}\nbias_l2: 0.01\n"
    )
    assert len(params["dropouts"]) == len(params["l2s"]) == 3 and "dropout" not in params
    assert len(set(params["dropouts"])) == 3  # one draw per layer
    model = build_model(
        TrialParams.read(params | {"precision": "float32"}), n_features=4, task="binary"
    )
    rates = [model.get_layer(f"dropout_{i}").rate for i in range(3)]
    assert rates == pytest.approx(params["dropouts"])
    for i in range(3):
        dense = model.get_layer(f"dense_{i}")
        assert float(dense.kernel_regularizer.l2) == pytest.approx(params["l2s"][i])
        assert float(dense.bias_regularizer.l2) == pytest.approx(0.01)
    from search.models.forward import penalty
    from search.records import flat_params

    for i in range(3):
        model.get_layer(f"dense_{i}").bias.assign(np.ones(model.get_layer(f"dense_{i}").units))
    kernels = sum(
        params["l2s"][i] * float(np.square(model.get_layer(f"dense_{i}").kernel).sum())
        for i in range(3)
    )
    biases = 0.01 * sum(model.get_layer(f"dense_{i}").units for i in range(3))
    assert penalty(model) == pytest.approx(kernels + biases, rel=1e-5)
    flat = flat_params(TrialParams.read(params))
    assert {"dropout_0", "dropout_2", "l2_1"} <= set(flat) and "dropouts" not in flat
    assert unpackable(TrialParams.read(params)) is None  # the pack carries them too


def _parts(tmp_path: Path) -> tuple[pd.DataFrame, ...]:
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "label"})
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, val, test = frame.iloc[:300], frame.iloc[300:420], frame.iloc[420:]
    train.to_csv(tmp_path / "train.csv", index=False)
    val.to_csv(tmp_path / "val.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return train, val, test


def test_given_validation_and_test_rows_are_used_as_given(tmp_path: Path) -> None:
    """The test split is the test file's rows and the one fold validates on the
    validation file's rows; both recorded; the selection refits on train + validation."""
    train, val, test = _parts(tmp_path)
    (tmp_path / "s.yaml").write_text(
        "study: {name: given, trials: 1, sampler: random, pruner: none}\n"
        "data: {source: train.csv, target: label, test_source: test.csv}\n"
        "validation: {scheme: given, source: val.csv}\n"
        "params: {depth: 1, width: 4, epochs: 2}\ntraining: {engine: sequential}\n"
        "selection: {top_k: 1, recheck_folds: 2}\n"
    )
    prep = prepare(load_space(tmp_path / "s.yaml"))
    assert len(prep.split.test) == len(test) and len(prep.split.train) == len(train) + len(val)
    (fold,) = prep.folds
    assert len(fold.val) == len(val) and len(fold.train) == len(train)
    x_test = prep.data.X.iloc[prep.split.test].reset_index(drop=True)
    expected = test.drop(columns=["label"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(x_test, expected, check_dtype=False)
    x_val = prep.data.X.iloc[prep.split.train[fold.val]].reset_index(drop=True)
    pd.testing.assert_frame_equal(x_val, val.drop(columns=["label"]).reset_index(drop=True))
    result = run_search(tmp_path / "s.yaml", home=tmp_path / "m", progress=False, quiet=True)
    mlflow.set_tracking_uri(result.tracking_uri)
    params = mlflow.get_run(result.parent_run_id).data.params
    assert params["test.source"] == "test.csv" and params["validation.scheme"] == "given"
    assert params["test.rows"] == str(len(test))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("validation: {scheme: given}", "need both `scheme: given` and `source: FILE`"),
        ("validation: {source: val.csv}", "need both `scheme: given` and `source: FILE`"),
        ("data: {source: train.csv, target: label, test_source: nope.csv}", "no such data file"),
        ("data: {source: train.csv, target: label, test_source: odd.csv}", "extra ['odd']"),
    ],
)
def test_given_parts_that_do_not_fit_are_refused(tmp_path: Path, text: str, message: str) -> None:
    _, _, test = _parts(tmp_path)
    test.assign(odd=1).to_csv(tmp_path / "odd.csv", index=False)
    if not text.startswith("data:"):
        text = "data: {source: train.csv, target: label}\n" + text
    (tmp_path / "s.yaml").write_text(text + "\n")
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (tmp_path / "store").exists()


def test_an_activity_penalty_is_left_out_of_the_validation_data_loss() -> None:
    """Keras adds an activity regularizer's penalty (on each batch's outputs) to val_loss;
    val_data_loss is then the loss of the predictions alone, computed from them: at the
    restored epoch it equals the fold's MSE of the restored model."""
    data, arrays = _regression()
    params = BASE | {"activity_l2": 0.05, "l2": 0.01}
    model, result = fit_fold(TrialParams.read(params), arrays, data=data, seed=1, spe=1)
    assert float(model.get_layer("dense_0").activity_regularizer.l2) == pytest.approx(0.05)
    best = result.best_epoch - 1
    assert result.history["val_data_loss"][best] == pytest.approx(result.scores["mse"], rel=1e-3)
    standardized = result.history["val_data_loss"][best] / float(np.std(arrays.y_train)) ** 2
    assert result.history["val_loss"][best] > standardized + 1e-4  # Keras': with penalties
    assert unpackable(TrialParams.read(params)) is None  # the pack carries it too
