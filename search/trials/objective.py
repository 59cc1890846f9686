"""One trial: suggest its parameters, train its folds through an engine, report, aggregate.

`TrialRun` is one trial's life, in steps an engine's results drive: the members to train,
a fold done (logged, reported to the pruner), the trial complete, pruned or failed. The
`Objective` runs one trial at a time; `search.trials.packs` runs several at once through one
engine call.
"""

from __future__ import annotations

import math
import time

import keras
import numpy as np
import optuna

from search.attrs import Trial
from search.data.foldarrays import FoldArrays
from search.data.folds import Fold
from search.engines.base import (
    FoldResult,
    Member,
    Trained,
    collect_garbage,
    freeze_libraries,
    precision,
    trial_seed,
)
from search.errors import TrialFailed
from search.metrics import DATA_LOSS, EPOCH_KEYS
from search.models.forward import summary_text
from search.models.hypermodel import hypermodel_values
from search.models.knobs import own_loss
from search.params import TrialParams
from search.records import flat_params, history_csv
from search.space.file import ran_text
from search.space.sampling import suggest
from search.space.schema import Space
from search.tracking.recorder import FoldRecorder
from search.trials.context import SearchContext, origin


class Objective:
    """The callable handed to `study.optimize`: one trial through the context's engine."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        freeze_libraries()

    def __call__(self, trial: optuna.Trial) -> float:
        collect_garbage()
        try:
            run = TrialRun(self.ctx, trial)
        except Exception as exc:  # its parameters could not be drawn: recorded, study goes on
            trial.set_user_attr(Trial.FAIL_REASON, f"{type(exc).__name__}: {exc}")
            raise
        try:
            for trained in self.ctx.trial_engine().train(
                run.members(), self.ctx.data, run.on_epoch
            ):
                run.fold_done(trained)
        except BaseException as exc:
            run.stopped(exc)
            raise
        finally:
            run.name_run()
            keras.backend.clear_session(free_memory=False)
        return run.complete()


def trial_params(trial: optuna.Trial, space: Space) -> TrialParams:
    """What one trial means: its space's knobs sampled by Optuna, the precision its models
    train in, and a hypermodel's own values."""
    params = suggest(space.params, trial).with_values(precision=precision(space))
    if space.model.hypermodel:
        params = params.with_values(**hypermodel_values(trial, space))
    return params


class TrialRun:
    """One trial: its parameters, seed, MLflow run and fold results."""

    def __init__(self, ctx: SearchContext, trial: optuna.Trial) -> None:
        self.ctx, self.trial, space = ctx, trial, ctx.space
        if ctx.on_start is not None:
            ctx.on_start(trial)
        self.params = trial_params(trial, space)
        self.seed = trial_seed(space.study.seed, trial.number)
        self.results: list[FoldResult] = []
        self.summary = ""
        self.started = time.perf_counter()
        self.record = ctx.recorder.trial(
            trial.number,
            tags={
                **ctx.tags,
                "search.trial": str(trial.number),
                "search.seed": str(self.seed),
                "search.origin": origin(trial, space.study.sampler),
            },
            params=flat_params(self.params),
        )
        if known := self.record.run_id(wait=False):  # a crashed worker's trial
            trial.set_user_attr(Trial.RUN_ID, known)  # still names its run
        trial.set_user_attr(Trial.SEED, self.seed)

    def members(self) -> list[Member]:
        n, ctx = self.trial.number, self.ctx
        return [
            Member(n, f.index, self.params, self.seed + f.index, self._arrays(f)) for f in ctx.folds
        ]

    def _arrays(self, fold: Fold) -> FoldArrays:
        return self.ctx.arrays(fold, self.params.max_tokens)

    def on_epoch(self, member: Member, epoch: int, logs: dict[str, float]) -> bool:
        """Holdout: report the epoch's validation value to the pruner; True to stop."""
        if self.ctx.on_tick is not None:
            self.ctx.on_tick(epoch)
        key = EPOCH_KEYS.get(self.ctx.space.objective.metric)
        if len(self.ctx.folds) != 1 or key is None:
            return False
        if key == DATA_LOSS and own_loss(member.params, self.ctx.data.task):
            return False  # its val_data_loss is another loss than the objective's
        value = logs.get(key)
        if value is None or not math.isfinite(value):
            return False
        self.trial.report(float(value), epoch)
        if epoch + 1 >= member.params.epochs:  # the last epoch: nothing left to save
            return False
        return self.trial.should_prune()

    def fold_done(self, trained: Trained) -> None:
        """Log a fold; report it (k-fold); raise TrialPruned or TrialFailed to stop."""
        ctx, n, index = self.ctx, self.trial.number, trained.member.fold
        if ctx.on_fold is not None:
            ctx.on_fold(index, len(ctx.folds))
        fold_run = self.record.fold(
            f"trial-{n}-fold-{index}",
            tags={**ctx.tags, "search.trial": str(n), "search.fold": str(index)},
        )
        result = trained.result
        if result is None:
            error = trained.error or TrialFailed("the engine returned no result")
            fold_run.fail(f"{type(error).__name__}: {error}")
            raise error
        if index == 0 and trained.build is not None:
            self.summary = summary_text(trained.build())
        trained.build = None
        if index == self.ctx.folds[0].index:
            self._log_engine(trained)
        self._log_fold(fold_run, result, trained.pruned_at >= 0)
        if trained.pruned_at >= 0:
            self.trial.set_user_attr(Trial.EPOCHS, [result.epochs])
            self.trial.set_user_attr(Trial.FIT_S, result.fit_s)
            self.trial.set_user_attr(Trial.BUILD_S, result.build_s)
            raise optuna.TrialPruned(f"pruned at epoch {result.epochs}")
        self.results.append(result)
        self._report_fold(result)

    def _log_engine(self, trained: Trained) -> None:
        """How the trial was trained: the engine, and a pack's record for reproduce."""
        for key, value in trained.notes.items():
            self.trial.set_user_attr(key, value)
        engine = "pack" if trained.pack is not None else "sequential"
        tags = {"search.engine": engine}
        if why := trained.notes.get(Trial.ENGINE_REASON):
            tags["search.engine_reason"] = str(why)
            if self.ctx.on_note is not None:
                self.ctx.on_note(f"engine: sequential for trial {self.trial.number}: {why}")
        self.record.log(tags=tags)
        if trained.pack is not None:
            self.record.log_json(trained.pack, "pack.json")

    def _log_fold(self, fold_run: FoldRecorder, result: FoldResult, pruned: bool) -> None:
        index = result.index
        fold = self.ctx.folds[[f.index for f in self.ctx.folds].index(index)]
        series = [(k, e, v) for k, vals in result.history.items() for e, v in enumerate(vals)]
        fold_run.log(
            params={"fold": index, "train_rows": len(fold.train), "val_rows": len(fold.val)},
            metrics={
                **{f"val_{k}": v for k, v in result.scores.items()},
                "best_epoch": result.best_epoch,
                "epochs": result.epochs,
            },
            series=[(f"epoch/{k}", e, v) for k, e, v in series],
        )
        fold_run.end(pruned=pruned)  # stopped on purpose: FINISHED, PRUNED in a tag
        self.record.log(series=[(f"fold_{index}/{k}", e, v) for k, e, v in series])

    def _report_fold(self, result: FoldResult) -> None:
        metric = self.ctx.space.objective.metric
        value = result.scores[metric]
        if not math.isfinite(value):
            raise TrialFailed(f"fold {result.index}: {metric} is {value}")
        if len(self.ctx.folds) == 1:
            return
        # Wilcoxon compares fold by fold; the others see the running mean, which estimates
        # the final score better than one noisy fold does.
        raw = self.ctx.space.study.pruner == "wilcoxon"
        mean = float(np.mean([r.scores[metric] for r in self.results]))
        self.trial.report(value if raw else mean, result.index)
        last = len(self.results) == len(self.ctx.folds)  # done: nothing left to save
        if not last and self.trial.should_prune():
            self._log_trial()
            raise optuna.TrialPruned(
                f"pruned after fold {result.index + 1} of {len(self.ctx.folds)} "
                f"({metric}={value:.4g})"
            )

    def stopped(self, exc: BaseException) -> None:
        """End the trial's run as pruned, failed or interrupted by `exc`."""
        if isinstance(exc, optuna.TrialPruned):
            self.record.end("PRUNED", reason=str(exc) or "pruned", duration_s=self._elapsed())
            return
        interrupted = isinstance(exc, KeyboardInterrupt)  # Ctrl-C, SIGTERM, a pool's stop
        reason = "interrupted (Ctrl-C)" if interrupted else f"{type(exc).__name__}: {exc}"
        self.trial.set_user_attr(Trial.FAIL_REASON, reason)
        if interrupted:
            self.trial.set_user_attr(Trial.INTERRUPTED, True)  # retried by the next run
        self.record.end("INTERRUPTED" if interrupted else "FAILED", reason=reason)

    def name_run(self) -> None:
        """Store the trial's MLflow run id in the trial, if it is not there yet (a run
        created in the background: waits until it is known)."""
        if Trial.RUN_ID not in self.trial.user_attrs:
            run_id = self.record.run_id()
            if run_id:
                self.trial.set_user_attr(Trial.RUN_ID, run_id)

    def _elapsed(self) -> float:
        return time.perf_counter() - self.started

    def complete(self) -> float:
        """Log the trial's aggregate and end its run; the objective value."""
        if len(self.results) < len(self.ctx.folds):
            raise TrialFailed(f"{len(self.results)} of {len(self.ctx.folds)} folds trained")
        value = self._log_trial()
        self.record.end("COMPLETE", duration_s=self._elapsed())
        return value

    def _log_trial(self) -> float:
        ctx, trial, results = self.ctx, self.trial, self.results
        metric = ctx.space.objective.metric
        agg: dict[str, float] = {}
        for name in results[0].scores:
            values = np.array([r.scores[name] for r in results], dtype=float)
            agg[f"cv_{name}"] = float(np.mean(values))
            agg[f"cv_{name}_std"] = float(np.std(values))
        value, spread = agg[f"cv_{metric}"], agg[f"cv_{metric}_std"]
        best_epochs = [r.best_epoch for r in results]
        metrics = {
            **agg,
            "score": value,
            "score_std": spread,
            "best_epoch_median": float(np.median(best_epochs)),
            "folds_done": float(len(results)),
            **{f"fold_{r.index}/best_epoch": r.best_epoch for r in results},
            # not fold_i/{metric}: with metric "loss" it would land in the epoch series
            **{f"fold_{r.index}/score": r.scores[metric] for r in results},
        }
        self.record.log(metrics=metrics)
        self.record.log_text(ran_text(ctx.space), "space.yaml")
        self.record.log_json(self.params.record(), "params.json")
        self.record.log_text(history_csv(results), "history.csv")
        if self.summary:
            self.record.log_text(self.summary, "model_summary.txt")
        trial.set_user_attr(Trial.SCORE_STD, spread)
        trial.set_user_attr(Trial.BEST_EPOCHS, best_epochs)
        trial.set_user_attr(Trial.EPOCHS, [r.epochs for r in results])
        trial.set_user_attr(Trial.FIT_S, sum(r.fit_s for r in results))
        trial.set_user_attr(Trial.BUILD_S, sum(r.build_s for r in results))
        trial.set_user_attr(Trial.VAL_LOSS_MIN, [min(r.history["val_loss"]) for r in results])
        trial.set_user_attr(Trial.FOLD_SCORES, [r.scores[metric] for r in results])
        trial.set_user_attr(Trial.CV_SCORES, agg)
        trial.set_user_attr(Trial.PARAMS, self.params.record())
        return value
