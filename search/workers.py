"""A pool of worker processes, one per GPU slot (or CPU share), pulling trials from the queue.

Each worker sees only its GPU (CUDA_VISIBLE_DEVICES) and, when several share one, a memory
budget; CPU workers split TensorFlow's thread pools. A worker exits after `recycle` trials
and the pool starts a fresh one, so memory stays flat over long searches. Ctrl-C stops
claiming, ends the running trials as failed (interrupted) and leaves the studies resumable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pool process stays light: TensorFlow is imported by workers only
    import optuna
    from optuna.storages import BaseStorage

    from search.objective import SearchContext
    from search.queue import Claim, Queue

from search.backend import GPU_SHARING_ENV

EXIT_NO_WORK = 3
EXIT_RECYCLE = 0


@dataclass(frozen=True)
class Slot:
    index: int
    gpu: str | None  # a GPU id, or None for a CPU worker
    share: int  # workers sharing this GPU (or the CPU)


def visible_gpus() -> list[str]:
    """GPU ids from nvidia-smi, without importing TensorFlow in the pool process."""
    if shutil.which("nvidia-smi") is None:
        return []
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()]


def plan_slots(gpus: str | None, *, per_gpu: int = 1, workers: int | None = None) -> list[Slot]:
    """`--gpus 0,1 --per-gpu 2` -> slots on GPUs 0, 0, 1, 1; no GPUs -> CPU workers."""
    from search.errors import InputError

    if per_gpu < 1:
        raise InputError(f"--per-gpu must be >= 1, got {per_gpu}")
    ids = (
        visible_gpus()
        if gpus == "all"
        else [g.strip() for g in (gpus or "").split(",") if g.strip()]
    )
    if any(not g.isdigit() for g in ids):
        raise InputError(f"--gpus takes 'all' or ids like 0,1; got {gpus!r}")
    if ids:
        slots = [
            Slot(i, gpu, per_gpu) for i, gpu in enumerate(g for g in ids for _ in range(per_gpu))
        ]
        return slots[:workers] if workers else slots
    n = workers or 1
    if n < 1:
        raise InputError(f"--workers must be >= 1, got {n}")
    return [Slot(i, None, n) for i in range(n)]


def slot_env(slot: Slot, *, gpu_memory_mb: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    env["SEARCH_SLOT"] = str(slot.index)
    for key, value in GPU_SHARING_ENV.items():
        env.setdefault(key, value)
    if slot.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
        if slot.share > 1:
            env["SEARCH_GPU_SHARE"] = str(slot.share)
        if gpu_memory_mb:
            env["SEARCH_GPU_MEMORY_MB"] = str(gpu_memory_mb)
    else:
        threads = max(1, (os.cpu_count() or 1) // slot.share)
        env["SEARCH_CPU_THREADS"] = str(threads)
    return env


def worker_args(queue: Queue, recycle: int) -> list[str]:
    """The command line of `python -m search.workers` for this queue (pool and Ray alike).

    The stores' URLs are not on it (any local user reads a command line with `ps`): they
    travel in the environment, `store_env`.
    """
    return [
        "--home",
        str(queue.home),
        "--recycle",
        str(recycle),
        "--heartbeat",
        str(queue.heartbeat_s),
        "--grace",
        str(queue.grace_s),
    ]


STORAGE_ENV, TRACKING_ENV = "SEARCH_STORAGE", "SEARCH_TRACKING_URI"


def store_env(queue: Queue, storage: str | None) -> dict[str, str]:
    """The stores a worker opens, passed in its environment (they may hold a password)."""
    env = {TRACKING_ENV: queue.tracking_uri}
    if storage:
        env[STORAGE_ENV] = storage
    return env


@dataclass
class PoolReport:
    started: int = 0
    recycled: int = 0
    restarted: int = 0
    interrupted: bool = False
    crashes_in_a_row: int = 0


MAX_QUICK_CRASHES = 3  # a worker that dies this often right after starting is broken
QUICK_S = 60.0


def serve(
    slots: list[Slot],
    *,
    storage: str | None,
    home: str | Path,
    tracking_uri: str | None,
    recycle: int = 50,
    heartbeat_s: float = 5.0,
    grace_s: float = 30.0,
    gpu_memory_mb: int | None = None,
    log: Path | None = None,
) -> PoolReport:
    """Run worker processes until every queued study has reached its budget."""
    from search.errors import SearchFailed
    from search.queue import Queue, close_parents, recover

    queue = Queue.open(storage, home, tracking_uri, heartbeat_s=heartbeat_s, grace_s=grace_s)
    args = [sys.executable, "-m", "search.workers", *worker_args(queue, recycle)]
    stores = store_env(queue, storage)
    report = PoolReport()
    out = open(log, "a") if log else None  # noqa: SIM115  (kept open for the pool's life)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    born: dict[int, float] = {}

    def start(slot: Slot) -> None:
        env = slot_env(slot, gpu_memory_mb=gpu_memory_mb)
        env.pop(STORAGE_ENV, None)  # the pool's own stores, not one its caller's shell set
        env.update(stores)
        procs[slot.index] = subprocess.Popen(
            args, env=env, stdout=out, stderr=out, start_new_session=True
        )
        born[slot.index] = time.time()
        report.started += 1

    for slot in slots:
        start(slot)
    try:
        while procs:
            time.sleep(0.2)
            for slot in slots:
                proc = procs.get(slot.index)
                if proc is None or proc.poll() is None:
                    continue
                del procs[slot.index]
                if proc.returncode == EXIT_NO_WORK:
                    continue
                if proc.returncode == EXIT_RECYCLE:
                    report.recycled += 1
                    report.crashes_in_a_row = 0
                else:  # killed, out of memory, crashed: start a fresh one
                    report.restarted += 1
                    quick = time.time() - born[slot.index] < QUICK_S
                    report.crashes_in_a_row = report.crashes_in_a_row + 1 if quick else 0
                    if report.crashes_in_a_row >= MAX_QUICK_CRASHES:
                        _stop(procs)
                        raise SearchFailed(
                            f"workers keep dying right after they start "
                            f"(exit code {proc.returncode}); see the log "
                            f"{log or '(stderr)'}"
                        )
                start(slot)
    except KeyboardInterrupt:
        report.interrupted = True
        _stop(procs)
    finally:
        if out:
            out.close()
        storage_obj = queue.storage()
        with queue.lock(storage_obj):
            recover(queue, storage_obj)
        close_parents(queue)
    return report


def _stop(procs: dict[int, subprocess.Popen[bytes]], wait_s: float = 60.0) -> None:
    """Ask every worker to stop (SIGINT), give them time to end their trials, then kill."""
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
    deadline = time.time() + wait_s
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# ---------------------------------------------------------------- inside a worker process


def _start_backend() -> None:
    from search import backend

    threads = os.environ.get("SEARCH_CPU_THREADS")
    memory = os.environ.get("SEARCH_GPU_MEMORY_MB")
    backend.start(
        verbose=False,
        configure=lambda: backend.configure_worker(
            int(threads) if threads else None, int(memory) if memory else None
        ),
    )


def worker_main(argv: list[str] | None = None) -> int:
    """The entry point of one worker process (`python -m search.workers ...`)."""
    parser = argparse.ArgumentParser(prog="search-worker")
    parser.add_argument("--storage", default=os.environ.get(STORAGE_ENV))
    parser.add_argument("--home", default="mlruns")
    parser.add_argument("--tracking-uri", default=os.environ.get(TRACKING_ENV))
    parser.add_argument("--recycle", type=int, default=50)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--grace", type=float, default=30.0)
    args = parser.parse_args(argv)
    _start_backend()
    import logging

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    from search.queue import Queue

    queue = Queue.open(
        args.storage, args.home, args.tracking_uri, heartbeat_s=args.heartbeat, grace_s=args.grace
    )
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    try:
        return _loop(queue, args.recycle)
    except KeyboardInterrupt:
        return 130


_CLAIMING = [False]  # inside `_no_interrupts`: a stop request waits for the claim to end


def _request_stop(signum: int, frame: object) -> None:
    """Remember the request (a library may swallow the exception) and interrupt now,
    unless a trial is being claimed: then as soon as the claim has returned."""
    from search.training import STOP

    STOP.set()
    if not _CLAIMING[0]:
        raise KeyboardInterrupt


def _loop(queue: Queue, recycle: int) -> int:
    from search.backend import deterministic
    from search.liveness import Heartbeat
    from search.queue import claim, pending

    deterministic()
    storage = queue.storage()
    contexts: dict[str, SearchContext] = {}
    done = 0
    from search.training import STOP

    try:
        while done < recycle and not STOP.is_set():
            got: Claim | None = None
            extra: list[optuna.Trial] = []
            try:
                with _no_interrupts():  # a claimed trial always gets its owner recorded
                    got = claim(queue, storage)
                if got is None:
                    if not pending(storage):
                        return EXIT_NO_WORK
                    time.sleep(min(2.0, queue.heartbeat_s))  # others run: a retry may come
                    continue
                ctx = _study_context(queue, got, contexts)
                with _no_interrupts():
                    extra = _rest_of_pack(queue, storage, got, ctx, recycle - done)
                ids = [t._trial_id for t in [got.trial, *extra]]
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
            ctx.tracker.flush()
    return 130 if STOP.is_set() else EXIT_RECYCLE


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Hold a stop request back while a trial is being claimed, so that a claimed trial
    is always known to its worker (and told FAIL if the request came).

    Blocking the signals in this thread is not enough: CPython runs Python signal handlers
    in the main thread whichever thread the kernel delivered the signal to, and a worker
    has other threads (TensorFlow's, the MLflow writer, the heartbeat). Found by a Ctrl-C
    that left a trial RUNNING: it arrived after `ask` made the trial, before `claim`
    returned it.
    """
    from search.training import STOP

    _CLAIMING[0] = True
    try:
        yield
    finally:
        _CLAIMING[0] = False
    if STOP.is_set():
        raise KeyboardInterrupt


def _interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    from optuna.trial import TrialState

    with contextlib.suppress(Exception):  # already told by the trial itself
        trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
        study.tell(trial, state=TrialState.FAIL)


def _study_context(queue: Queue, got: Claim, contexts: dict[str, SearchContext]) -> SearchContext:
    name = got.study.study_name
    if name not in contexts:
        contexts[name] = _context(queue, got.study)
    return contexts[name]


def _rest_of_pack(
    queue: Queue, storage: BaseStorage, got: Claim, ctx: SearchContext, room: int
) -> list[optuna.Trial]:
    """More trials of the claimed one's study when the engine trains packs."""
    from search.packs import pack_size
    from search.queue import claim_more

    if ctx.engine is None or ctx.engine.name != "pack":
        return []
    return claim_more(queue, storage, got.study, min(pack_size(ctx.space), room) - 1)


def _run_trials(got: Claim, extra: list[optuna.Trial], ctx: SearchContext) -> None:
    """Run a claimed trial, or the pack it heads, and tell the study."""
    from search.packs import run_pack
    from search.study import Budget

    study = got.study
    rss = resident_mb()
    for trial in [got.trial, *extra]:
        trial.set_user_attr("cuda_visible_devices", os.environ.get("CUDA_VISIBLE_DEVICES", ""))
        trial.set_user_attr("slot", os.environ.get("SEARCH_SLOT", ""))
        if rss is not None:  # the worker's memory as the trial starts: flat across recycling
            trial.set_user_attr("worker_rss_mb", rss)
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

    from search.objective import Objective

    try:
        value = Objective(ctx)(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except KeyboardInterrupt:
        trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
        study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception:  # recorded on the trial and its run by the objective
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, value)


def _context(queue: Queue, study: optuna.Study) -> SearchContext:
    from search.runner import make_context
    from search.selection import study_space
    from search.study import check_same_data, make_pruner, make_sampler, prepare
    from search.tracking.runs import Tracker
    from search.training import make_engine

    space = study_space(study)
    prep = prepare(space)
    check_same_data(study, prep)
    # the sampler and pruner of the study's own space file
    study.sampler = make_sampler(space)
    study.pruner = make_pruner(space, len(prep.folds))
    tracker = Tracker(queue.tracking_uri, study.study_name, artifact_root=queue.home / "artifacts")
    parent = study.user_attrs["mlflow_run_id"]
    if tracker.reader.status(parent) != "RUNNING":
        tracker.set_status(parent, "RUNNING")
    ctx = make_context(prep, tracker, parent, study.study_name)
    ctx.engine = make_engine(space)
    ctx.tags["search.worker_slot"] = os.environ.get("SEARCH_SLOT", "")
    ctx.tags["search.cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    return ctx


def _maybe_finish(study: optuna.Study, ctx: SearchContext) -> None:
    """The worker that completes a study's budget closes its parent run."""
    from search.runner import close_parent
    from search.study import counts

    c = counts(study)
    if c["complete"] + c["pruned"] >= int(study.user_attrs.get("budget", 0)):
        close_parent(ctx.tracker, ctx.parent_run_id, study, "FINISHED")


if __name__ == "__main__":
    sys.exit(worker_main())
