"""A KerasTuner `build_model(TrialParams.read(hp))`, unchanged, driven by Optuna under the service."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.errors import SpaceError
from search.models.hypermodel import OptunaHyperParameters, build, load_hypermodel
from search.prepare import prepare
from search.runner import run_search
from search.selection.selector import select
from search.space.file import load_space
from search.study import load_study
from search.tracking import ROLE
from tests.conftest import run_cli

BUILD = """
import keras


def build_model(hp):  # written for KerasTuner, not for this service
    model = keras.Sequential([keras.Input(shape=(4,))])
    for i in range(hp.Int("layers", 1, 2)):
        model.add(keras.layers.Dense(hp.Int(f"units_{i}", 4, 16, step=4), activation="relu"))
    if hp.Boolean("dropout"):
        with hp.conditional_scope("dropout", [True]):
            model.add(keras.layers.Dropout(hp.Float("rate", 0.1, 0.5)))
    model.add(keras.layers.Dense(3, activation="softmax"))
    model.compile(optimizer=keras.optimizers.Adam(hp.Float("lr", 1e-3, 1e-1, sampling="log")),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def log_step(hp):
    hp.Int("units", 8, 64, step=2, sampling="log")
    return keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3)])
"""


@pytest.fixture
def module(tmp_path: Path) -> Path:
    (tmp_path / "hm.py").write_text(BUILD)
    return tmp_path


def test_conditional_values_are_only_sampled_when_active(module: Path) -> None:
    fn = load_hypermodel("hm.py:build_model", module)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = study.ask()
        hp = OptunaHyperParameters(trial)
        build(fn, hp)
        assert ("rate" in trial.params) == trial.params["dropout"]
        assert f"units_{trial.params['layers']}" not in trial.params
        study.tell(trial, 0.0)


def test_log_range_with_step_is_mapped_with_a_warning(module: Path) -> None:
    fn = load_hypermodel("hm.py:log_step", module)
    trial = optuna.create_study().ask()
    with pytest.warns(UserWarning, match="log range with step 2 has no Optuna equivalent"):
        build(fn, OptunaHyperParameters(trial))
    assert 8 <= trial.params["units"] <= 64


def test_fixed_values_rebuild_the_same_architecture(module: Path) -> None:
    fn = load_hypermodel("hm.py:build_model", module)
    model = build(
        fn,
        OptunaHyperParameters(
            fixed={"layers": 2, "units_0": 8, "units_1": 12, "dropout": False, "lr": 0.01}
        ),
    )
    assert [layer.units for layer in model.layers if hasattr(layer, "units")] == [8, 12, 3]


def test_bad_hypermodel_reference(module: Path) -> None:
    with pytest.raises(SpaceError, match="has no 'nope'"):
        load_hypermodel("hm.py:nope", module)
    with pytest.raises(SpaceError, match="no such file"):
        load_hypermodel("missing.py:build_model", module)


def test_hypermodel_runs_under_the_service(module: Path) -> None:
    (module / "hm.yaml").write_text("""
study: {name: hm, trials: 3, sampler: tpe, pruner: median}
data: {source: iris, test_size: 0.3}
validation: {scheme: kfold, folds: 2}
model: {hypermodel: hm.py:build_model}
selection: {top_k: 2, recheck_folds: 2, bootstrap: 100, champion: false}
params: {batch_size: 16, epochs: 5, patience: 2}
""")
    result = run_search(module / "hm.yaml", home=module / "m", progress=False)
    assert result.counts["complete"] + result.counts["pruned"] == 3
    client = MlflowClient(result.tracking_uri)
    trials = [r for r in client.search_runs([result.experiment_id]) if r.data.tags[ROLE] == "trial"]
    for run in trials:  # the hypermodel's own parameters are in MLflow
        assert {"hp.layers", "hp.units_0", "hp.dropout", "hp.lr"} <= set(run.data.params)
        assert "width_0" not in run.data.params
    chosen = select("hm", home=module / "m")  # refit and test the hypermodel too
    assert 0.0 <= chosen.test["accuracy"].value <= 1.0


# KerasTuner's "Getting started" guide, as written there (one-hot labels, no Input layer)
GUIDE = """
import keras
from keras import layers


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    model.add(
        layers.Dense(
            # Define the hyperparameter.
            units=hp.Int("units", min_value=32, max_value=512, step=32),
            activation="relu",
        )
    )
    model.add(layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer="adam",
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
"""


# The guide's second build_model: a tuned number of layers, a conditional dropout, its own
# learning rate on a log scale
GUIDE_LAYERS = """
import keras
from keras import layers


def build_model(hp):
    model = keras.Sequential()
    model.add(layers.Flatten())
    # Tune the number of layers.
    for i in range(hp.Int("num_layers", 1, 3)):
        model.add(
            layers.Dense(
                # Tune number of units separately.
                units=hp.Int(f"units_{i}", min_value=32, max_value=512, step=32),
                activation=hp.Choice("activation", ["relu", "tanh"]),
            )
        )
    if hp.Boolean("dropout"):
        model.add(layers.Dropout(rate=0.25))
    model.add(layers.Dense(10, activation="softmax"))
    learning_rate = hp.Float("lr", min_value=1e-4, max_value=1e-2, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
"""


@pytest.mark.parametrize("source", [GUIDE, GUIDE_LAYERS], ids=["build_model", "layers"])
@pytest.mark.parametrize("scheme", ["holdout", "kfold"])
def test_kerastuner_guides_build_model_runs_as_written(
    tmp_path: Path, scheme: str, source: str
) -> None:
    from mlflow import MlflowClient

    (tmp_path / "guide.py").write_text(source)
    (tmp_path / "guide.yaml").write_text(
        f"study: {{name: guide, trials: 2, sampler: random, pruner: none}}\n"
        f"data: {{source: digits}}\nvalidation: {{scheme: {scheme}, folds: 2}}\n"
        "model: {hypermodel: guide.py:build_model}\n"
        "params: {epochs: 3, patience: 1, batch_size: 64}\n"
        "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}\n"
    )
    result = run_search(tmp_path / "guide.yaml", home=tmp_path / "m", progress=False)
    assert result.counts["complete"] == 2, result  # categorical loss: one-hot labels fed
    final = select("guide", home=tmp_path / "m")
    assert final.version == "1" and final.test["accuracy"].value > 0.5
    client = MlflowClient(result.tracking_uri)
    trial = client.search_runs(
        [result.experiment_id], filter_string="tags.`search.role` = 'trial'"
    )[0]
    assert any(k.startswith("hp.units") for k in trial.data.params)
    # the guide compiles its own Adam: the space's optimizer never applied, so is not logged
    assert "optimizer" not in trial.data.params and "learning_rate" not in trial.data.params


def test_a_head_that_does_not_fit_the_task_is_one_line_before_the_search(tmp_path: Path) -> None:
    (tmp_path / "guide.py").write_text(GUIDE)  # a 10-way softmax
    (tmp_path / "s.yaml").write_text(
        "data: {source: breast_cancer}\nmodel: {hypermodel: guide.py:build_model}\n"
    )
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("error: s.yaml:2: model.hypermodel: the hypermodel outputs shape (10,)")
    assert "Dense(1, activation='sigmoid')" in line
    assert not (tmp_path / "store").exists()


# The guide's HyperModel with a tuned `fit`, as written there
GUIDE_FIT = """
import keras
import keras_tuner
from keras import layers


class MyHyperModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential()
        model.add(layers.Flatten())
        model.add(
            layers.Dense(
                units=hp.Int("units", min_value=32, max_value=512, step=32),
                activation="relu",
            )
        )
        model.add(layers.Dense(10, activation="softmax"))
        model.compile(
            optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"],
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(
            *args,
            # Tune whether to shuffle the data in each epoch.
            shuffle=hp.Boolean("shuffle"),
            **kwargs,
        )
"""


@pytest.mark.parametrize("scheme", ["holdout", "kfold"])
def test_a_hypermodels_own_fit_is_sampled_logged_and_used(tmp_path: Path, scheme: str) -> None:
    from mlflow import MlflowClient

    (tmp_path / "guide_fit.py").write_text(GUIDE_FIT)
    (tmp_path / "g.yaml").write_text(
        "study: {name: gfit, trials: 3, sampler: random, pruner: none, seed: 1}\n"
        f"data: {{source: digits}}\nvalidation: {{scheme: {scheme}, folds: 2}}\n"
        "model: {hypermodel: guide_fit.py:MyHyperModel}\n"
        "params: {epochs: 2, patience: 1}\n"
        "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}\n"
    )
    result = run_search(tmp_path / "g.yaml", home=tmp_path / "m", progress=False)
    assert result.counts["complete"] == 3, result
    study = optuna.load_study(
        study_name="gfit",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(tmp_path / "m" / "optuna.journal"))
        ),
    )
    assert all("shuffle" in t.params for t in study.trials)  # fit's hp.Boolean, sampled
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], filter_string="tags.`search.role` = 'trial'")
    assert all("hp.shuffle" in r.data.params for r in runs)  # and logged
    assert select("gfit", home=tmp_path / "m").version == "1"


RAISES = """
import keras


def build_model(hp):
    if hp.Choice("kind", ["fine", "broken"]) == "broken":
        raise ValueError("no such architecture: broken")
    return keras.Sequential([keras.layers.Dense(10, activation="softmax")])
"""


def test_a_hypermodel_that_fails_to_build_fails_its_trial_with_the_reason(tmp_path: Path) -> None:
    """The failure happens while its values are drawn (before any fold): recorded on the
    trial with its reason, and the study goes on; the grid sampler, which cannot see
    hp.* values, is refused in one line."""
    (tmp_path / "hm.py").write_text(RAISES)
    (tmp_path / "s.yaml").write_text(
        "study: {name: raises, trials: 6, sampler: random, pruner: none, start: random}\n"
        "data: {source: digits}\nvalidation: {scheme: holdout}\n"
        "model: {hypermodel: hm.py:build_model}\nparams: {epochs: 1}\n"
    )
    result = run_search(tmp_path / "s.yaml", home=tmp_path / "m", progress=False, quiet=True)
    trials = load_study("raises", None, tmp_path / "m").trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and result.counts["complete"] >= 1
    assert all(
        t.user_attrs["fail_reason"] == "ValueError: no such architecture: broken" for t in failed
    )
    (tmp_path / "g.yaml").write_text(
        "study: {sampler: grid}\ndata: {source: digits}\nmodel: {hypermodel: hm.py:build_model}\n"
    )
    out = run_cli("run", "g.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2 and "g.yaml:1: study.sampler: the grid sampler" in out.stderr


@pytest.mark.parametrize("hypermodel", [True, False])
def test_a_hypermodel_is_fed_every_column_even_a_constant_one(
    tmp_path: Path, hypermodel: bool
) -> None:
    """Written for the data's columns, a hypermodel keeps the constant ones (the digits'
    edge pixels); the service's own model drops them."""
    (tmp_path / "hm.py").write_text(
        "import keras\n\ndef build_model(hp):\n"
        "    model = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(10)])\n"
        "    model.compile(loss='sparse_categorical_crossentropy')\n    return model\n"
    )
    model = "model: {hypermodel: hm.py:build_model}\n" if hypermodel else ""
    (tmp_path / "s.yaml").write_text("data: {source: digits}\n" + model)
    prep = prepare(load_space(tmp_path / "s.yaml"))
    dropped = [c for c, kind in prep.columns.items() if kind == "drop"]
    assert (dropped == []) == hypermodel, dropped
    assert len(prep.columns) == 64
