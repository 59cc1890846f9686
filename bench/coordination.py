"""Coordination overhead of the worker queue: trials per second on a trivial objective.

Each worker process claims a trial (under the claim lock, with stale-trial recovery),
"trains" for 0 s and tells the result, exactly as `search serve` workers do, until the
study's budget is spent. The peer in the same run is plain Optuna: `study.optimize` on the
same storage from the same number of processes (no budget guarantee, no recovery).

    python bench/coordination.py [--trials 200] [--workers 1 2 4 8] [--postgres URL]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path

import optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _service_worker(storage_url: str | None, home: str) -> None:
    from search.pool.queue import Queue, claim

    queue = Queue.open(storage_url, home)
    storage = queue.storage()
    while (got := claim(queue, storage)) is not None:
        got.study.tell(got.trial, got.trial.suggest_float("x", 0.0, 1.0))


def _optuna_worker(storage_url: str | None, home: str, name: str, n: int) -> None:
    from search.study import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(storage_url, Path(home)))
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=n)


def _fresh(storage_url: str | None) -> None:
    if storage_url and storage_url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        engine = create_engine(storage_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()


def run(kind: str, storage_url: str | None, workers: int, trials: int) -> float:
    from search.study import open_storage

    _fresh(storage_url)
    home = tempfile.mkdtemp()
    try:
        storage = open_storage(storage_url, Path(home))
        study = optuna.create_study(study_name="bench", storage=storage)
        study.set_user_attr("budget", trials)
        ctx = mp.get_context("spawn")
        if kind == "service":
            procs = [
                ctx.Process(target=_service_worker, args=(storage_url, home))
                for _ in range(workers)
            ]
        else:
            share = [trials // workers + (i < trials % workers) for i in range(workers)]
            procs = [
                ctx.Process(target=_optuna_worker, args=(storage_url, home, "bench", n))
                for n in share
            ]
        started = time.perf_counter()
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        elapsed = time.perf_counter() - started
        done = len(optuna.load_study(study_name="bench", storage=storage).trials)
        assert done == trials, (kind, done, trials)
        return trials / elapsed
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--postgres", help="postgresql://user:pw@host/db (dropped and recreated)")
    args = parser.parse_args()
    storages: list[tuple[str, str | None]] = [("journal file", None)]
    if args.postgres:
        storages.append(("PostgreSQL", args.postgres))
    print(f"## Coordination overhead ({time.strftime('%Y-%m-%d')}, {args.trials} trivial trials)")
    print()
    print(
        "Command: `python bench/coordination.py --postgres URL` (what `make bench` runs). "
        "Service: claim under the lock with stale-trial recovery, tell; peer: plain "
        "`study.optimize` from as many processes, with no budget guarantee."
    )
    print()
    print("| storage | workers | service trials/s | plain Optuna trials/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for label, url in storages:
        for n in args.workers:
            ours = run("service", url, n, args.trials)
            peer = run("optuna", url, n, args.trials)
            print(f"| {label} | {n} | {ours:.1f} | {peer:.1f} | {ours / peer:.2f} |", flush=True)


if __name__ == "__main__":
    main()
