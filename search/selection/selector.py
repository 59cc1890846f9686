"""Model selection: recheck the top trials, refit the winner, test it once, register it."""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from search.attrs import Study, Trial
from search.backend import deterministic
from search.data.dataset import shaped
from search.engines.base import trial_seed
from search.errors import InputError
from search.liveness import recover_stale
from search.metrics import tune_threshold
from search.models.outputs import network_output, output_frame
from search.names import METRICS
from search.prepare import Prepared, prepare
from search.progress import Ticker
from search.selection.ensemble import gain, greedy, out_of_fold, real_gain
from search.selection.evaluation import SelectionResult, evaluate
from search.selection.logged import selection_metrics
from search.selection.recheck import Outputs, recheck
from search.selection.refit import Final, refit, refit_ensemble
from search.space.file import ran_text
from search.space.schema import Space
from search.storage.optuna_private import storage_of
from search.study import DEFAULT_HOME, best_first, check_same_data, load_study, study_space
from search.tracking import (
    STUDY,
    Tracker,
    default_tracking_uri,
    environment_tags,
    log_champion,
    register_champion,
)
from search.tracking.champion import save_parts


def select(
    study_name: str,
    *,
    storage: str | None = None,
    home: str | Path = DEFAULT_HOME,
    tracking_uri: str | None = None,
    say: Ticker | None = None,
) -> SelectionResult:
    """Choose, refit and test the final model of a study; log and register it in MLflow.

    `say` hears how the recheck and the refit go, a line every few seconds.
    """
    say = say or Ticker(None)
    home = Path(home)
    study = load_study(study_name, storage, home)
    uri = tracking_uri or default_tracking_uri(home)
    recover_stale(storage_of(study), tracking_uri=uri, home=home, studies=[study_name])
    space = study_space(study)
    prep = prepare(space)
    check_same_data(study, prep)
    deterministic()
    complete = best_first(study)
    if not complete:
        raise InputError(f"study {study_name!r} has no complete trial to select from")
    tuned = space.objective.threshold == "tuned"
    outputs: Outputs | None = {} if space.selection.ensemble or tuned else None
    candidates = recheck(prep, complete[: space.selection.top_k], say, outputs)
    chosen = min(candidates, key=lambda c: c.recheck_score * _sign(space))
    trial = next(t for t in complete if t.number == chosen.trial)
    final, note = _final(prep, complete, trial, outputs or {}, say)
    if tuned:
        final.threshold = _threshold(prep, final, outputs or {})
    what = "the ensemble" if len(set(final.trials)) > 1 else f"trial {trial.number}"
    say(f"test: {what} and the baseline on the {len(prep.split.test)} test rows", force=True)
    result = evaluate(prep, final, chosen, candidates, study_name=study_name,
                      ensemble=note, threshold=final.threshold if tuned else None)  # fmt: skip
    say("logging the final model to MLflow and registering it ...", force=True)
    tracker = Tracker(uri, study_name, artifact_root=home / "artifacts")
    result = _log(tracker, study, prep, final, result, trial)
    _remember(study, trial.number, result)
    return result


def _remember(study: optuna.Study, trial: int, result: SelectionResult) -> None:
    """What `search best` shows without opening MLflow: the chosen trial, its run."""
    mark = {"trial": trial, "run_id": result.run_id, "version": result.version}
    study.set_user_attr(Study.SELECTED, mark)
    if result.promoted:
        study.set_user_attr(Study.CHAMPION, mark)


def _final(
    prep: Prepared,
    complete: list[FrozenTrial],
    trial: FrozenTrial,
    outputs: Outputs,
    say: Ticker,
) -> tuple[Final, str]:
    """The chosen trial refitted, or the ensemble of trials that beats it on the
    recheck's out-of-fold outputs (search.selection.ensemble); and a line saying which and why."""
    if len(outputs) < 2 or not prep.space.selection.ensemble:
        return refit(prep, trial, say), ""
    space, rows = prep.space, prep.split.train
    task, metric, y = prep.data.task, space.objective.metric, prep.data.y[rows]
    oof, minimize = out_of_fold(outputs, len(rows)), space.direction == "minimize"
    ensemble = greedy(task, metric, y, oof, start=trial.number, minimize=minimize)
    if len(ensemble.weights) < 2:
        return refit(prep, trial, say), f"no ensemble beats trial {trial.number} out of fold"
    n, seed = space.selection.bootstrap, space.data.seed
    diff = gain(task, metric, y, oof, ensemble, start=trial.number, n=n, seed=seed)
    text = (
        f"{ensemble.text(metric, trial.number)}; ensemble - single {diff} (95% paired "
        f"bootstrap over the {ensemble.rows} out-of-fold rows)"
    )
    if not real_gain(diff, minimize=minimize):
        return refit(prep, trial, say), (
            f"{text}: inside the noise, so trial {trial.number} stays alone"
        )
    text += ": outside the noise, so the ensemble is the model"
    say(text, force=True)
    members = [next(t for t in complete if t.number == k) for k in ensemble.weights]
    return refit_ensemble(prep, members, ensemble.weights, say), text


def _threshold(prep: Prepared, final: Final, outputs: Outputs) -> float:
    """The decision threshold that maximizes the objective on the final model's
    out-of-fold outputs (its trials' recheck outputs, weighted as in the model)."""
    rows = prep.split.train
    oof = out_of_fold(outputs, len(rows))
    weights = _trial_weights(final)
    mean: np.ndarray = np.sum([w * oof[t] for t, w in weights.items()], axis=0)
    mean = mean / sum(weights.values())
    covered = np.isfinite(mean).all(axis=1)
    y = prep.data.y[rows][covered]
    return tune_threshold(y, mean[covered], prep.space.objective.metric)


def _sign(space: Space) -> float:
    return 1.0 if space.direction == "minimize" else -1.0


def _log(
    tracker: Tracker,
    study: optuna.Study,
    prep: Prepared,
    final: Final,
    result: SelectionResult,
    trial: FrozenTrial,
) -> SelectionResult:
    """The selection run: the final test, the final model's record and the champion; the
    result with the run (and the registered champion) in it."""
    tags = {
        STUDY: study.study_name,
        "search.trial": str(trial.number),
        "search.seed": str(trial_seed(prep.space.study.seed, trial.number)),
        "search.data_fingerprint": prep.data.fingerprint,
        "search.space_dir": str(prep.space.base_dir),
        **environment_tags(),
    }
    parent = study.user_attrs[Study.RUN_ID]
    run = tracker.child_run(parent, "selection", role="selection", tags=tags)
    result = replace(result, run_id=run)
    tracker.log(
        run,
        params={
            "trial": trial.number,
            "refit": prep.space.selection.refit,
            "refit_epochs": final.epochs,
            "top_k": prep.space.selection.top_k,
            "ensemble": _weights_text(final),
            "threshold": final.threshold,
            "linear_model": result.linear_model,
        },
        metrics=selection_metrics(result, final.epochs),
    )
    if len(set(final.trials)) > 1:  # what `search reproduce` refits
        tracker.log_json(run, _ensemble_record(prep, study, final), "ensemble.json")
    tracker.log_text(run, str(result), "final_test.txt")
    tracker.log_json(run, [c.__dict__ for c in result.candidates], "candidates.json")
    tracker.log_json(run, trial.user_attrs[Trial.PARAMS], "params.json")
    tracker.log_text(run, ran_text(prep.space), "space.yaml")
    if prep.space.selection.champion:
        result = _register(tracker, study, prep, final, result)
    tracker.end(run)
    tracker.flush()
    return result


def _trial_weights(final: Final) -> dict[int, float]:
    """Each trial's share of the final model's mean output."""
    weights: dict[int, float] = {}
    for trial, weight in zip(final.trials, final.weights or [1.0] * len(final.trials), strict=True):
        weights[trial] = weights.get(trial, 0.0) + weight
    return weights


def _weights_text(final: Final) -> str:
    """`trial:weight` of an ensemble's trials ("" for a single trial)."""
    weights = _trial_weights(final)
    return ",".join(f"{t}:{w:g}" for t, w in weights.items()) if len(weights) > 1 else ""


def _ensemble_record(prep: Prepared, study: optuna.Study, final: Final) -> list[dict[str, object]]:
    """Each trial of the ensemble as the refit trained it: parameters, seed, epochs, weight."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    return [
        {
            "trial": number,
            "weight": weight,
            "params": trials[number].user_attrs[Trial.PARAMS],
            "seed": trial_seed(prep.space.study.seed, number),
            "epochs": max(
                1, round(statistics.median(trials[number].user_attrs[Trial.BEST_EPOCHS]))
            ),
        }
        for number, weight in _trial_weights(final).items()
    ]


def _register(
    tracker: Tracker, study: optuna.Study, prep: Prepared, final: Final, result: SelectionResult
) -> SelectionResult:
    """Log the final model and register it as the champion if it beats the current one."""
    data = prep.data
    model_uri = _log_model(tracker, prep, final, result.run_id)
    metric, digest = result.metric, prep.split.digest()
    score, higher = result.test[metric].value, METRICS[metric] == "maximize"

    def is_better(current: dict[str, str]) -> tuple[bool, str]:
        if current.get("test_digest") != digest:
            return False, "it was tested on another test split, so they cannot be compared"
        old = float(current.get(f"test_{metric}", "nan"))
        better = score > old if higher else score < old
        return better, f"test {metric} {score:.4f} vs {old:.4f}"

    tags = {
        "test_digest": digest,
        f"test_{metric}": repr(score),
        "trial": "+".join(map(str, dict.fromkeys(final.trials))),
        "data_fingerprint": data.fingerprint,
        "selection_run": result.run_id,
    }
    version, promoted, registry = register_champion(
        tracker, model_uri, study.study_name, tags=tags, is_better=is_better
    )
    return replace(
        result, model_uri=model_uri, version=version, promoted=promoted, registry=registry
    )


def _log_model(tracker: Tracker, prep: Prepared, final: Final, run_id: str) -> str:
    """The final model as an MLflow pyfunc on the selection run, with an input example
    and its output; the model's URI."""
    data = prep.data
    example = data.X.iloc[prep.split.train[:5]]
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = save_parts(
            Path(tmp),
            pre=final.pre,
            nets=final.nets,
            task=data.task,
            classes=list(data.labels),
            columns=list(data.X.columns),
            weights=final.weights,
            threshold=final.threshold,
            input_shape=data.input_shape,
        )
        x = shaped(data, final.pre.transform(example).astype(np.float32))
        out = network_output(final.nets, x, final.weights)
        output = output_frame(data.task, list(data.labels), out, final.threshold)
        return log_champion(tracker, run_id, artifacts=artifacts, example=example, output=output)
