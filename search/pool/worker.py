"""One worker process of the pool (`python -m search.pool.worker`): claim a trial (or a pack)
from the most urgent study, train it, tell the study, keep its heartbeat; exit after
`--recycle` trials so that the pool starts a fresh process. SIGINT and SIGTERM stop it
between claims; the trials it was training end failed ("interrupted") and are retried.

The layers below (TensorFlow, Optuna, MLflow and the modules that load them) are imported
inside the functions: the stop handler is in place before they load, and a Ctrl-C in the
middle of an import left TensorFlow half made and the process aborted at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from search import interrupt
from search.attrs import Study, Trial
from search.pool.workers import EXIT_NO_WORK, EXIT_RECYCLE, STORAGE_ENV, TRACKING_ENV
from search.storage.optuna_private import trial_id

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

    from search.pool.queue import Claim, Queue
    from search.trials.context import SearchContext


def _start_backend(threads: int | None, gpu_memory_mb: int | None) -> None:
    from search import backend

    backend.start(verbose=False, configure=lambda: backend.configure_worker(threads, gpu_memory_mb))


def worker_main(argv: list[str] | None = None) -> int:
    """The entry point of one worker process (`python -m search.pool.worker ...`). Everything
    comes as arguments but the stores' URLs, which may hold a password and so come in the
    environment (`search.pool.workers.store_env`), and CUDA_VISIBLE_DEVICES, which CUDA reads."""
    parser = argparse.ArgumentParser(prog="search-worker")
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV))
    parser.add_argument("--home", default="mlruns")
    parser.add_argument("--tracking-uri", default=os.environ.get(TRACKING_ENV))
    parser.add_argument("--recycle", type=int, default=50)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--slot", default="")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--gpu-memory-mb", type=int)
    args = parser.parse_args(argv)
    stop = StopRequest()  # before the libraries load: a Ctrl-C then waits for them
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        _start_backend(args.threads, args.gpu_memory_mb)
        import logging

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        from search.pool.queue import Queue

        queue = Queue.open(
            args.storage,
            args.home,
            args.tracking_uri,
            heartbeat_s=args.heartbeat,
            grace_s=args.grace,
        )
        return _loop(queue, args.recycle, args.slot, stop)
    except KeyboardInterrupt:
        return 130


class StopRequest:
    """SIGINT and SIGTERM to a worker: remembered in `search.interrupt.STOP` (which the
    engines read at each epoch, in case a library swallows the exception) and raised as
    KeyboardInterrupt at once, unless a trial is being claimed (then as soon as the claim
    has returned, `held`) or the journal written under its file lock (then when the write
    is done, `search.interrupt.deferred`: a Ctrl-C inside Optuna's lock release failed the
    trial with a FileNotFoundError instead of stopping it).

    Blocking the signals in this thread is not enough: CPython runs Python signal handlers
    in the main thread whichever thread the kernel delivered the signal to, and a worker
    has other threads (TensorFlow's, the MLflow writer, the heartbeat). Found by a Ctrl-C
    that left a trial RUNNING: it arrived after `ask` made the trial, before `claim`
    returned it.
    """

    def __init__(self) -> None:
        self.claiming = False

    def __call__(self, signum: int, frame: object) -> None:
        # no import here: the signal may land inside an import of the main thread
        interrupt.STOP.set()
        if not self.claiming and not interrupt.postponed():  # not inside a journal write
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold a stop request back while a trial is being claimed, so that a claimed
        trial is always known to its worker (and told FAIL if the request came)."""
        self.claiming = True
        try:
            yield
        finally:
            self.claiming = False
        if interrupt.STOP.is_set():
            raise KeyboardInterrupt


def _loop(queue: Queue, recycle: int, slot: str, stop: StopRequest) -> int:
    from search.backend import deterministic
    from search.liveness import Heartbeat
    from search.pool.queue import claim, pending

    deterministic()
    storage = queue.storage()
    contexts: dict[str, SearchContext] = {}
    done = 0
    try:
        while done < recycle and not interrupt.STOP.is_set():
            got: Claim | None = None
            extra: list[optuna.Trial] = []
            try:
                with stop.held():  # a claimed trial always gets its owner recorded
                    got = claim(queue, storage)
                if got is None:
                    if not pending(storage):
                        return EXIT_NO_WORK
                    time.sleep(min(2.0, queue.heartbeat_s))  # others run: a retry may come
                    continue
                ctx = _study_context(queue, got, contexts, slot)
                with stop.held():
                    extra = _rest_of_pack(queue, storage, got, ctx, recycle - done)
                ids = [trial_id(t) for t in [got.trial, *extra]]
                with Heartbeat(storage, ids, queue.heartbeat_s):
                    _run_trials(got, extra, ctx)
            except KeyboardInterrupt:
                if got is not None:
                    for trial in [got.trial, *extra]:
                        _interrupted(got.study, trial)
                raise
            done += 1 + len(extra)
    finally:  # the trials' queued MLflow writes land before the process ends
        for ctx in contexts.values():
            ctx.recorder.flush()
    return 130 if interrupt.STOP.is_set() else EXIT_RECYCLE


def _interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    from optuna.trial import TrialState

    with contextlib.suppress(Exception):  # already told by the trial itself
        trial.set_user_attr(Trial.FAIL_REASON, "interrupted (Ctrl-C)")
        study.tell(trial, state=TrialState.FAIL)


def _study_context(
    queue: Queue, got: Claim, contexts: dict[str, SearchContext], slot: str
) -> SearchContext:
    name = got.study.study_name
    if name not in contexts:
        contexts[name] = _context(queue, got.study, slot)
    return contexts[name]


def _rest_of_pack(
    queue: Queue, storage: BaseStorage, got: Claim, ctx: SearchContext, room: int
) -> list[optuna.Trial]:
    """More trials of the claimed one's study when the engine trains packs."""
    from search.pool.queue import claim_more
    from search.trials.packs import pack_size

    if ctx.engine is None or ctx.engine.name != "pack":
        return []
    return claim_more(queue, storage, got.study, min(pack_size(ctx.space), room) - 1)


def _run_trials(got: Claim, extra: list[optuna.Trial], ctx: SearchContext) -> None:
    """Run a claimed trial, or the pack it heads, and tell the study."""
    from search.study import Budget
    from search.trials.packs import run_pack

    study = got.study
    rss = resident_mb()
    for trial in [got.trial, *extra]:
        trial.set_user_attr(Trial.CUDA_VISIBLE_DEVICES, os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        trial.set_user_attr(Trial.SLOT, ctx.tags["search.worker_slot"])
        if rss is not None:  # the worker's memory as the trial starts: flat across recycling
            trial.set_user_attr(Trial.WORKER_RSS_MB, rss)
    if extra:
        run_pack(study, ctx, Budget(trials=None, timeout=None), [got.trial, *extra])
    else:
        _run_trial(study, got.trial, ctx)
    _maybe_finish(study, ctx)


def resident_mb() -> float | None:
    """This process's resident memory now (Linux's /proc), in MiB; None where unknown."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _run_trial(study: optuna.Study, trial: optuna.Trial, ctx: SearchContext) -> None:
    import optuna
    from optuna.trial import TrialState

    from search.trials.objective import Objective

    try:
        value = Objective(ctx)(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except KeyboardInterrupt:
        trial.set_user_attr(Trial.FAIL_REASON, "interrupted (Ctrl-C)")
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception:  # recorded on the trial and its run by the objective
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, value)


def _context(queue: Queue, study: optuna.Study, slot: str) -> SearchContext:
    from search.engines.choose import engine_for
    from search.prepare import prepare
    from search.runner import make_context
    from search.study import check_same_data, study_space
    from search.tracking.parent import reopen_study_run
    from search.tuners import make_pruner, make_sampler

    space = study_space(study)
    prep = prepare(space)
    check_same_data(study, prep)
    # the sampler and pruner of the study's own space file
    study.sampler = make_sampler(space)
    study.pruner = make_pruner(space, len(prep.folds))
    parent = reopen_study_run(
        queue.tracking_uri,
        study.study_name,
        study.user_attrs[Study.RUN_ID],
        artifact_root=queue.home / "artifacts",
    )
    engine, why = engine_for(space, prep.data)
    ctx = make_context(prep, parent, study.study_name, engine_reason=why)
    ctx.engine = engine
    ctx.tags["search.worker_slot"] = slot
    ctx.tags["search.cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return ctx


def _maybe_finish(study: optuna.Study, ctx: SearchContext) -> None:
    """The worker that completes a study's budget closes its parent run."""
    from search.study import counts

    c = counts(study)
    if c["complete"] + c["pruned"] >= int(study.user_attrs.get(Study.BUDGET, 0)):
        ctx.recorder.close(study, "FINISHED")


def run() -> None:
    """`worker_main`, then its exit code, which a late Ctrl-C no longer changes."""
    sys.exit(interrupt.ended(worker_main))


if __name__ == "__main__":
    run()
