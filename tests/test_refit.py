"""Selection on a regression: MAE, RMSE, R² and MSE with intervals against the training
mean, the refit for the median best epoch, `refit: ensemble` (one network per fold), the
recheck-to-test gap warning, and a fold run reproduced exactly."""

from __future__ import annotations

import statistics
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.reproduction import reproduce
from search.runner import run_search
from search.selection.evaluation import Interval, gap_warning
from search.selection.selector import SelectionResult, select
from search.study import open_storage
from search.summary import SearchResult

SPACE = """
study: {{name: {name}, trials: 2, sampler: random, pruner: none, seed: 8}}
data: {{source: diabetes}}
validation: {{scheme: kfold, folds: 3}}
selection: {{top_k: 2, recheck_folds: 2, bootstrap: 200, ensemble: false, refit: {refit}}}
params:
  depth: 1
  width: {{low: 8, high: 16}}
  learning_rate: 0.01
  batch_size: 32
  epochs: 12
  patience: 3
"""


def _searched(tmp: Path, name: str, refit: str) -> tuple[SearchResult, SelectionResult]:
    (tmp / f"{name}.yaml").write_text(SPACE.format(name=name, refit=refit))
    result = run_search(tmp / f"{name}.yaml", home=tmp / "m", progress=False)
    return result, select(name, home=tmp / "m")


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchResult, SelectionResult]:
    tmp = tmp_path_factory.mktemp("refit")
    return tmp, *_searched(tmp, "single", "single")


def test_regression_selection_has_intervals_against_the_training_mean(
    single: tuple[Path, SearchResult, SelectionResult],
) -> None:
    _, _, sel = single
    assert {"mae", "rmse", "r2", "mse"} <= set(sel.test) == set(sel.baseline)
    for name in ("mae", "rmse", "r2", "mse"):
        for iv in (sel.test[name], sel.baseline[name], sel.difference[name]):
            assert iv.low < iv.value < iv.high  # an interval with width
        # paired: the difference is the model's score less the baseline's, on the same rows
        assert sel.difference[name].value == pytest.approx(
            sel.test[name].value - sel.baseline[name].value
        )
    assert sel.test["rmse"].value == pytest.approx(np.sqrt(sel.test["mse"].value))
    # the training mean explains none of the test rows' variance
    assert -0.1 < sel.baseline["r2"].value <= 0.0
    assert sel.beats_baseline and sel.difference["mse"].high < 0


def test_the_refit_trains_for_the_median_best_epoch_of_the_chosen_trial(
    single: tuple[Path, SearchResult, SelectionResult],
) -> None:
    tmp, result, sel = single
    study = optuna.load_study(study_name="single", storage=open_storage(None, tmp / "m"))
    chosen = study.trials[sel.chosen.trial]
    median = max(1, round(statistics.median(chosen.user_attrs["best_epochs"])))
    assert sel.epochs == median
    run = MlflowClient(result.tracking_uri).get_run(sel.run_id)
    assert run.data.metrics["refit_epochs"] == median
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(sel.model_uri).unwrap_python_model()
    assert len(model.nets) == 1


def test_refit_ensemble_keeps_one_network_per_fold(tmp_path: Path) -> None:
    result, sel = _searched(tmp_path, "folds", "ensemble")
    mlflow.set_tracking_uri(result.tracking_uri)
    model = mlflow.pyfunc.load_model(sel.model_uri).unwrap_python_model()
    assert len(model.nets) == 3  # validation: 3 folds
    weights = [n.get_weights()[0] for n in model.nets]
    assert not np.allclose(weights[0], weights[1])  # each trained on its own fold
    assert reproduce(sel.run_id, home=tmp_path / "m").equal


def test_a_fold_run_reproduces_exactly(single: tuple[Path, SearchResult, SelectionResult]) -> None:
    tmp, result, _ = single
    client = MlflowClient(result.tracking_uri)
    folds = client.search_runs([result.experiment_id], filter_string="tags.`search.role` = 'fold'")
    assert len(folds) == 2 * 3  # trials x folds
    rep = reproduce(folds[-1].info.run_id, home=tmp / "m")
    assert rep.equal, str(rep)
    assert rep.rows  # something was compared


def test_the_gap_warning_says_when_the_recheck_beats_the_whole_test_interval() -> None:
    mae = Interval(value=40.0, low=36.0, high=44.0)
    assert "promised more than the test rows gave" in gap_warning(30.0, mae, higher_is_better=False)
    assert gap_warning(38.0, mae, higher_is_better=False) == ""
    assert gap_warning(50.0, mae, higher_is_better=False) == ""  # worse on validation: no
    r2 = Interval(value=0.45, low=0.35, high=0.55)
    assert "lies outside the test interval" in gap_warning(0.6, r2, higher_is_better=True)
    assert gap_warning(0.5, r2, higher_is_better=True) == ""
