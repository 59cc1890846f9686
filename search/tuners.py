"""The sampler and the pruner a space file names, made the way each suits a small budget."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import optuna

from search.errors import SpaceError
from search.space.sampling import grid_space
from search.space.schema import Space


def make_sampler(space: Space) -> optuna.samplers.BaseSampler:
    name, seed = space.study.sampler, space.study.seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(
                n_startup_trials=startup_trials(space.study.trials),
                seed=seed,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "qmc":
            return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
        if name == "grid":
            return optuna.samplers.GridSampler(grid_space(space.params), seed=seed)
        if name == "cmaes":
            _require("cmaes", "pip install cmaes  (or: pip install '.[cmaes]')", space)
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        _require("torch", "pip install torch==2.13.0  (or: pip install '.[gp]')", space)
        return optuna.samplers.GPSampler(
            n_startup_trials=startup_trials(space.study.trials), seed=seed
        )


def startup_trials(budget: int | None) -> int:
    """Trials sampled at random before a model-based sampler takes over.

    Optuna's default is 10 whatever the budget, which leaves a 6-trial search all random and a
    12-trial one mostly random; a quarter of the budget, between 3 and 10, keeps some
    exploration and gives the model most of a small budget.
    """
    return 10 if budget is None else max(3, min(10, budget // 4))


def _require(module: str, command: str, space: Space) -> None:
    if importlib.util.find_spec(module) is None:
        raise SpaceError(
            f"the {space.study.sampler!r} sampler needs the `{module}` package, "
            f"which is not installed; run: {command}",
            file=space.path,
            key="study.sampler",
        )


def make_pruner(space: Space, n_folds: int) -> optuna.pruners.BasePruner:
    """Pruners see per-epoch values in holdout and per-fold scores in k-fold."""
    name, holdout = space.study.pruner, n_folds == 1
    if name == "none":
        return optuna.pruners.NopPruner()
    if name in ("auto", "median"):
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10 if holdout else 0)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=5 if holdout else 1)
    if name == "hyperband":
        max_resource = _max_value(space.params.epochs) if holdout else n_folds
        return optuna.pruners.HyperbandPruner(
            min_resource=5 if holdout else 1, max_resource=max_resource
        )
    return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=2)


def _max_value(param: Any) -> int:
    if hasattr(param, "high"):
        return int(param.high)
    if hasattr(param, "choices"):
        return int(max(param.choices))
    return int(param)
