"""An ensemble of the best trials: chosen greedily on the recheck's out-of-fold outputs
(training rows only), the champion only when its gain there is outside the noise (a
paired bootstrap over those rows, stated in the log), shown beside the single trial on
the test rows, one MLflow model, reproduced number for number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from search import reproduce, run_search, select
from search.data.dataset import load_dataset
from search.data.split import split_test
from search.selection import selector as selection_module
from search.selection.ensemble import Ensemble, gain, greedy, out_of_fold, real_gain
from search.space.schema import DataSpec


def test_complementary_models_are_averaged_and_a_dominant_one_stays_alone() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    noise_a, noise_b = rng.normal(size=400), rng.normal(size=400)
    outputs = {
        1: (y + noise_a).reshape(-1, 1),  # two equally good models with independent errors
        2: (y + noise_b).reshape(-1, 1),
        3: (y + 3 * rng.normal(size=400)).reshape(-1, 1),  # a poor one
    }
    both = greedy("regression", "mse", y, outputs, start=1, minimize=True)
    assert set(both.weights) == {1, 2} and both.score < both.single
    assert both.single == pytest.approx(float(np.mean(noise_a**2)))
    alone = greedy("regression", "mse", y, {1: outputs[1], 3: outputs[3]}, start=1, minimize=True)
    assert alone.weights == {1: 1} and alone.score == alone.single
    # averaging two independent errors halves the MSE on 400 rows: a gain beyond the noise
    diff = gain("regression", "mse", y, outputs, both, start=1, n=500, seed=0)
    assert diff.high < 0 and real_gain(diff, minimize=True)


@pytest.mark.parametrize(("minimize", "metric"), [(True, "mse"), (False, "r2")])
def test_a_gain_inside_the_noise_keeps_the_single_trial(minimize: bool, metric: str) -> None:
    """A second model nearly the same as the first: greedy may take it for a sliver of
    out-of-fold score, but the paired interval of the gain holds 0, so it is no gain."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    first = y + rng.normal(size=300)
    outputs = {1: first.reshape(-1, 1), 2: (first + 0.05 * rng.normal(size=300)).reshape(-1, 1)}
    ens = Ensemble({1: 1, 2: 1}, 0.0, 0.0)
    diff = gain("regression", metric, y, outputs, ens, start=1, n=500, seed=0)
    assert diff.low <= 0 <= diff.high and diff.low <= diff.value <= diff.high
    assert not real_gain(diff, minimize=minimize)


def test_maximized_metrics_and_uncovered_rows() -> None:
    """Accuracy is maximized; rows no fold validated (NaN) are left out of the choice."""
    y = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    good = np.array([0.2, 0.9, 0.3, 0.8, 0.1, 0.7, 0.6, 0.4]).reshape(-1, 1)
    bad = 1 - good
    bad[0] = np.nan
    ens = greedy("binary", "accuracy", y, {5: good, 6: bad}, start=5, minimize=False)
    assert ens.weights == {5: 1} and ens.single == 1.0
    whole = out_of_fold({5: [(np.array([0, 2]), np.ones((2, 1))), (np.array([1]), np.zeros(1))]}, 4)
    assert whole[5].shape == (4, 1) and np.isnan(whole[5][3, 0]) and whole[5][1, 0] == 0.0


SPACE = """
study: {name: ens, trials: 6, sampler: random, pruner: none, seed: 11}
data: {source: diabetes, test_size: 0.25}
validation: {scheme: kfold, folds: 3}
params:
  depth: {low: 1, high: 2}
  width: {low: 4, high: 32, log: true}
  dropout: {low: 0.0, high: 0.3}
  learning_rate: {low: 0.003, high: 0.03, log: true}
  epochs: 30
  patience: 5
training: {engine: sequential}
selection: {top_k: 4, recheck_folds: 3}
"""


@pytest.fixture(scope="module")
def chosen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("ens")
    (tmp / "s.yaml").write_text(SPACE)
    run_search(tmp / "s.yaml", home=tmp / "m", progress=False, quiet=True)
    seen: dict[str, Any] = {}
    real = selection_module.greedy

    def spy(task: str, metric: str, y: np.ndarray, outputs: Any, **kw: Any) -> Ensemble:
        seen["y"], seen["outputs"] = y.copy(), {t: o.copy() for t, o in outputs.items()}
        return real(task, metric, y, outputs, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(selection_module, "greedy", spy)
        judged = select("ens", home=tmp / "m")  # the gain judged as a user's would be
    # the ensemble's own path (refit, table, MLflow model, reproduction) whatever the
    # gain: its verdict is forced to "outside the noise" here, and judged above
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(selection_module, "real_gain", lambda diff, minimize: True)
        result = select("ens", home=tmp / "m")
    return {"tmp": tmp, "result": result, "judged": judged, **seen}


def test_the_verdict_on_the_gain_is_stated_and_followed(chosen: dict[str, Any]) -> None:
    """The log states the gain's interval and the verdict; the model follows it."""
    judged = chosen["judged"]
    assert "95% paired bootstrap over the" in judged.ensemble, judged.ensemble
    if "inside the noise" in judged.ensemble:
        assert f"trial {judged.chosen.trial} stays alone" in judged.ensemble
        assert not judged.single  # one trial is the model
    else:
        assert "outside the noise, so the ensemble is the model" in judged.ensemble
        assert judged.single


def test_the_choice_sees_training_rows_only(chosen: dict[str, Any]) -> None:
    spec = DataSpec(source="diabetes", test_size=0.25)
    data = load_dataset(spec, base_dir=chosen["tmp"])
    split = split_test(data, spec)
    np.testing.assert_array_equal(chosen["y"], data.y[split.train])
    for output in chosen["outputs"].values():
        assert output.shape[0] == len(split.train) and np.isfinite(output).all()


def test_the_ensemble_is_the_champion_and_is_shown_beside_the_single_trial(
    chosen: dict[str, Any],
) -> None:
    result = chosen["result"]
    assert result.ensemble.startswith("ensemble of trial")  # it beat the single out of fold
    assert set(result.single) == set(result.test) == set(result.versus_single)
    for name, diff in result.versus_single.items():
        assert diff.value == pytest.approx(result.test[name].value - result.single[name].value)
        assert diff.low <= diff.value <= diff.high
    # the linear model beside the baseline: a ridge on the same rows, in the target's units
    assert result.linear_model.startswith("ridge regression (alpha=")
    assert 20 < result.linear["mae"].value < 80  # diabetes' MAE, not a standardized one
    table = str(result)
    assert result.ensemble in table and f"trial {result.chosen.trial} alone" in table
    mlflow.set_tracking_uri(f"sqlite:///{chosen['tmp'] / 'm' / 'mlflow.db'}")
    run = mlflow.get_run(result.run_id)
    weights = dict(part.split(":") for part in run.data.params["ensemble"].split(","))
    assert len(weights) >= 2 and str(result.chosen.trial) in weights
    model = mlflow.pyfunc.load_model(result.model_uri)
    rows = pd.DataFrame(load_dataset(DataSpec(source="diabetes"), base_dir=chosen["tmp"]).X).head(8)
    predicted = model.predict(rows)
    assert len(predicted) == 8 and np.isfinite(predicted).all()


def test_the_ensemble_reproduces(chosen: dict[str, Any]) -> None:
    rep = reproduce(chosen["result"].run_id, home=chosen["tmp"] / "m")
    assert rep.equal, str(rep)


def test_off_in_the_space_means_one_trial(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(
        SPACE.replace("ens,", "single,")
        .replace("recheck_folds: 3}", "recheck_folds: 3, ensemble: false}")
        .replace("trials: 6", "trials: 3")
    )
    run_search(tmp_path / "s.yaml", home=tmp_path / "m", progress=False, quiet=True)
    result = select("single", home=tmp_path / "m")
    assert result.ensemble == "" and not result.single
