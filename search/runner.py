"""run_search: validate, open the study and its MLflow parent run, run trials, summarise."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from search import interrupt
from search.backend import deterministic
from search.liveness import (
    Heartbeat,
    fail_own_running,
    mark_started,
    recover_stale,
    retry_interrupted,
)
from search.objective import Objective, SearchContext
from search.packs import optimize_packs, pack_size
from search.progress import Progress
from search.records import shown_params
from search.redact import mask_password
from search.space import Space, load_space
from search.stores import check_stores
from search.study import (
    DEFAULT_HOME,
    Budget,
    Prepared,
    counts,
    open_storage,
    open_study,
    optimize,
    prepare,
)
from search.tracking import STUDY, RunWriter, default_tracking_uri, environment_tags
from search.tracking.process import TrackingProcess
from search.training import Engine, make_engine


@dataclass(frozen=True)
class SearchResult:
    """What a search leaves behind; `str()` gives the summary table."""

    study_name: str
    metric: str
    direction: str
    best_value: float | None
    best_std: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    best_scores: dict[str, float]
    counts: dict[str, int]
    new_trials: int
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    storage: str
    elapsed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    folds: int = 1  # validation folds per trial; 1 for a holdout

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        c = self.counts
        lines = [
            f"study {self.study_name!r}: {self.new_trials} new trials in "
            f"{self.elapsed_s:.0f}s; {c['complete']} complete, {c['pruned']} pruned, "
            f"{c['fail']} failed in all"
        ]
        if self.best_value is not None:
            spread = f" ± {self.best_std or 0:.4f}" if self.folds > 1 else ""  # holdout: none
            lines.append(
                f"best: trial {self.best_trial}, {self.metric} = {self.best_value:.4f}"
                f"{spread} ({self.direction})"
            )
            cv = {
                k.removeprefix("cv_"): v
                for k, v in self.best_scores.items()
                if not k.endswith("_std") and k not in ("cv_loss", f"cv_{self.metric}")
            }
            where = "cross-validated" if spread else "on the validation rows"
            lines.append(f"  {where}: " + ", ".join(f"{k} {v:.4f}" for k, v in cv.items()))
            width = max(len(k) for k in self.best_params)
            lines += [f"  {k:<{width}}  {_fmt(v)}" for k, v in self.best_params.items()]
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_search(
    space: Space | Prepared | str | Path,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    study_name: str | None = None,
    storage: str | None = None,
    tracking_uri: str | None = None,
    home: str | Path = DEFAULT_HOME,
    progress: bool = True,
    stream: TextIO | None = None,
    quiet: bool = False,
) -> SearchResult:
    """Run (or resume) the study a space file describes; every trial is logged to MLflow.

    `quiet` is the command line's `-q`: no progress, and neither Optuna's log lines nor the
    failed trials' tracebacks nor TensorFlow's warnings (for this call only); a failed
    trial's reason stays in its `fail_reason` attribute and its MLflow run.
    """
    with _quieted() if quiet else contextlib.nullcontext():
        return _run(
            space,
            n_trials=n_trials,
            timeout=timeout,
            study_name=study_name,
            storage=storage,
            tracking_uri=tracking_uri,
            home=home,
            progress=progress and not quiet,
            stream=stream,
        )


def _run(
    space: Space | Prepared | str | Path,
    *,
    n_trials: int | None,
    timeout: float | None,
    study_name: str | None,
    storage: str | None,
    tracking_uri: str | None,
    home: str | Path,
    progress: bool,
    stream: TextIO | None,
) -> SearchResult:
    if isinstance(space, Prepared):
        prep, space = space, space.space
    else:
        space = load_space(space) if isinstance(space, str | Path) else space
        prep = prepare(space)  # bad input stops here, before anything is written
    check_stores(storage, tracking_uri)
    engine = make_engine(space)
    deterministic()
    home = Path(home)
    name = study_name or space.name
    uri = tracking_uri or default_tracking_uri(_mkdir(home))
    study = open_study(prep, open_storage(storage, home), name)
    recover_stale(study._storage, tracking_uri=uri, home=home, studies=[name])
    planned = n_trials if n_trials is not None else space.study.trials
    budget = Budget(
        trials=trials_left(study, planned),
        timeout=timeout if timeout is not None else space.study.timeout,
        total=planned,
    )
    budget.callbacks.append(budget.stop_when_full)
    stream = stream or sys.stderr
    if progress:
        print(budget_line(study, budget, planned), file=stream)
        for note in prep.notes:
            print(note, file=stream)
    tracker = TrackingProcess(uri, name, artifact_root=home / "artifacts")
    try:
        return _search(study, prep, tracker, budget, storage, progress, stream, engine)
    finally:
        tracker.close()  # every write is in the store before run_search returns


@contextlib.contextmanager
def _quieted() -> Iterator[None]:
    """Optuna, TensorFlow and Keras loggers at ERROR for the duration, then as they were."""
    loggers = [logging.getLogger(n) for n in ("optuna", "tensorflow", "absl", "keras")]
    levels = [lg.level for lg in loggers]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for lg in loggers[1:]:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
        for lg, level in zip(loggers[1:], levels[1:], strict=True):
            lg.setLevel(level)


def trials_left(study: optuna.Study, planned: int | None) -> int | None:
    """The trials still to run for a budget of `planned` complete or pruned trials in all."""
    if planned is None:
        return None
    c = counts(study)
    return max(0, planned - c["complete"] - c["pruned"])


def budget_line(study: optuna.Study, budget: Budget, planned: int | None) -> str:
    """What this run will do, said before it starts."""
    name = study.study_name
    if planned is None:
        return f"study {name!r}: trials until {budget.timeout:g}s have passed"
    done = planned - (budget.trials or 0)
    if budget.trials == 0:
        return (
            f"study {name!r} already has {done} of its {planned} trials; "
            "raise --trials (the study's total) to run more"
        )
    resumed = f", {done} done before" if done else ""
    return f"study {name!r}: {budget.trials} trials left of {planned}{resumed}"


def _search(
    study: optuna.Study,
    prep: Prepared,
    tracker: RunWriter,
    budget: Budget,
    storage: str | None,
    progress: bool,
    stream: TextIO,
    engine: Engine,
) -> SearchResult:
    parent = parent_run(tracker, study, prep, remember=False)
    ctx = make_context(prep, tracker, parent, study.study_name)
    ctx.engine = engine
    beat = Heartbeat(study._storage)

    def own(trial: optuna.Trial) -> None:
        mark_started(trial)
        beat.add(trial._trial_id)

    ctx.on_start = own
    budget.callbacks.append(lambda _, trial: beat.discard(trial._trial_id))
    budget.callbacks.append(remember_parent(tracker, parent))
    budget.callbacks.append(lambda _, __: interrupt.check())  # one a library swallowed
    reporter = Progress(
        budget.trials, prep.space.objective.metric, stream, progress, folds=len(prep.folds)
    )
    budget.callbacks.append(reporter)
    ctx.on_fold = reporter.fold
    ctx.on_pack = reporter.pack
    ctx.on_tick = reporter.epoch
    started = time.perf_counter()
    status = "FAILED"
    try:
        interrupt.check()
        with beat:
            if ctx.engine is not None and ctx.engine.name == "pack":
                size = pack_size(prep.space, prep.data.X.shape[1])
                new = optimize_packs(study, ctx, budget, size)
            else:
                new = optimize(study, Objective(ctx), budget)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        with interrupt.deferred():  # a second Ctrl-C does not cut the clean-up short
            fail_own_running(study)
            retry_interrupted(study)
        raise
    finally:
        reporter.close()
        close_parent(tracker, parent, study, status)
        remember_parent(tracker, parent)(study, None)  # also when stopped in trial 0
    return _result(study, new, prep, tracker, parent, storage, time.perf_counter() - started)


def make_context(prep: Prepared, tracker: RunWriter, parent: str, name: str) -> SearchContext:
    space = prep.space
    tags = {
        STUDY: name,
        "search.data_fingerprint": prep.data.fingerprint,
        "search.space_file": str(space.path),
        "search.space_dir": str(space.base_dir),
        **environment_tags(),
    }
    return SearchContext(
        space=space,
        data=prep.data,
        split=prep.split,
        folds=prep.folds,
        tracker=tracker,
        parent_run_id=parent,
        tags=tags,
    )


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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
        run_id=study.user_attrs.get("mlflow_run_id"),
        tags={"search.data_fingerprint": data.fingerprint, **environment_tags()},
        params={
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
        },
        files={
            "space.yaml": space.ran_text,
            "test_split.json": json.dumps(
                {"seed": split.seed, "test": split.test.tolist(), "fingerprint": data.fingerprint},
                indent=2,
            ),
        },
    )
    if remember:
        remember_parent(tracker, parent)(study, None)
    return parent


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
        if run_id and study.user_attrs.get("mlflow_run_id") != run_id:
            study.set_user_attr("mlflow_run_id", run_id)
            study.set_user_attr("experiment_id", tracker.experiment_id)
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
                "params": best.user_attrs.get("params", best.params),
            },
            "best_trial.json",
        )
    tracker.end(parent, status)
    tracker.flush()


def _result(
    study: optuna.Study,
    new: list[FrozenTrial],
    prep: Prepared,
    tracker: RunWriter,
    parent: str,
    storage: str | None,
    elapsed: float,
) -> SearchResult:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    params = shown_params(best.user_attrs["params"]) if best and "params" in best.user_attrs else {}
    return SearchResult(
        study_name=study.study_name,
        metric=prep.space.objective.metric,
        direction=prep.space.direction,
        best_value=None if best is None else best.value,
        best_std=None if best is None else best.user_attrs.get("score_std"),
        best_trial=None if best is None else best.number,
        best_params=params,
        best_scores={} if best is None else best.user_attrs.get("cv_scores", {}),
        counts=counts(study),
        new_trials=len(new),
        experiment_id=tracker.experiment_id,
        parent_run_id=tracker.resolve(parent) or "",
        tracking_uri=mask_password(tracker.tracking_uri),
        storage=mask_password(storage) if storage else "journal file (default)",
        elapsed_s=elapsed,
        folds=len(prep.folds),
    )


def result_json(result: SearchResult, selection: Any = None) -> str:
    out = result.as_dict()
    if selection is not None:
        out["selection"] = dataclasses.asdict(selection)
    return json.dumps(out, indent=2, default=str)
