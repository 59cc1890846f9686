"""The cluster engine: the same workers, placed as Ray actors on an existing Ray cluster.

Each actor holds a GPU, or a fraction of one when several are packed on it; Ray sets its
CUDA_VISIBLE_DEVICES. The actor runs worker processes one after the other (recycling
them as the local pool does) until every queued study has reached its budget. Ray is an
optional extra: `pip install '.[cluster]'`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import InputError
from search.pool.workers import EXIT_NO_WORK, EXIT_RECYCLE, store_env, worker_args


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs the `ray` package: pip install '.[cluster]'") from None
    return ray


class _Slot:
    """Body of the Ray actor: runs `python -m search.pool.worker` with Ray's GPU placement."""

    def __init__(self, index: int) -> None:
        self.index = index

    def gpus(self) -> str:
        return os.environ.get("CUDA_VISIBLE_DEVICES", "")

    def run(self, args: list[str], threads: int, stores: dict[str, str]) -> int:
        env = dict(
            os.environ, **stores, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")
        )
        own = ["--slot", str(self.index)]
        if not env.get("CUDA_VISIBLE_DEVICES"):
            own += ["--threads", str(threads)]
        return subprocess.run(
            [sys.executable, "-m", "search.pool.worker", *args, *own], env=env, check=False
        ).returncode


@dataclass
class RayReport:
    devices: list[str] = field(default_factory=list)  # CUDA_VISIBLE_DEVICES of each actor
    runs: int = 0


def serve_ray(
    address: str | None,
    *,
    workers: int,
    gpus_per_worker: float,
    storage: str | None,
    home: str | Path,
    tracking_uri: str | None,
    recycle: int = 50,
    init: dict[str, Any] | None = None,
) -> RayReport:
    """Start `workers` actors on the Ray cluster at `address` and run the queue dry."""
    from search.pool.queue import Queue, close_parents  # TensorFlow comes with it: not at import

    ray = _ray()
    queue = Queue.open(storage, home, tracking_uri)
    if not ray.is_initialized():
        ray.init(address=address, **(init or {}))
    actor = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(_Slot)
    slots = [actor.remote(i) for i in range(workers)]
    report = RayReport(devices=ray.get([s.gpus.remote() for s in slots]))
    args, stores = worker_args(queue, recycle), store_env(queue, storage)
    threads = max(1, int(ray.cluster_resources().get("CPU", 1)) // workers)
    running = {s.run.remote(args, threads, stores): s for s in slots}
    try:
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            slot = running.pop(done[0])
            report.runs += 1
            if ray.get(done[0]) != EXIT_NO_WORK:
                running[slot.run.remote(args, threads, stores)] = slot  # recycled or crashed
    finally:
        for s in slots:
            ray.kill(s)
        close_parents(queue)
    return report


__all__ = ["EXIT_RECYCLE", "RayReport", "serve_ray"]
