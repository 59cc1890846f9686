"""Pruners and samplers as the README promises them: k-fold pruning on the running mean of
the folds (raw fold scores for Wilcoxon), successive halving and Hyperband stopping trials
between folds, the qmc / cmaes / gp samplers (an install hint where a package is missing),
and TPE's and GP's random start-up at a quarter of the budget."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from search.errors import SpaceError
from search.runner import run_search
from search.space.file import parse_space
from search.study import open_storage
from search.tuners import make_pruner, make_sampler

SPACE = """
study: {{name: {name}, trials: {trials}, sampler: {sampler}, pruner: {pruner}, seed: 4}}
data: {{source: breast_cancer}}
validation: {{scheme: kfold, folds: {folds}}}
params:
  depth: 1
  width: {{low: 4, high: 8}}
  learning_rate: {learning_rate}
  batch_size: 64
  epochs: 3
  patience: 2
"""


def _space(
    name: str,
    *,
    trials: int = 4,
    sampler: str = "random",
    pruner: str = "none",
    folds: int = 3,
    learning_rate: str = "{low: 0.001, high: 0.05, log: true}",
) -> str:
    return SPACE.format(
        name=name,
        trials=trials,
        sampler=sampler,
        pruner=pruner,
        folds=folds,
        learning_rate=learning_rate,
    )


def _search(tmp_path: Path, text: str, name: str) -> list[optuna.trial.FrozenTrial]:
    (tmp_path / f"{name}.yaml").write_text(text)
    run_search(tmp_path / f"{name}.yaml", home=tmp_path / "m", progress=False)
    study = optuna.load_study(study_name=name, storage=open_storage(None, tmp_path / "m"))
    return study.get_trials()


@pytest.mark.parametrize("pruner", ["median", "wilcoxon"])
def test_kfold_pruners_see_the_running_mean_or_for_wilcoxon_each_fold(
    tmp_path: Path, pruner: str
) -> None:
    trials = _search(tmp_path, _space(pruner, pruner=pruner), pruner)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert complete
    for trial in complete:
        folds = np.array(trial.user_attrs["fold_scores"])
        assert len(folds) == 3 and np.ptp(folds) > 0  # distinct folds tell the two apart
        seen = [trial.intermediate_values[step] for step in range(3)]
        if pruner == "wilcoxon":
            np.testing.assert_allclose(seen, folds, rtol=1e-12)
        else:
            running = np.cumsum(folds) / np.arange(1, 4)
            np.testing.assert_allclose(seen, running, rtol=1e-12)


@pytest.mark.parametrize("pruner", ["successive_halving", "hyperband"])
def test_halving_and_hyperband_stop_trials_between_folds(tmp_path: Path, pruner: str) -> None:
    # half the learning rates cannot learn in 3 epochs: the pruner has something to stop
    text = _space(
        pruner, pruner=pruner, trials=10, folds=4, learning_rate="{choices: [0.00001, 0.05]}"
    )
    trials = _search(tmp_path, text, pruner)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete
    for trial in pruned:
        assert 1 <= len(trial.intermediate_values) < 4  # stopped after a fold, not the last
    # the learning rate that cannot learn is the one stopped: no complete trial has it
    # unless every trial before it at that fold was as bad
    best = min(complete, key=lambda t: t.value or np.inf)
    assert best.params["learning_rate"] == 0.05


@pytest.mark.parametrize(
    ("scheme", "engine"), [("holdout", "sequential"), ("holdout", "pack"), ("kfold", "pack")]
)
def test_a_trial_is_never_pruned_after_its_last_epoch_or_fold(
    tmp_path: Path, scheme: str, engine: str
) -> None:
    # halving's first rung is epoch 5 in holdout, fold 1 in k-fold: with 6 epochs and 2
    # folds it falls on the last one, where stopping the trial would only lose it
    text = _space(scheme, pruner="successive_halving", trials=6, folds=2)
    text = text.replace("epochs: 3", "epochs: 6").replace("patience: 2", "patience: 9")
    text += f"training: {{engine: {engine}}}\n"
    if scheme == "holdout":
        text = text.replace("{scheme: kfold, folds: 2}", "{scheme: holdout}")
    trials = _search(tmp_path, text, scheme)
    assert all(t.state == TrialState.COMPLETE for t in trials)
    steps = 6 if scheme == "holdout" else 2
    assert all(len(t.intermediate_values) == steps for t in trials)


def test_pruners_take_their_resources_from_the_validation_scheme() -> None:
    holdout = parse_space(
        _space("h", pruner="hyperband").replace("{scheme: kfold, folds: 3}", "{scheme: holdout}")
    )
    by_epoch = make_pruner(holdout, n_folds=1)
    assert isinstance(by_epoch, optuna.pruners.HyperbandPruner)
    assert (by_epoch._min_resource, by_epoch._max_resource) == (5, 3)  # epochs: 3
    by_fold = make_pruner(parse_space(_space("k", pruner="hyperband")), n_folds=3)
    assert (by_fold._min_resource, by_fold._max_resource) == (1, 3)
    halving = make_pruner(parse_space(_space("s", pruner="successive_halving")), n_folds=3)
    assert isinstance(halving, optuna.pruners.SuccessiveHalvingPruner)
    wilcoxon = make_pruner(parse_space(_space("w", pruner="wilcoxon")), n_folds=3)
    assert isinstance(wilcoxon, optuna.pruners.WilcoxonPruner)


@pytest.mark.parametrize(("trials", "startup"), [(4, 3), (12, 3), (20, 5), (40, 10), (200, 10)])
def test_model_based_samplers_start_at_random_for_a_quarter_of_the_budget(
    trials: int, startup: int
) -> None:
    tpe = make_sampler(parse_space(_space("t", sampler="tpe", trials=trials)))
    assert isinstance(tpe, optuna.samplers.TPESampler)
    assert tpe._n_startup_trials == startup
    if importlib.util.find_spec("torch") is not None:
        gp = make_sampler(parse_space(_space("g", sampler="gp", trials=trials)))
        assert isinstance(gp, optuna.samplers.GPSampler)
        assert gp._n_startup_trials == startup


@pytest.mark.parametrize(
    ("sampler", "module", "kind"),
    [
        ("qmc", None, optuna.samplers.QMCSampler),
        ("cmaes", "cmaes", optuna.samplers.CmaEsSampler),
        ("gp", "torch", optuna.samplers.GPSampler),
    ],
)
def test_samplers_run_where_installed_and_say_how_to_install_them_otherwise(
    tmp_path: Path, sampler: str, module: str | None, kind: type
) -> None:
    text = _space(sampler, sampler=sampler, trials=3, folds=2)
    if module is not None and importlib.util.find_spec(module) is None:
        with pytest.raises(SpaceError, match=rf"needs the `{module}` package.*pip install"):
            make_sampler(parse_space(text))
        return
    assert isinstance(make_sampler(parse_space(text)), kind)
    trials = _search(tmp_path, text, sampler)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert len({t.params["learning_rate"] for t in trials}) == 3
