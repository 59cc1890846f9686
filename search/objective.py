"""One trial: for each fold, fit a fresh model with early stopping; aggregate the fold scores."""

from __future__ import annotations

import dataclasses
import gc
import io
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import optuna

from search.data import Dataset, TestSplit, make_preprocessor
from search.errors import TrialFailed
from search.feed import fit_inputs, validation_inputs
from search.folds import Fold
from search.metrics import DATA_LOSS, EPOCH_KEYS, keras_metrics, scores
from search.model import build_state, make_model, penalty, predict, summary_text
from search.space import Space
from search.tracking import RunWriter
from search.trackproc import pending


@dataclass(frozen=True)
class FoldArrays:
    """A fold's rows, preprocessed with statistics of its training rows only."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


@dataclass(frozen=True)
class FoldResult:
    index: int
    scores: dict[str, float]
    best_epoch: int
    epochs: int
    history: dict[str, list[float]]
    fit_s: float = 0.0  # seconds inside Keras `fit` (the benchmark's overhead measure)
    build_s: float = 0.0  # seconds building, compiling and making the variables of the model


@dataclass
class SearchContext:
    """What every trial of a study shares; the test rows are not in it."""

    space: Space
    data: Dataset
    split: TestSplit
    folds: list[Fold]
    tracker: RunWriter
    parent_run_id: str
    tags: dict[str, str]
    on_fold: Callable[[int, int], None] | None = None  # (fold index, folds) -> progress line
    _arrays: dict[int, FoldArrays] = field(default_factory=dict)

    def arrays(self, fold: Fold) -> FoldArrays:
        """Preprocess a fold once per search and reuse it in every trial."""
        if fold.index not in self._arrays:
            self._arrays[fold.index] = fold_arrays(self.data, self.split.train, fold)
        return self._arrays[fold.index]


def fold_arrays(data: Dataset, rows: np.ndarray, fold: Fold) -> FoldArrays:
    """Fit the preprocessing on the fold's training rows only, then transform both parts."""
    X, y = data.X, data.y
    tr, va = rows[fold.train], rows[fold.val]
    pre = make_preprocessor(X).fit(X.iloc[tr])
    return FoldArrays(
        pre.transform(X.iloc[tr]).astype(np.float32),
        y[tr],
        pre.transform(X.iloc[va]).astype(np.float32),
        y[va],
    )


def trial_seed(study_seed: int, number: int) -> int:
    return (study_seed * 100_003 + number) % (2**31 - 1)


def steps_per_execution(space: Space) -> int:
    value = space.training.steps_per_execution
    return 16 if value == "auto" else int(value)


def precision(space: Space) -> str:
    """The Keras dtype policy of the space's models.

    `auto` is float32: on an H100, mixed_bfloat16 made MLPs up to 3 x 1024 units 7-14%
    slower per epoch (bench/gpu.py); it pays off for wider or convolutional models, where
    the space file can ask for it.
    """
    value = space.training.precision
    return "float32" if value == "auto" else value


def collect_garbage() -> None:
    """Free the previous trial's models (TensorFlow keeps them in reference cycles).

    A full collection walks every object the collector tracks: with TensorFlow, Keras and
    MLflow loaded, 0.39 s. What survives each collection (libraries, data, the state a
    first model leaves in Keras) is frozen into CPython's permanent generation, so the
    next one walks only what the last trial made: 138 -> 11 ms a trial over 60 trials,
    the same RSS at every trial (objects that die by reference counting still die).
    """
    gc.collect()
    gc.freeze()


_LIBRARIES_FROZEN = [False]


def freeze_libraries() -> None:
    """Before a process's first trial: freeze what exists (libraries, data) without a
    full collection first (0.4 s saved once per process; the little garbage imports
    leave stays). Once per process, whatever `backend.start` froze before MLflow and
    the data were loaded; later searches in the process rely on `collect_garbage`."""
    if not _LIBRARIES_FROZEN[0]:
        gc.freeze()
        _LIBRARIES_FROZEN[0] = True


STOP = threading.Event()  # set by a worker's signal handler: end the trial at the next epoch


class _StopOnRequest(keras.callbacks.Callback):  # type: ignore[misc]
    """Turn a stop request into KeyboardInterrupt at an epoch boundary (Ctrl-C on a pool)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt("stop requested")


class _ValidationDataLoss(keras.callbacks.Callback):  # type: ignore[misc]
    """Log `val_data_loss`: Keras' val_loss less the L1/L2 penalty of the current weights.

    Keras adds the penalty to val_loss, so a strongly regularized model looks worse than its
    predictions are, and one whose weights shrink looks better while its predictions get
    worse. The objective scores the predictions alone (log loss, MSE); early stopping, the
    restored epoch and the pruner follow the same number. Listed first, so that the
    callbacks after it and the history see the value.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is not None and "val_loss" in logs:
            logs[DATA_LOSS] = float(logs["val_loss"]) - penalty(self.model)


class _PruneOnEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Report a per-epoch value to Optuna; stop training when the pruner says so."""

    def __init__(self, trial: optuna.Trial, key: str) -> None:
        super().__init__()
        self.trial, self.key, self.pruned_at = trial, key, -1

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        value = (logs or {}).get(self.key)
        if value is None or not math.isfinite(value):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned_at = epoch
            self.model.stop_training = True


class ModelReuse:
    """One compiled model for all folds of a trial (or a candidate's recheck).

    Each fold still starts from a freshly built, freshly seeded model: its variables
    (weights, normalisation statistics, dropout RNG state) are copied into the held model
    and the optimizer's variables go back to their starting values. What is saved is the
    held model's traced (TensorFlow) or compiled (JAX) train and test steps: most of a
    fold's first epoch, 0.7 s on the default space (bench/overhead.py).
    """

    def __init__(self) -> None:
        self.model: keras.Model | None = None
        self._optimizer_start: list[np.ndarray] = []

    def take(self, fresh: keras.Model) -> keras.Model:
        held = self.model
        if held is None or not self._fits(held, fresh):
            fresh.optimizer.build(fresh.trainable_variables)
            self.model = fresh
            self._optimizer_start = [
                keras.ops.convert_to_numpy(v) for v in fresh.optimizer.variables
            ]
            return fresh
        for target, source in zip(held.variables, fresh.variables, strict=True):
            target.assign(source)
        for target, value in zip(held.optimizer.variables, self._optimizer_start, strict=True):
            target.assign(value)
        return held

    def _fits(self, held: keras.Model, fresh: keras.Model) -> bool:
        shapes = [(tuple(v.shape), v.dtype) for v in held.variables]
        return shapes == [(tuple(v.shape), v.dtype) for v in fresh.variables] and len(
            held.optimizer.variables
        ) == len(self._optimizer_start)


def fit_fold(
    params: dict[str, Any],
    arrays: FoldArrays,
    *,
    data: Dataset,
    seed: int,
    spe: int,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 0,
    reuse: ModelReuse | None = None,
) -> tuple[keras.Model, FoldResult]:
    """Fit a freshly seeded model on a fold with early stopping on the validation loss of
    its predictions (`val_data_loss`); restore the best weights. With `reuse`, the fold's
    fresh model trains inside the held one."""
    keras.utils.set_random_seed(seed)
    build_started = time.perf_counter()
    model = make_model(
        params,
        n_features=arrays.x_train.shape[1],
        task=data.task,
        n_classes=data.n_classes,
        steps_per_execution=spe,
        metrics=keras_metrics(data.task),
    )
    if reuse is not None:
        model = reuse.take(model)
    build_state(model, arrays.x_train, arrays.y_train)
    build_s = time.perf_counter() - build_started
    stop = keras.callbacks.EarlyStopping(
        monitor=DATA_LOSS,
        mode="min",
        patience=int(params["patience"]),
        restore_best_weights=True,
    )
    train = fit_inputs(
        arrays.x_train, arrays.y_train, batch_size=int(params["batch_size"]), seed=seed
    )
    fit_started = time.perf_counter()
    fit = model.fit(
        **train,
        **validation_inputs(arrays.x_val, arrays.y_val),
        epochs=int(params["epochs"]),
        callbacks=[
            _ValidationDataLoss(),
            stop,
            keras.callbacks.TerminateOnNaN(),
            _StopOnRequest(),
            *(callbacks or []),
        ],
        verbose=verbose,
    )
    fit_s = time.perf_counter() - fit_started
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    losses = np.asarray(history.get("loss", []), dtype=float)
    if losses.size == 0 or not np.all(np.isfinite(losses)):
        bad = int(np.flatnonzero(~np.isfinite(losses))[0]) + 1 if losses.size else 0
        raise TrialFailed(
            f"training diverged: loss became NaN/inf at epoch {bad} "
            f"(learning_rate={params['learning_rate']:.3g})"
        )
    output = predict(model, arrays.x_val)
    if not np.all(np.isfinite(output)):
        raise TrialFailed("the model predicts NaN/inf on the validation rows")
    val = np.asarray(history[DATA_LOSS], dtype=float)
    best = int(np.nanargmin(val)) + 1 if np.isfinite(val).any() else len(val)
    result = FoldResult(
        index=-1,
        scores=scores(data.task, arrays.y_val, output),
        best_epoch=best,
        epochs=len(losses),
        history=history,
        fit_s=fit_s,
        build_s=build_s,
    )
    return model, result


def origin(trial: optuna.Trial, sampler: str) -> str:
    """Where a trial's parameters came from: the space's center, a retry, or the sampler."""
    attrs = trial.user_attrs
    return "retry" if "retry_of" in attrs else str(attrs.get("start", sampler))


class Objective:
    """The callable handed to `study.optimize`."""

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx
        freeze_libraries()

    def __call__(self, trial: optuna.Trial) -> float:
        collect_garbage()
        ctx, space = self.ctx, self.ctx.space
        params = space.suggest(trial) | {"precision": precision(space)}
        if space.model.hypermodel:
            params |= self._hypermodel_values(trial)
        seed = trial_seed(space.study.seed, trial.number)
        run_id = ctx.tracker.child_run(
            ctx.parent_run_id,
            f"trial-{trial.number}",
            role="trial",
            tags={
                **ctx.tags,
                "search.trial": str(trial.number),
                "search.seed": str(seed),
                "search.origin": origin(trial, ctx.space.study.sampler),
            },
        )
        if not pending(run_id):  # known at once: a crashed worker's trial still names it
            trial.set_user_attr("mlflow_run_id", run_id)
        trial.set_user_attr("seed", seed)
        started = time.perf_counter()
        try:
            value = self._run_folds(trial, params, seed, run_id)
        except optuna.TrialPruned as exc:
            ctx.tracker.log(
                run_id,
                metrics={"duration_s": time.perf_counter() - started},
                tags={"search.state": "PRUNED"},
            )
            ctx.tracker.end(run_id, "KILLED", reason=str(exc) or "pruned")
            raise
        except BaseException as exc:
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason)
            state = "INTERRUPTED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            ctx.tracker.log(run_id, tags={"search.state": state})
            ctx.tracker.end(run_id, "KILLED" if state == "INTERRUPTED" else "FAILED", reason=reason)
            raise
        finally:
            if pending(run_id):  # created in the background: its id is known by now
                resolved = ctx.tracker.resolve(run_id)
                if resolved:
                    trial.set_user_attr("mlflow_run_id", resolved)
        ctx.tracker.log(
            run_id,
            metrics={"duration_s": time.perf_counter() - started},
            tags={"search.state": "COMPLETE"},
        )
        ctx.tracker.end(run_id)
        return value

    def _hypermodel_values(self, trial: optuna.Trial) -> dict[str, Any]:
        """Build the hypermodel once with Optuna behind `hp` to sample its values."""
        from search.hypermodel import OptunaHyperParameters, build, load_hypermodel

        space = self.ctx.space
        assert space.model.hypermodel is not None
        hypermodel = load_hypermodel(space.model.hypermodel, space.base_dir)
        hp = OptunaHyperParameters(trial)
        build(hypermodel, hp)
        keras.backend.clear_session()
        for note in hp.notes:
            trial.set_user_attr("hypermodel_note", note)
        return {
            "hypermodel": space.model.hypermodel,
            "hypermodel_dir": str(space.base_dir),
            "hp": dict(hp.values),
        }

    def _run_folds(
        self, trial: optuna.Trial, params: dict[str, Any], seed: int, run_id: str
    ) -> float:
        ctx, space = self.ctx, self.ctx.space
        metric, holdout = space.objective.metric, len(ctx.folds) == 1
        results: list[FoldResult] = []
        summary = ""
        flat = flat_params(params)
        ctx.tracker.log(run_id, params=flat)
        # One traced model for the trial's folds; a single fold has nothing to reuse it for.
        reuse = ModelReuse() if len(ctx.folds) > 1 else None
        try:
            for fold in ctx.folds:
                if ctx.on_fold is not None:
                    ctx.on_fold(fold.index, len(ctx.folds))
                result, text = self._run_fold(trial, fold, params, seed, run_id, holdout, reuse)
                summary = summary or text
                results.append(result)
                value = result.scores[metric]
                if not math.isfinite(value):
                    raise TrialFailed(f"fold {fold.index}: {metric} is {value}")
                if not holdout:
                    # Wilcoxon compares fold by fold; the others see the running mean, which
                    # estimates the final score better than one noisy fold does.
                    raw = space.study.pruner == "wilcoxon"
                    mean = float(np.mean([r.scores[metric] for r in results]))
                    trial.report(value if raw else mean, fold.index)
                    if trial.should_prune():
                        self._log_trial(trial, run_id, results, params, summary)
                        raise optuna.TrialPruned(
                            f"pruned after fold {fold.index} ({metric}={value:.4g})"
                        )
            return self._log_trial(trial, run_id, results, params, summary)
        finally:
            if reuse is not None:
                reuse.model = None
            keras.backend.clear_session(free_memory=False)

    def _run_fold(
        self,
        trial: optuna.Trial,
        fold: Fold,
        params: dict[str, Any],
        seed: int,
        run_id: str,
        holdout: bool,
        reuse: ModelReuse | None,
    ) -> tuple[FoldResult, str]:
        ctx = self.ctx
        fold_run = ctx.tracker.child_run(
            run_id,
            f"trial-{trial.number}-fold-{fold.index}",
            role="fold",
            tags={**ctx.tags, "search.trial": str(trial.number), "search.fold": str(fold.index)},
        )
        callbacks: list[keras.callbacks.Callback] = []
        key = EPOCH_KEYS.get(ctx.space.objective.metric)
        if holdout and key:
            callbacks.append(_PruneOnEpoch(trial, key))
        try:
            model, result = fit_fold(
                params,
                ctx.arrays(fold),
                data=ctx.data,
                seed=seed + fold.index,
                spe=steps_per_execution(ctx.space),
                callbacks=callbacks,
                verbose=ctx.space.training.verbose,
                reuse=reuse,
            )
        except BaseException as exc:
            ctx.tracker.end(fold_run, "FAILED", reason=f"{type(exc).__name__}: {exc}")
            keras.backend.clear_session()
            raise
        result = dataclasses.replace(result, index=fold.index)
        summary = summary_text(model) if fold.index == 0 else ""
        del model
        series = [(k, e, v) for k, vals in result.history.items() for e, v in enumerate(vals)]
        ctx.tracker.log(
            fold_run,
            params={"fold": fold.index, "train_rows": len(fold.train), "val_rows": len(fold.val)},
            metrics={
                **{f"val_{k}": v for k, v in result.scores.items()},
                "best_epoch": result.best_epoch,
                "epochs": result.epochs,
            },
            series=[(f"epoch/{k}", e, v) for k, e, v in series],
        )
        pruned = any(isinstance(c, _PruneOnEpoch) and c.pruned_at >= 0 for c in callbacks)
        ctx.tracker.end(fold_run, "KILLED" if pruned else "FINISHED")
        ctx.tracker.log(run_id, series=[(f"fold_{fold.index}/{k}", e, v) for k, e, v in series])
        if pruned:
            trial.set_user_attr("epochs", [result.epochs])
            trial.set_user_attr("fit_s", result.fit_s)
            trial.set_user_attr("build_s", result.build_s)
            raise optuna.TrialPruned(f"pruned at epoch {result.epochs}")
        return result, summary

    def _log_trial(
        self,
        trial: optuna.Trial,
        run_id: str,
        results: list[FoldResult],
        params: dict[str, Any],
        summary: str,
    ) -> float:
        ctx, space = self.ctx, self.ctx.space
        metric = space.objective.metric
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
        ctx.tracker.log(run_id, metrics=metrics)
        ctx.tracker.log_text(run_id, ctx.space.text, "space.yaml")
        ctx.tracker.log_json(run_id, params, "params.json")
        ctx.tracker.log_text(run_id, history_csv(results), "history.csv")
        if summary:
            ctx.tracker.log_text(run_id, summary, "model_summary.txt")
        trial.set_user_attr("score_std", spread)
        trial.set_user_attr("best_epochs", best_epochs)
        trial.set_user_attr("epochs", [r.epochs for r in results])
        trial.set_user_attr("fit_s", sum(r.fit_s for r in results))
        trial.set_user_attr("build_s", sum(r.build_s for r in results))
        trial.set_user_attr("val_loss_min", [min(r.history["val_loss"]) for r in results])
        trial.set_user_attr("fold_scores", [r.scores[metric] for r in results])
        trial.set_user_attr("cv_scores", agg)
        trial.set_user_attr("params", params)
        return value


def flat_params(params: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in params.items() if k not in ("widths", "hp", "hypermodel_dir")}
    flat.update({f"hp.{k}": v for k, v in params.get("hp", {}).items()})
    if "hypermodel" in params:  # the MLP's own architecture does not apply
        return {
            k: v
            for k, v in flat.items()
            if k not in ("depth", "activation", "dropout", "l1", "l2", "batch_norm")
        }
    flat.update({f"width_{i}": w for i, w in enumerate(params["widths"])})
    return flat


def history_csv(results: list[FoldResult]) -> str:
    keys = sorted({k for r in results for k in r.history})
    out = io.StringIO()
    out.write(",".join(["fold", "epoch", *keys]) + "\n")
    for r in results:
        for e in range(r.epochs):
            row = [str(r.history[k][e]) if e < len(r.history.get(k, [])) else "" for k in keys]
            out.write(",".join([str(r.index), str(e + 1), *row]) + "\n")
    return out.getvalue()
