"""The commands of the queue and the worker pool: submit, status, serve (and the pool
that `run --workers/--gpus` starts)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from search.backend import quiet_libraries
from search.redact import mask_text


def queue_command(args: argparse.Namespace) -> int:
    from search.pool.queue import Queue, recover, status, status_table, submit
    from search.study import absent_store

    if args.command == "submit":
        from search.prepare import prepare
        from search.space.file import load_space

        prep = prepare(load_space(args.space))  # before the queue's folder is made
        quiet_libraries(args.verbose)
        queue = Queue.open(args.storage, args.home, args.tracking_uri)
        name = submit(
            prep, queue, trials=args.trials, priority=args.priority, study_name=args.study
        )
        print(f"queued study {name!r}; start workers with: search serve")
    elif args.command == "status" and absent_store(args.storage, Path(args.home)):
        print(status_table([]))  # nothing was ever queued here: nothing to make
        return 0
    else:
        queue = Queue.open(args.storage, args.home, args.tracking_uri)
        recover(queue, queue.storage())  # trials whose process died: failed, retried once
    interrupted = args.command == "serve" and serve_pool(args)
    print(status_table(status(queue)))
    return 130 if interrupted else 0


def serve_pool(args: argparse.Namespace) -> bool:
    """Run the worker pool until the queue is done; True when Ctrl-C stopped it."""
    from search.pool.workers import plan_slots, serve
    from search.redact import mask_password

    if args.ray:
        from search.pool.cluster import serve_ray

        ray_report = serve_ray(
            args.ray,
            workers=args.workers or 1,
            gpus_per_worker=args.gpus_per_worker,
            storage=args.storage,
            home=args.home,
            tracking_uri=args.tracking_uri,
            recycle=args.recycle,
        )
        print(f"Ray actors saw GPUs: {ray_report.devices}", file=sys.stderr)
        return False

    slots = plan_slots(args.gpus, per_gpu=args.per_gpu, workers=args.workers)
    where = mask_password(args.storage) if args.storage else "the journal file"
    print(
        f"{len(slots)} workers on {where}: "
        + ", ".join(f"GPU {s.gpu}" if s.gpu is not None else "CPU" for s in slots),
        file=sys.stderr,
    )
    report = serve(
        slots,
        storage=args.storage,
        home=args.home,
        tracking_uri=args.tracking_uri,
        recycle=args.recycle,
        heartbeat_s=args.heartbeat,
        grace_s=args.grace,
        gpu_memory_mb=args.gpu_memory_mb,
    )
    if report.interrupted:
        print(
            "interrupted: running trials ended as failed; `search serve` resumes", file=sys.stderr
        )
    return report.interrupted


def pool_json(queue: Any, study: str, selection: Any) -> str:
    """`search run --workers N --json`: the study's counts and best, and its selection."""
    import dataclasses
    import json

    from search.pool.queue import status

    row = next(r for r in status(queue) if r.name == study)
    out = {
        "study_name": study,
        "budget": row.budget,
        "counts": {
            "complete": row.complete,
            "pruned": row.pruned,
            "fail": row.failed,
            "running": row.running,
        },
        "best_value": row.best,
        "storage": mask_text(queue.storage_url or "journal file (default)"),
        "tracking_uri": mask_text(queue.tracking_uri),
    }
    if selection is not None:
        out["selection"] = dataclasses.asdict(selection)
    return json.dumps(out, indent=2, default=str)
