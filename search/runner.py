"""run_search: validate, open the study and its MLflow parent run, run trials, summarise."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import optuna

from search import interrupt
from search.backend import deterministic
from search.engines.base import Engine
from search.engines.choose import engine_for
from search.liveness import (
    Heartbeat,
    fail_own_running,
    mark_started,
    recover_stale,
    retry_interrupted,
)
from search.prepare import Prepared, prepare
from search.progress import Progress
from search.space.check import checked_study_name
from search.space.file import load_space
from search.space.schema import Space
from search.storage.optuna_private import storage_of, trial_id
from search.storage.stores import check_stores
from search.study import DEFAULT_HOME, Budget, counts, open_storage, open_study, optimize
from search.summary import SearchResult, search_result
from search.tracking import STUDY, RunWriter, default_tracking_uri, environment_tags
from search.tracking.parent import StudyRecorder, open_study_run
from search.tracking.process import TrackingProcess
from search.trials.context import SearchContext
from search.trials.objective import Objective
from search.trials.packs import optimize_packs, pack_size


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
    engine, why = engine_for(space, prep.data)
    deterministic()
    home = Path(home)
    name = checked_study_name(space, study_name)  # before anything is written
    uri = tracking_uri or default_tracking_uri(_mkdir(home))
    study = open_study(prep, open_storage(storage, home), name)
    recover_stale(storage_of(study), tracking_uri=uri, home=home, studies=[name])
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
        if why:
            print(f"engine: sequential: {why}", file=stream)
    writer = TrackingProcess(uri, name, artifact_root=home / "artifacts")
    try:
        return _search(study, prep, writer, budget, storage, progress, stream, engine, why)
    finally:
        writer.close()  # every write is in the store before run_search returns


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
    writer: RunWriter,
    budget: Budget,
    storage: str | None,
    progress: bool,
    stream: TextIO,
    engine: Engine,
    why: str,
) -> SearchResult:
    parent = open_study_run(writer, study, prep)
    ctx = make_context(prep, parent, study.study_name, engine_reason=why)
    ctx.engine = engine
    ctx.on_note = _once(set(), stream) if progress else None
    beat = _heartbeat(study, ctx, budget)
    budget.callbacks.append(parent.remember)
    budget.callbacks.append(lambda _, __: interrupt.check())  # one a library swallowed
    reporter = Progress(
        budget.trials, prep.space.objective.metric, stream, progress, folds=len(prep.folds)
    )
    budget.callbacks.append(reporter)
    ctx.on_fold, ctx.on_pack, ctx.on_tick = reporter.fold, reporter.pack, reporter.epoch
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
        parent.close(study, status)
        parent.remember(study)  # also when stopped in trial 0
    return search_result(study, new, prep, parent, storage, time.perf_counter() - started)


def _heartbeat(study: optuna.Study, ctx: SearchContext, budget: Budget) -> Heartbeat:
    """A heartbeat for each trial this process runs, from its start to its end."""
    beat = Heartbeat(storage_of(study))

    def own(trial: optuna.Trial) -> None:
        mark_started(trial)
        beat.add(trial_id(trial))

    ctx.on_start = own
    budget.callbacks.append(lambda _, trial: beat.discard(trial_id(trial)))
    return beat


def make_context(
    prep: Prepared, recorder: StudyRecorder, name: str, *, engine_reason: str = ""
) -> SearchContext:
    """What every trial of the study shares; `engine_reason` tags its runs when `auto`
    chose the sequential engine."""
    space = prep.space
    tags = {
        STUDY: name,
        "search.data_fingerprint": prep.data.fingerprint,
        "search.space_file": str(space.path),
        "search.space_dir": str(space.base_dir),
        **environment_tags(),
        **({"search.engine_reason": engine_reason} if engine_reason else {}),
    }
    return SearchContext(
        space=space,
        data=prep.data,
        split=prep.split,
        folds=prep.folds,
        recorder=recorder,
        tags=tags,
    )


def _once(said: set[str], stream: TextIO) -> Callable[[str], None]:
    """Print each distinct line once (the engine's word on a trial that cannot pack)."""

    def say(line: str) -> None:
        key = line.split(": ", 2)[-1]
        if key not in said:
            said.add(key)
            print(line, file=stream)

    return say


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
