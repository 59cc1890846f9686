"""A pool of worker processes, one per GPU slot (or CPU share), pulling trials from the queue
(each one `search.pool.worker`).

Each worker sees only its GPU (CUDA_VISIBLE_DEVICES) and, when several share one, a memory
budget; CPU workers split TensorFlow's thread pools. A worker exits after `recycle` trials
and the pool starts a fresh one, so memory stays flat over long searches. Ctrl-C stops
claiming, ends the running trials as failed (interrupted) and leaves the studies resumable.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pool process stays light: TensorFlow is imported by workers only
    from search.pool.queue import Queue

from search.backend import GPU_SHARING_ENV
from search.errors import InputError, SearchFailed

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


def slot_env(slot: Slot) -> dict[str, str]:
    """A slot's worker environment: its GPU (CUDA reads CUDA_VISIBLE_DEVICES), GPU sharing
    and TensorFlow's log level; the rest of its settings are arguments (`slot_args`)."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = env.get("TF_CPP_MIN_LOG_LEVEL", "3")
    for key, value in GPU_SHARING_ENV.items():
        env.setdefault(key, value)
    if slot.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = slot.gpu
    return env


def slot_args(slot: Slot, *, gpu_memory_mb: int | None = None) -> list[str]:
    """A slot's own arguments of `python -m search.pool.worker`: its index, its share of the
    CPU's threads (no GPU) or its GPU memory limit."""
    args = ["--slot", str(slot.index)]
    if slot.gpu is None:
        args += ["--threads", str(max(1, (os.cpu_count() or 1) // slot.share))]
    elif gpu_memory_mb:
        args += ["--gpu-memory-mb", str(gpu_memory_mb)]
    return args


def worker_args(queue: Queue, recycle: int) -> list[str]:
    """The command line of `python -m search.pool.worker` for this queue (pool and Ray alike).

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
    from search.pool.queue import Queue, close_parents, recover  # brings TensorFlow: here only

    queue = Queue.open(storage, home, tracking_uri, heartbeat_s=heartbeat_s, grace_s=grace_s)
    pool = _Pool(queue, storage, recycle, gpu_memory_mb, log)
    try:
        pool.run(slots)
    except KeyboardInterrupt:
        pool.report.interrupted = True
        _stop(pool.procs)
    finally:
        pool.close()
        storage_obj = queue.storage()
        with queue.lock(storage_obj):
            recover(queue, storage_obj)
        close_parents(queue)
    return pool.report


class _Pool:
    """The worker processes of one `serve`: started per slot, replaced when they exit
    (recycled, or died), given up on when they keep dying as they start."""

    def __init__(
        self,
        queue: Queue,
        storage: str | None,
        recycle: int,
        gpu_memory_mb: int | None,
        log: Path | None,
    ) -> None:
        self.args = [sys.executable, "-m", "search.pool.worker", *worker_args(queue, recycle)]
        self.stores = store_env(queue, storage)
        self.gpu_memory_mb, self.log = gpu_memory_mb, log
        self.out = open(log, "a") if log else None  # noqa: SIM115  (kept for the pool's life)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.born: dict[int, float] = {}
        self.report = PoolReport()

    def start(self, slot: Slot) -> None:
        env = slot_env(slot)
        env.pop(STORAGE_ENV, None)  # the pool's own stores, not one its caller's shell set
        env.update(self.stores)
        args = [*self.args, *slot_args(slot, gpu_memory_mb=self.gpu_memory_mb)]
        self.procs[slot.index] = subprocess.Popen(
            args, env=env, stdout=self.out, stderr=self.out, start_new_session=True
        )
        self.born[slot.index] = time.time()
        self.report.started += 1

    def run(self, slots: list[Slot]) -> None:
        for slot in slots:
            self.start(slot)
        while self.procs:
            time.sleep(0.2)
            for slot in slots:
                proc = self.procs.get(slot.index)
                if proc is not None and proc.poll() is not None:
                    del self.procs[slot.index]
                    if self.replace(slot, int(proc.returncode)):
                        self.start(slot)

    def replace(self, slot: Slot, code: int) -> bool:
        """Whether a worker that exited with `code` gets a fresh process in its slot."""
        if code == EXIT_NO_WORK:
            return False
        report = self.report
        if code == EXIT_RECYCLE:
            report.recycled += 1
            report.crashes_in_a_row = 0
            return True
        report.restarted += 1  # killed, out of memory, crashed
        quick = time.time() - self.born[slot.index] < QUICK_S
        report.crashes_in_a_row = report.crashes_in_a_row + 1 if quick else 0
        if report.crashes_in_a_row >= MAX_QUICK_CRASHES:
            _stop(self.procs)
            raise SearchFailed(
                f"workers keep dying right after they start (exit code {code}); see the "
                f"log {self.log or '(stderr)'}"
            )
        return True

    def close(self) -> None:
        if self.out:
            self.out.close()


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
