"""A regression target is standardized on the rows a model trains on, and the model,
its scores and its per-epoch curves are in the target's own units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from search import run_search, select
from search.data import target as target_module
from search.data.dataset import Dataset, load_dataset
from search.data.foldarrays import fold_arrays
from search.data.folds import make_folds
from search.data.split import split_test
from search.data.target import TargetScale
from search.engines.base import Engine, Member
from search.engines.pack.engine import PackEngine
from search.engines.pack.shape import Limits
from search.engines.sequential import SequentialEngine
from search.metrics import DATA_LOSS
from search.models.forward import predict
from search.params import TrialParams
from search.space.schema import DataSpec, ValidationSpec
from tests.conftest import ROOT, run_cli

PARAMS: dict[str, Any] = {
    "depth": 1,
    "widths": [8],
    "activation": "relu",
    "dropout": 0.0,
    "l1": 0.0,
    "l2": 1e-3,
    "batch_norm": False,
    "optimizer": "adam",
    "learning_rate": 0.01,  # on the raw target, 20 epochs would not reach its mean
    "batch_size": 32,
    "epochs": 20,
    "patience": 5,
    "precision": "float32",
}


def test_the_inverse_folded_into_an_output_layer_is_exact() -> None:
    rng = np.random.default_rng(0)
    scale = TargetScale.of(rng.normal(150.0, 40.0, size=300))
    y = rng.normal(150.0, 40.0, size=50)
    np.testing.assert_allclose(scale.inverse(scale.forward(y)), y, rtol=1e-6, atol=1e-4)
    h = rng.normal(size=(20, 8)).astype(np.float32)
    kernel, bias = rng.normal(size=(8, 1)).astype(np.float32), np.float32([0.3])
    folded_kernel, folded_bias = scale.fold(kernel, bias)
    np.testing.assert_allclose(
        h @ folded_kernel + folded_bias, scale.inverse(h @ kernel + bias), rtol=1e-5, atol=1e-3
    )
    assert TargetScale.of(np.full(10, 7.0)) == TargetScale(7.0, 1.0)  # constant: no division


def _diabetes() -> tuple[Dataset, list[Member]]:
    spec = DataSpec(source="diabetes")
    data = load_dataset(spec, base_dir=ROOT)
    rows = split_test(data, spec).train
    folds = make_folds(ValidationSpec(folds=2), data.y[rows], classification=False, seed=3)
    members = [
        Member(0, f.index, TrialParams.read(PARAMS), 7 + f.index, fold_arrays(data, rows, f))
        for f in folds
    ]
    return data, members


ENGINES = {"sequential": SequentialEngine(1), "pack": PackEngine(limits=Limits())}


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_each_engine_trains_on_the_standardized_target_and_predicts_in_its_units(
    engine: str,
) -> None:
    """The network predicts around the target's mean (its head starts at the fold's
    training mean, not at 0); the per-epoch val_mae and val_data_loss agree with the scores of the restored
    model, in the target's units."""
    data, members = _diabetes()
    chosen: Engine = ENGINES[engine]
    for trained in chosen.train(members, data):
        assert trained.result is not None and trained.build is not None, trained.error
        arrays, result = trained.member.arrays, trained.result
        out = predict(trained.build(), arrays.x_val).reshape(-1)
        train_mean = float(np.mean(arrays.y_train))
        assert abs(float(np.mean(out)) - train_mean) < 0.25 * float(np.std(arrays.y_train))
        best = result.best_epoch - 1
        assert result.history["val_mae"][best] == pytest.approx(result.scores["mae"], rel=1e-3)
        assert result.history[DATA_LOSS][best] == pytest.approx(result.scores["mse"], rel=1e-3)


def test_a_hypermodel_gets_the_raw_target() -> None:
    y = np.linspace(100.0, 300.0, 30, dtype=np.float32)
    assert target_module.target_scale(TrialParams.read({"hypermodel": "m.py:build"}), y) is None
    assert (
        target_module.target_scale(TrialParams.read({}), np.arange(30, dtype=np.int32)) is None
    )  # classes
    assert target_module.target_scale(TrialParams.read({}), y) == TargetScale.of(y)


SPACE = """
study: {{name: {name}, trials: 2, sampler: random, pruner: none, seed: 3}}
data: {{source: {source}, test_size: 0.25}}
validation: {{scheme: {scheme}, folds: 3}}
params: {{depth: 1, width: {{low: 4, high: 16}}, learning_rate: 0.01, epochs: 4, patience: 2}}
training: {{engine: sequential}}
selection: {{top_k: 2, recheck_folds: 2}}
"""


def test_no_test_or_validation_row_reaches_a_target_statistic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every standardization of a real search and its selection (folds, recheck, refit)
    is computed on training rows of what it trains, never on a test row."""
    rng = np.random.default_rng(5)
    n = 160
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["y"] = 1000.0 + np.arange(n) * 3.0 + frame["a"]  # every target value unique
    frame.to_csv(tmp_path / "unique.csv", index=False)
    (tmp_path / "s.yaml").write_text(
        SPACE.format(name="unique", source="unique.csv, target: y", scheme="kfold")
    )
    seen: list[np.ndarray] = []
    real = TargetScale.of.__func__  # type: ignore[attr-defined]

    def spy(cls: type[TargetScale], y: np.ndarray) -> TargetScale:
        seen.append(np.asarray(y, dtype=np.float64).copy())
        return real(cls, y)  # type: ignore[no-any-return]

    monkeypatch.setattr(TargetScale, "of", classmethod(spy))
    run_search(tmp_path / "s.yaml", home=tmp_path / "m", progress=False, quiet=True)
    select("unique", home=tmp_path / "m")
    spec = DataSpec(source="unique.csv", target="y", test_size=0.25)
    data = load_dataset(spec, base_dir=tmp_path)
    split = split_test(data, spec)
    test_values = set(np.round(data.y[split.test].astype(np.float64), 2))
    train_values = set(np.round(data.y[split.train].astype(np.float64), 2))
    sizes = {len(s) for s in seen}
    assert len(split.train) in sizes  # the refit, on all training rows
    assert any(size < len(split.train) for size in sizes)  # folds, on their training part
    for values in seen:
        rounded = set(np.round(values, 2))
        assert not rounded & test_values
        assert rounded <= train_values


def test_a_regression_champion_predicts_in_the_targets_units(tmp_path: Path) -> None:
    """From the command line: the selected model's test MAE, in the target's units,
    beats the mean baseline's on diabetes."""
    (tmp_path / "s.yaml").write_text(SPACE.format(name="dia", source="diabetes", scheme="holdout"))
    done = run_cli("run", str(tmp_path / "s.yaml"), "--home", str(tmp_path / "m"), "--json", "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    final = json.loads(done.stdout)["selection"]
    assert final["test"]["mae"]["value"] < final["baseline"]["mae"]["value"]
