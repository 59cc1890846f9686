"""The study's MLflow parent run through its life: created (or reopened) with the study's
settings and its test split, its id kept in the study, closed with the counts and the best
trial."""

from __future__ import annotations

import json
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial

from search.attrs import Study, Trial
from search.prepare import Prepared
from search.space.file import ran_text
from search.study import counts
from search.tracking.environment import environment_tags
from search.tracking.runs import RunWriter


def parent_run(
    tracker: RunWriter, study: optuna.Study, prep: Prepared, *, remember: bool = True
) -> str:
    """Reopen the study's MLflow parent run, or create it with the study's settings.

    `remember` stores its id (and the experiment's) in the study now; a `TrackingProcess`
    creates the run in the background, so `run_search` stores them after the first trial
    (`remember_parent`) instead of waiting for MLflow's start.
    """
    space, data, split = prep.space, prep.data, prep.split
    parent = tracker.study_run(
        study.study_name,
        run_id=study.user_attrs.get(Study.RUN_ID),
        tags={"search.data_fingerprint": data.fingerprint, **environment_tags()},
        params=_study_params(prep),
        files={
            "space.yaml": ran_text(space),
            "test_split.json": json.dumps(
                {"seed": split.seed, "test": split.test.tolist(), "fingerprint": data.fingerprint},
                indent=2,
            ),
        },
    )
    if remember:
        remember_parent(tracker, parent)(study, None)
    return parent


def _study_params(prep: Prepared) -> dict[str, object]:
    """The study's settings as its run's parameters: data, test split, validation, search."""
    space, data, split = prep.space, prep.data, prep.split
    return {
        "data.source": space.data.source,
        "data.task": data.task,
        "data.rows": len(data.y),
        "data.dropped_rows": data.dropped_rows,
        "data.features": data.X.shape[1],
        **{
            f"data.columns.{col}": kind
            for col, kind in prep.columns.items()
            if kind not in ("number", "onehot")
        },
        "test.rows": len(split.test),
        "test.seed": split.seed,
        "test.source": space.data.test_source or "held out of data.source",
        "test.digest": split.digest(),
        "validation.scheme": space.validation.scheme,
        "validation.folds": len(prep.folds),
        "sampler": space.study.sampler,
        "pruner": type(prep.pruner).__name__,
        "metric": space.objective.metric,
        "direction": space.direction,
    }


def remember_parent(
    tracker: RunWriter, parent: str
) -> Callable[[optuna.Study, FrozenTrial | None], None]:
    """A study callback that stores the parent run's and the experiment's ids, once: after
    that it neither waits nor reads the storage again."""
    done = False

    def callback(study: optuna.Study, trial: FrozenTrial | None) -> None:
        nonlocal done
        if done:
            return
        run_id = tracker.resolve(parent)
        if run_id and study.user_attrs.get(Study.RUN_ID) != run_id:
            study.set_user_attr(Study.RUN_ID, run_id)
            study.set_user_attr(Study.EXPERIMENT_ID, tracker.experiment_id)
        done = True

    return callback


def close_parent(tracker: RunWriter, parent: str, study: optuna.Study, status: str) -> None:
    c = counts(study)
    metrics = {f"trials_{k}": float(v) for k, v in c.items()}
    try:
        best = study.best_trial
        metrics["best_score"] = float(best.value or 0.0)
        metrics["best_trial"] = float(best.number)
    except ValueError:
        best = None
    tracker.log(parent, metrics=metrics)
    if best is not None:
        tracker.log_json(
            parent,
            {
                "number": best.number,
                "value": best.value,
                "params": best.user_attrs.get(Trial.PARAMS, best.params),
            },
            "best_trial.json",
        )
    tracker.end(parent, status)
    tracker.flush()
