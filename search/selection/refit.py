"""The final model: the chosen parameters refitted on all training rows."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from optuna.trial import FrozenTrial

from search.attrs import Trial
from search.data.dataset import make_preprocessor, shaped
from search.data.foldarrays import FoldArrays
from search.data.folds import Fold
from search.data.target import target_scale
from search.engines.base import steps_per_execution, stop_rule, trial_seed
from search.engines.feed import fit_inputs, release
from search.engines.sequential import fit_fold, own_fit_hypermodel
from search.models.build import build_state, keras_targets, make_model
from search.models.hypermodel import fit_with
from search.models.knobs import class_weights, lr_callbacks
from search.params import TrialParams
from search.prepare import Prepared, refit_folds
from search.progress import Ticker


@dataclass
class Final:
    """The refitted preprocessing and network(s); `trials[i]` made `nets[i]`, whose output
    weighs `weights[i]` in the mean (all equal unless an ensemble of trials)."""

    pre: Any
    nets: list[Any]
    epochs: int
    trials: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    threshold: float = 0.5  # a binary task's decision threshold (objective.threshold)

    def of(self, trial: int) -> Final:
        """The networks of one trial alone."""
        keep = [i for i, t in enumerate(self.trials) if t == trial]
        return Final(self.pre, [self.nets[i] for i in keep], self.epochs, [trial] * len(keep))


def refit_ensemble(
    prep: Prepared, trials: list[FrozenTrial], weights: dict[int, int], say: Ticker | None = None
) -> Final:
    """Each trial of an ensemble refitted (search.selection.ensemble); the first trial's epochs are
    the ensemble's to report."""
    parts = [refit(prep, t, say) for t in trials]
    final = Final(parts[0].pre, [], parts[0].epochs)
    for trial, part in zip(trials, parts, strict=True):
        final.nets += part.nets
        final.trials += [trial.number] * len(part.nets)
        final.weights += [weights[trial.number] / len(part.nets)] * len(part.nets)
    return final


def refit(prep: Prepared, trial: FrozenTrial, say: Ticker | None = None) -> Final:
    """Refit on all training rows for the median best epoch (or keep the fold models)."""
    epochs = max(1, round(statistics.median(trial.user_attrs[Trial.BEST_EPOCHS])))
    seed = trial_seed(prep.space.study.seed, trial.number)
    say = say or Ticker(None)
    say(
        f"refit: trial {trial.number} on all {len(prep.split.refit_rows)} training rows, "
        f"{epochs} epochs",
        force=True,
    )
    final = refit_params(
        prep, TrialParams.read(trial.user_attrs[Trial.PARAMS]), epochs=epochs, seed=seed, say=say
    )
    final.trials = [trial.number] * len(final.nets)
    return final


def refit_params(
    prep: Prepared,
    params: TrialParams,
    *,
    epochs: int,
    seed: int,
    say: Ticker | None = None,
) -> Final:
    data, rows = prep.data, prep.split.refit_rows
    tokens = params.max_tokens or data.max_tokens
    pre = make_preprocessor(data.encodings, tokens).fit(data.X.iloc[rows])
    x = shaped(data, pre.transform(data.X, rows).astype(np.float32, copy=False))
    spe = steps_per_execution(prep.space)
    if prep.space.selection.refit == "ensemble":
        nets = [_fold_net(prep, x, f, params, seed + f.index, spe) for f in refit_folds(prep)]
        return Final(pre, nets, epochs)
    keras.utils.set_random_seed(seed)
    net = make_model(
        params,
        n_features=x.shape[1:],
        task=data.task,
        n_classes=data.n_classes,
        steps_per_execution=spe,
    )
    y = keras_targets(net, data.y[rows], data.n_classes)
    build_state(net, x, y)
    target = target_scale(params, y)
    if target is not None:  # standardized on all training rows (search.data.target)
        y = target.forward(y)
    _fit_all(net, params, x, y, data.y[rows], n_classes=data.n_classes, epochs=epochs,
             seed=seed, say=say or Ticker(None))  # fmt: skip
    if target is not None:
        target.fold_into(net)
    return Final(pre, [net], epochs)


def _fit_all(
    net: Any,
    params: TrialParams,
    x: np.ndarray,
    y: np.ndarray,
    labels: np.ndarray,
    *,
    n_classes: int,
    epochs: int,
    seed: int,
    say: Ticker,
) -> None:
    """Train for exactly `epochs` on every row (no validation rows are left to stop on)."""
    run = {
        "epochs": epochs,
        "verbose": 0,
        "callbacks": [
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda e, logs: say(f"refit: epoch {e + 1} of {epochs}")
            ),
            *lr_callbacks(params),  # the schedule; a plateau needs validation rows
        ],
    }
    hypermodel = own_fit_hypermodel(params)
    if hypermodel is not None:  # a KerasTuner HyperModel trains with its own fit
        fit_with(hypermodel, params, net, x=x, y=y, **run)
        return
    weights = class_weights(params, labels, n_classes)
    train = fit_inputs(x, y, batch_size=params.batch_size, seed=seed)
    try:
        net.fit(**train, class_weight=weights, **run)
    finally:
        release(train)


def _fold_net(
    prep: Prepared, x: np.ndarray, fold: Fold, params: TrialParams, seed: int, spe: int
) -> Any:
    y = prep.data.y[prep.split.refit_rows]
    arrays = FoldArrays(x[fold.train], y[fold.train], x[fold.val], y[fold.val])
    net, _ = fit_fold(
        params, arrays, data=prep.data, seed=seed, spe=spe, rule=stop_rule(prep.space)
    )
    return net
