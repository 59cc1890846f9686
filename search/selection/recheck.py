"""The winner's-curse guard: the top trials scored again on fresh folds (another seed;
holdout becomes k-fold) with other model seeds, through the space's engine; each fold
model's out-of-fold outputs kept for the ensemble and the threshold."""

from __future__ import annotations

import keras
import numpy as np
from optuna.trial import FrozenTrial

from search.attrs import Trial
from search.data.foldarrays import FoldArrays, fold_arrays
from search.data.foldcache import KEEP_BYTES, FoldCache
from search.data.folds import Fold, make_folds
from search.engines.base import Member, collect_garbage, trial_seed
from search.engines.choose import engine_for
from search.errors import SearchFailed
from search.models.forward import predict
from search.names import ONE_FOLD
from search.params import TrialParams
from search.prepare import Prepared
from search.progress import Ticker
from search.selection.evaluation import Candidate
from search.space.schema import ValidationSpec

RECHECK_SEED = 10_007  # model seeds of the recheck differ from the search's
# per trial: the recheck folds' validation rows (positions among the training rows) and
# the fold model's outputs there
Outputs = dict[int, list[tuple[np.ndarray, np.ndarray]]]


def recheck_folds(prep: Prepared) -> list[Fold]:
    """New folds (another seed, holdout becomes k-fold) on the same training rows."""
    space, data = prep.space, prep.data
    spec = space.validation
    scheme = "kfold" if spec.scheme in ONE_FOLD else spec.scheme
    check = ValidationSpec(
        scheme=scheme, folds=space.selection.recheck_folds, repeats=1, stratify=spec.stratify
    )
    groups = data.groups[prep.split.train] if data.groups is not None else None
    return make_folds(
        check,
        data.y[prep.split.train],
        classification=data.is_classifier,
        seed=space.data.seed + 1,
        groups=groups,
        where=space.path or "<space>",
    )


def recheck(
    prep: Prepared,
    trials: list[FrozenTrial],
    say: Ticker | None = None,
    outputs: Outputs | None = None,
) -> list[Candidate]:
    """Guard against the winner's curse: score the top trials again on fresh folds (all of
    them in one call of the space's engine: one pack, or one model at a time). With
    `outputs`, each fold model's validation rows and outputs are kept there by trial."""
    folds = recheck_folds(prep)
    by_index = {f.index: f for f in folds}
    metric = prep.space.objective.metric
    members = _members(prep, trials, folds)
    values: dict[int, list[float]] = {t.number: [] for t in trials}
    say = say or Ticker(None)
    what = f"recheck: {len(trials)} candidates x {len(folds)} new folds"
    say(f"{what} (trials {', '.join(str(t.number) for t in trials)})", force=True)

    def tick(member: Member, epoch: int, logs: dict[str, float]) -> bool:
        say(f"{what}: trial {member.trial}, fold {member.fold + 1}, epoch {epoch + 1}")
        return False

    engine, _ = engine_for(prep.space, prep.data)
    for i, done in enumerate(engine.train(members, prep.data, tick), 1):
        if done.result is None:
            raise done.error or SearchFailed(f"recheck of trial {done.member.trial} failed")
        values[done.member.trial].append(done.result.scores[metric])
        if outputs is not None and done.build is not None:
            out = predict(done.build(), done.member.arrays.x_val)
            outputs.setdefault(done.member.trial, []).append((by_index[done.member.fold].val, out))
        say(f"{what}: {i} of {len(members)} fold models done")
    keras.backend.clear_session(free_memory=False)
    collect_garbage()
    return [
        Candidate(
            t.number,
            float(t.value or 0.0),
            float(np.mean(values[t.number])),
            float(np.std(values[t.number])),
        )
        for t in trials
    ]


def _members(prep: Prepared, trials: list[FrozenTrial], folds: list[Fold]) -> list[Member]:
    """Each candidate on each new fold, with the recheck's own model seeds."""

    def make(index: int, max_tokens: int | None) -> FoldArrays:
        fold = next(f for f in folds if f.index == index)
        return fold_arrays(prep.data, prep.split.train, fold, max_tokens)

    cache = FoldCache(make, max(KEEP_BYTES, prep.data.nbytes))

    def rows(fold: Fold, max_tokens: int | None) -> FoldArrays:
        return cache.fold((fold.index, max_tokens))

    return [
        Member(t.number, f.index, params, seed + f.index, rows(f, params.max_tokens))
        for t in trials
        for params in [TrialParams.read(t.user_attrs[Trial.PARAMS])]
        for seed in [trial_seed(prep.space.study.seed, t.number) + RECHECK_SEED]
        for f in folds
    ]
