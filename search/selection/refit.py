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
from search.engines.base import Member, Trained, trial_seed
from search.engines.sequential import sequential_engine
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
    """The preprocessing fitted on every training row, and the network(s) the sequential
    engine trains there: one for exactly `epochs`, or (`selection.refit: ensemble`) one
    per refit fold, each stopping early on its fold's validation rows."""
    data, rows = prep.data, prep.split.refit_rows
    tokens = params.max_tokens or data.max_tokens
    pre = make_preprocessor(data.encodings, tokens).fit(data.X.iloc[rows])
    x = shaped(data, pre.transform(data.X, rows).astype(np.float32, copy=False))
    y, engine = data.y[rows], sequential_engine(prep.space)
    if prep.space.selection.refit == "ensemble":
        folds = refit_folds(prep)
        members = [  # a trial number each: an engine's members of one trial share a model
            Member(
                -1 - f.index,
                f.index,
                params,
                seed + f.index,
                FoldArrays(x[f.train], y[f.train], x[f.val], y[f.val]),
            )
            for f in folds
        ]
        return Final(pre, [_built(t) for t in engine.train(members, data)], epochs)
    tick = say or Ticker(None)
    everything = FoldArrays(x, y, x[:0], y[:0])
    member = Member(-1, -1, params, seed, everything, epochs=epochs)

    def progress(_: Member, epoch: int, logs: dict[str, float]) -> bool:
        tick(f"refit: epoch {epoch + 1} of {epochs}")
        return False

    return Final(pre, [_built(t) for t in engine.train([member], data, progress)], epochs)


def _built(trained: Trained) -> keras.Model:
    """The trained network, or the reason it has none raised."""
    if trained.error is not None:
        raise trained.error
    assert trained.build is not None
    return trained.build()
