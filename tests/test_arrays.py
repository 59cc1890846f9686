"""Array sources in keras.datasets' layout (a tiny `mnist.npz` and a CIFAR-shaped one,
written here): samples keep their shape for every model, the file's test part is the test
split, and KerasTuner's own examples run on data of the shape they were written for."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from search import run_search, select
from search.data.dataset import load_dataset
from search.data.split import split_test
from search.space.schema import DataSpec
from tests.conftest import run_cli
from tests.course import idx, images
from tests.test_hypermodel import GUIDE, GUIDE_FIT, GUIDE_LAYERS


def test_the_mnist_layout_loads_with_its_shape_and_its_test_part(tmp_path: Path) -> None:
    images(tmp_path / "mnist.npz", (28, 28), 120, 40)
    spec = DataSpec(source="mnist.npz")
    data = load_dataset(spec, base_dir=tmp_path)
    assert data.input_shape == (28, 28) and data.X.shape == (160, 784)
    assert data.task == "multiclass" and data.n_classes == 10
    split = split_test(data, spec)
    assert list(split.test) == list(range(120, 160))  # the file's x_test, as given
    with np.load(tmp_path / "mnist.npz") as arrays:
        first = arrays["x_test"][0].reshape(-1).astype(np.float32)
    np.testing.assert_array_equal(data.X.iloc[120].to_numpy(), first)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"images": np.zeros((4, 2))}, "an array source needs `x` and `y`"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(3)}, "4 samples of shape (2,) for 3 labels"),
    ],
)
def test_an_array_file_of_another_layout_is_one_line(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    np.savez(tmp_path / "odd.npz", **arrays)  # type: ignore[arg-type]
    (tmp_path / "s.yaml").write_text("data: {source: odd.npz}\n")
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert not (tmp_path / "store").exists()


# KerasTuner's HyperParameters.conditional_scope example (keras.io, "HyperParameters"),
# as written there but for `def MyHyperModel(HyperModel):`, a `class` in its intent
CONDITIONAL = """
import keras_tuner
from keras import Input, Sequential
from keras.layers import Conv2D, Dense, Flatten, GlobalAveragePooling2D
from keras_tuner import HyperModel


class MyHyperModel(HyperModel):
    def build(self, hp):
        model = Sequential()
        model.add(Input(shape=(32, 32, 3)))
        model_type = hp.Choice("model_type", ["mlp", "cnn"])
        with hp.conditional_scope("model_type", ["mlp"]):
            if model_type == "mlp":
                model.add(Flatten())
                model.add(Dense(32, activation='relu'))
        with hp.conditional_scope("model_type", ["cnn"]):
            if model_type == "cnn":
                model.add(Conv2D(64, 3, activation='relu'))
                model.add(GlobalAveragePooling2D())
        model.add(Dense(10, activation='softmax'))
        return model
"""


def _search(tmp_path: Path, source: str, hypermodel: str, scheme: str, data: str) -> None:
    (tmp_path / "hm.py").write_text(source)
    (tmp_path / "s.yaml").write_text(
        "study: {name: img, trials: 3, sampler: random, pruner: none}\n"
        f"data: {{source: {data}}}\nvalidation: {{scheme: {scheme}, folds: 2}}\n"
        f"model: {{hypermodel: '{hypermodel}'}}\n"
        "params: {epochs: 3, patience: 2, batch_size: 32, learning_rate: 0.003}\n"
        "selection: {top_k: 2, recheck_folds: 2, bootstrap: 100}\n"
    )
    result = run_search(tmp_path / "s.yaml", home=tmp_path / "m", progress=False, quiet=True)
    assert result.counts["complete"] >= 2, result
    final = select("img", home=tmp_path / "m")
    assert final.version == "1" and final.test["accuracy"].value > 0.3  # 10 classes
    mlflow.set_tracking_uri(result.tracking_uri)
    champion = mlflow.pyfunc.load_model(final.model_uri)
    spec = DataSpec(source=data)
    loaded = load_dataset(spec, base_dir=tmp_path)
    rows = loaded.X.iloc[split_test(loaded, spec).test]  # raw pixels, one row a sample
    labels = champion.predict(rows)
    accuracy = float(np.mean(labels.to_numpy() == np.asarray(loaded.labels)[loaded.y[rows.index]]))
    assert accuracy == pytest.approx(final.test["accuracy"].value)


@pytest.mark.parametrize("scheme", ["holdout", "kfold"])
def test_the_conditional_scope_example_runs_on_cifar_shaped_images(
    tmp_path: Path, scheme: str
) -> None:
    images(tmp_path / "cifar.npz", (32, 32, 3), 200, 60)
    _search(tmp_path, CONDITIONAL, "hm.py:MyHyperModel", scheme, "cifar.npz")


@pytest.mark.parametrize(
    ("source", "hypermodel"),
    [
        (GUIDE, "hm.py:build_model"),
        (GUIDE_LAYERS, "hm.py:build_model"),
        (GUIDE_FIT, "hm.py:MyHyperModel"),  # its own fit, with a tuned `shuffle`
    ],
    ids=["build_model", "layers", "tuned_fit"],
)
@pytest.mark.parametrize("scheme", ["holdout", "kfold"])
def test_the_getting_started_guide_runs_on_mnist_shaped_images(
    tmp_path: Path, source: str, hypermodel: str, scheme: str
) -> None:
    images(tmp_path / "mnist.npz", (28, 28), 200, 60)
    _search(tmp_path, source, hypermodel, scheme, "mnist.npz")


def test_the_built_in_mlp_flattens_images(tmp_path: Path) -> None:
    images(tmp_path / "mnist.npz", (28, 28), 200, 60)
    (tmp_path / "s.yaml").write_text(
        "study: {name: mlp, trials: 2, sampler: random, pruner: none}\n"
        "data: {source: mnist.npz}\nvalidation: {scheme: kfold, folds: 2}\n"
        "params: {depth: 1, width: 32, epochs: 4, patience: 2}\n"
        "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}\n"
    )
    run_search(tmp_path / "s.yaml", home=tmp_path / "m", progress=False, quiet=True)
    final = select("mlp", home=tmp_path / "m")
    assert final.test["accuracy"].value > 0.5
    pixels = pd.DataFrame(np.zeros((2, 784)), columns=[f"p{i}" for i in range(784)])
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    assert len(mlflow.pyfunc.load_model(final.model_uri).predict(pixels)) == 2


def test_keras_datasets_are_read_from_keras_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """keras:mnist, keras:fashion_mnist and keras:boston_housing from files written in
    Keras' own layouts under a temporary KERAS_HOME: shapes, tasks and test parts."""
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    images(cache / "mnist.npz", (28, 28), 60, 20)
    mnist = load_dataset(DataSpec(source="keras:mnist"), base_dir=tmp_path)
    assert mnist.input_shape == (28, 28) and mnist.parts is not None
    assert int((mnist.parts == 2).sum()) == 20 and mnist.task == "multiclass"
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 10)):
        idx(cache / "fashion-mnist" / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
        pictures = rng.integers(0, 255, size=(n, 28, 28))
        idx(cache / "fashion-mnist" / f"{prefix}-images-idx3-ubyte.gz", pictures, 2051)
    fashion = load_dataset(DataSpec(source="keras:fashion_mnist"), base_dir=tmp_path)
    assert fashion.X.shape == (60, 784) and list(fashion.y[:3]) == [0, 1, 2]
    assert fashion.X.iloc[59].to_numpy() == pytest.approx(pictures[-1].reshape(-1))
    np.savez(cache / "boston_housing.npz", x=rng.normal(size=(100, 13)), y=rng.normal(20, 5, 100))
    boston = load_dataset(DataSpec(source="keras:boston_housing"), base_dir=tmp_path)
    assert boston.task == "regression" and boston.X.shape == (100, 13)
    assert int((boston.parts == 2).sum()) == 20  # Keras' own 80/20 split, as it splits


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("keras:mnist", "keras:mnist reads"),
        ("keras:imdb", "imdb.npz, which is not there"),
        ("keras:cifar100", "keras:cifar100 is not one this service reads"),
    ],
)
def test_a_keras_dataset_not_in_the_cache_is_one_line(
    tmp_path: Path, source: str, message: str
) -> None:
    (tmp_path / "s.yaml").write_text(f"data: {{source: '{source}'}}\n")
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "empty")}
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path, env=env)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    if source == "keras:mnist":
        assert str(tmp_path / "empty" / "datasets" / "mnist.npz") in out.stderr
    assert not (tmp_path / "store").exists()
