"""Keras backends: feeding rows without ragged batches, host-side initialisation, JAX end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pytest

from search.engines import feed
from search.engines.feed import ShuffledBatches
from search.models.build import HostGlorotUniform, build_model
from search.params import TrialParams
from tests.conftest import ROOT, run_cli, tiny_space

PARAMS = {
    "widths": [8, 5],
    "batch_norm": False,
    "activation": "relu",
    "dropout": 0.0,
    "l1": 0.0,
    "l2": 0.0,
    "optimizer": "adam",
    "learning_rate": 0.01,
}


def test_batches_are_full_and_each_epoch_is_a_new_permutation() -> None:
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25)
    feed = ShuffledBatches(x, y, batch_size=8, seed=4)
    epochs = []
    for _ in range(3):
        batches = [feed[i] for i in range(len(feed))]
        assert len(batches) == 3 and all(len(b[1]) == 8 for b in batches)
        seen = np.concatenate([b[1] for b in batches])
        assert len(set(seen.tolist())) == 24  # no row twice; one row left over
        assert all(np.array_equal(bx[:, 0], by * 2) for bx, by in batches)  # rows stay paired
        epochs.append(seen)
        feed.on_epoch_end()
    assert not np.array_equal(epochs[0], epochs[1])
    again = ShuffledBatches(x, y, batch_size=8, seed=4)
    assert np.array_equal(np.concatenate([again[i][1] for i in range(3)]), epochs[0])


def test_fewer_rows_than_a_batch_make_one_batch() -> None:
    feed = ShuffledBatches(np.zeros((5, 2)), np.zeros(5), batch_size=32, seed=0)
    assert len(feed) == 1 and len(feed[0][1]) == 5


def test_large_rows_are_read_from_the_array_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above `CACHED_BYTES` no copy of the rows is made for `fit`: batches are gathered
    from the fold's own arrays, and the validation loss still covers every row once."""
    monkeypatch.setattr(feed, "CACHED_BYTES", 0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 6)).astype(np.float32), rng.integers(0, 2, 300)
    x_val, y_val = rng.normal(size=(37, 6)).astype(np.float32), rng.integers(0, 2, 37)
    train, val = feed.fit_inputs(x, y, batch_size=32, seed=1), feed.validation_inputs(x_val, y_val)
    assert train["x"].x is x and val["validation_data"].x is x_val
    keras.utils.set_random_seed(0)
    model = build_model(
        TrialParams.read({**PARAMS, "widths": [8]}),
        n_features=6,
        task="binary",
        n_classes=2,
    )
    history = model.fit(**train, **val, epochs=2, verbose=0)
    evaluated = model.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    assert history.history["val_loss"][-1] == pytest.approx(evaluated, rel=1e-5)
    batches = feed.Batches(x_val, y_val, batch_size=8)
    assert np.array_equal(np.concatenate([batches[i][1] for i in range(len(batches))]), y_val)


def test_a_finished_fit_lets_go_of_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorFlow keeps a finished fit's PyDataset alive; the rows it read must not be:
    a search that remakes folds (or refits) would otherwise hold every copy it made."""
    import gc
    import weakref

    from search.engines.sequential import SequentialEngine
    from tests.test_pack import BASE, _data, _members

    monkeypatch.setattr(feed, "CACHED_BYTES", 0)
    data, folds = _data()
    rows = weakref.ref(folds[0].x_train)
    done = list(SequentialEngine(steps_per_execution=4).train(_members(folds[:1], [BASE]), data))
    assert done[0].result is not None and rows() is not None
    del done, folds
    gc.collect()
    assert rows() is None


def test_host_initializer_is_seeded_bounded_and_survives_saving(tmp_path: Path) -> None:
    init = HostGlorotUniform()
    keras.utils.set_random_seed(7)
    first = keras.ops.convert_to_numpy(init((30, 10)))
    keras.utils.set_random_seed(7)
    assert np.array_equal(first, keras.ops.convert_to_numpy(init((30, 10))))
    limit = np.sqrt(6 / 40)
    assert np.abs(first).max() <= limit and first.std() > limit / 3

    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, keras.layers.Dense(3, kernel_initializer=init)(inputs))
    path = tmp_path / "net.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.ones((2, 4), dtype=np.float32)
    assert np.allclose(model(x), loaded(x))
    assert isinstance(loaded.layers[-1].kernel_initializer, HostGlorotUniform)


def test_precision_policy_is_applied_and_the_head_stays_float32() -> None:
    from search.models.build import make_model

    try:
        model = make_model(
            TrialParams.read(PARAMS | {"precision": "mixed_bfloat16"}),
            n_features=3,
            task="binary",
        )
        assert model.get_layer("dense_0").compute_dtype == "bfloat16"
        assert model.get_layer("output").compute_dtype == "float32"
    finally:
        keras.config.set_dtype_policy("float32")
    model = build_model(TrialParams.read(PARAMS), n_features=3, task="binary")
    assert model.get_layer("dense_0").compute_dtype == "float32"


@pytest.mark.slow
def test_a_search_runs_on_the_jax_backend(tmp_path: Path) -> None:
    if find_spec("jax") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("jax is part of the dev extra; CI must have it")
        pytest.skip("jax is not installed (pip install -e '.[dev]')")
    space = tiny_space(tmp_path, name="onjax", trials=2, folds=2, epochs=3)
    home = tmp_path / "m"
    out = run_cli(
        "run", str(space), "--json", "--home", str(home), env={**os.environ, "KERAS_BACKEND": "jax"}
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"]["complete"] == 2
    assert summary["selection"]["test"]["accuracy"]["value"] > 0.5
    study = optuna.load_study(
        study_name="onjax",
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(home / "optuna.journal"))
        ),
    )
    assert all(np.isfinite(t.value) for t in study.trials)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    run = client.get_run(summary["parent_run_id"])
    assert run.data.tags["search.keras_backend"] == "jax"
    # the champion trained on JAX serves from this TensorFlow process: Keras' format is portable
    import mlflow
    from sklearn.datasets import load_iris

    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    champion = mlflow.pyfunc.load_model(summary["selection"]["model_uri"])
    rows = load_iris(as_frame=True).data.head(5)
    assert len(champion.predict(rows)) == 5
    # its values: on the test rows, the accuracy the selection reported (JAX-trained
    # weights, TensorFlow forward pass), and probabilities that sum to one
    from search.data.dataset import load_dataset
    from search.data.split import split_test
    from search.space.schema import DataSpec

    spec = DataSpec(source="iris", test_size=0.25)
    data = load_dataset(spec, base_dir=tmp_path)
    test = split_test(data, spec).test
    frame = champion.predict(data.X.iloc[test], params={"output": "proba"})
    proba = frame[[f"proba_{label}" for label in data.labels]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(
        np.mean(frame["prediction"].to_numpy() == np.asarray(data.labels)[data.y[test]])
    )
    assert accuracy == pytest.approx(summary["selection"]["test"]["accuracy"]["value"])
    # and its network opens with Keras alone, in a process that never imported this package
    (network,) = (home / "artifacts").rglob("network_0.keras")
    code = (
        "import sys, keras; keras.saving.load_model(sys.argv[1], compile=False); "
        "print(sorted(m for m in sys.modules if m == 'search' or m.startswith('search.')))"
    )
    opened = subprocess.run(
        [sys.executable, "-c", code, str(network)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert opened.returncode == 0 and opened.stdout.strip() == "[]", opened.stderr[-2000:]


def test_a_reused_model_trains_each_fold_exactly_as_a_fresh_one() -> None:
    from search.data.dataset import load_dataset
    from search.data.foldarrays import fold_arrays
    from search.data.folds import make_folds
    from search.data.split import split_test
    from search.engines.sequential import ModelReuse, fit_fold
    from search.space.schema import DataSpec, ValidationSpec

    spec = DataSpec(source="iris")
    data = load_dataset(spec, base_dir=ROOT)
    rows = split_test(data, spec).train
    folds = make_folds(ValidationSpec(folds=3), data.y[rows], classification=True, seed=1)
    params = PARAMS | {
        "dropout": 0.2,
        "batch_norm": True,
        "batch_size": 16,
        "epochs": 6,
        "patience": 2,
        "precision": "float32",
    }
    reuse = ModelReuse()
    held = []
    for fold in folds:
        arrays = fold_arrays(data, rows, fold)
        model, reused = fit_fold(
            TrialParams.read(params),
            arrays,
            data=data,
            seed=5 + fold.index,
            spe=4,
            reuse=reuse,
        )
        _, fresh = fit_fold(TrialParams.read(params), arrays, data=data, seed=5 + fold.index, spe=4)
        held.append(model)
        assert reused.scores == fresh.scores and reused.history == fresh.history
    assert held[0] is held[1] is held[2]  # one traced model served every fold


def test_state_built_before_fit_saves_a_trace_and_trains_the_same() -> None:
    from search.models.build import build_state

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    runs = []
    for prebuild in (False, True):
        keras.utils.set_random_seed(3)
        model = build_model(
            TrialParams.read(PARAMS), n_features=4, task="binary", steps_per_execution=4
        )
        traces: list[int] = []
        step = model.train_step

        def counted(*args: Any, step: Any = step, traces: list[int] = traces) -> Any:
            traces.append(1)  # once per trace of the train function
            return step(*args)

        model.train_step = counted
        if prebuild:
            build_state(model, x, y)
            assert model.optimizer.built
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0).history
        runs.append((len(traces), history["loss"]))
    (traces_lazy, lazy), (traces_built, built) = runs
    assert lazy == built
    if keras.backend.backend() == "tensorflow":  # a step that creates variables traces twice
        assert (traces_lazy, traces_built) == (2, 1)


PROBE = """
import json, sys
import keras, numpy as np
from search.models.build import build_model
from search.models.forward import penalty, predict
from search.params import TrialParams

class Half(keras.regularizers.Regularizer):  # not one of Keras' L1/L2: called as Keras does
    def __call__(self, x):
        return 0.5 * keras.ops.sum(keras.ops.square(x))

out = {}
for name, (l1, l2) in {"l1": (0.01, 0.0), "l2": (0.0, 0.02), "l1l2": (0.01, 0.02)}.items():
    keras.utils.set_random_seed(1)
    params = {**json.loads(sys.argv[1]), "l1": l1, "l2": l2, "batch_norm": True, "dropout": 0.3}
    model = build_model(TrialParams.read(params), n_features=6, task="multiclass", n_classes=3)
    model.get_layer("dense_1").kernel.regularizer = Half()
    x = np.random.default_rng(0).normal(size=(40, 6)).astype("float32")
    ours = predict(model, x)
    keras_own = keras.ops.convert_to_numpy(model(x, training=False))
    losses = sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    out[name] = [float(np.abs(ours - keras_own).max()), penalty(model), losses]
print(json.dumps(out))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_host_penalty_and_compiled_forward_pass_match_keras(backend: str) -> None:
    """`penalty` sums L1/L2 on the host and `predict` compiles one JAX function per model:
    both must give what Keras' own regularizers and forward pass give."""
    import subprocess
    import sys

    if backend == "jax" and find_spec("jax") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("jax is part of the dev extra; CI must have it")
        pytest.skip("jax is not installed (pip install -e '.[dev]')")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(PARAMS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": backend},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    for gap, ours, keras_own in figures.values():
        assert gap < 1e-5
        assert ours == pytest.approx(keras_own, rel=1e-5) and ours > 0
    assert figures["l1l2"][1] > figures["l2"][1] > 0
