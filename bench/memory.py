"""Flat memory over a long search: peak RSS over 200 models against the RSS after the first 10.

Peer: one process that builds and fits 200 small models, clearing the Keras session after
each (what a hand-written loop or a single-process tuner does). Service: `search serve`
with one worker recycled every 25 trials, on a 200-trial study; the RSS of the worker
processes is sampled from /proc while it runs.

    python bench/memory.py [--models 200] [--recycle 25]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPACE = """
study: {{name: mem, trials: {n}, sampler: random, pruner: none}}
data: {{source: breast_cancer}}
validation: {{scheme: holdout}}
params: {{depth: 2, width: {{low: 16, high: 64}}, epochs: 3, patience: 3}}
"""


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def one_process(n: int) -> tuple[float, float]:
    """RSS after 10 models, peak RSS over n models, in this process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    x = np.random.default_rng(0).normal(size=(400, 30)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    after10, peak = 0.0, 0.0
    for i in range(n):
        model = keras.Sequential(
            [
                keras.Input(shape=(30,)),
                keras.layers.Dense(32, "relu"),
                keras.layers.Dense(32, "relu"),
                keras.layers.Dense(1, "sigmoid"),
            ]
        )
        model.compile("adam", "binary_crossentropy")
        model.fit(x, y, epochs=3, batch_size=32, validation_split=0.2, verbose=0)
        del model
        keras.backend.clear_session()
        gc.collect()
        rss = rss_mb(os.getpid())
        peak = max(peak, rss)
        if i == 9:
            after10 = rss
    return after10, peak


def service(n: int, recycle: int) -> tuple[float, float, float]:
    """RSS of the worker after 10 trials, peak worker RSS over n trials, wall seconds."""
    import optuna

    from search.pool.queue import Queue, submit
    from search.study import open_storage

    home = Path(tempfile.mkdtemp())
    (home / "mem.yaml").write_text(SPACE.format(n=n))
    submit(home / "mem.yaml", Queue.open(None, home / "m"))
    started = time.perf_counter()
    pool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.cli.main",
            "serve",
            "--workers",
            "1",
            "--recycle",
            str(recycle),
            "--home",
            str(home / "m"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    storage = open_storage(None, home / "m")
    after10, peak, last_check = 0.0, 0.0, 0.0
    while pool.poll() is None:
        workers = subprocess.run(
            ["pgrep", "-P", str(pool.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        rss = max([rss_mb(int(w)) for w in workers] or [0.0])
        peak = max(peak, rss)
        if not after10 and time.time() - last_check > 1.0:
            last_check = time.time()
            done = sum(
                t.state.is_finished()
                for t in optuna.load_study(study_name="mem", storage=storage).trials
            )
            if done >= 10:
                after10 = rss
        time.sleep(0.2)
    return after10, peak, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--recycle", type=int, default=25)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        a, p = one_process(args.models)
        print(f"{a} {p}")
        return
    out = subprocess.run(
        [sys.executable, __file__, "--one", "--models", str(args.models)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    peer_10, peer_peak = float(out[-2]), float(out[-1])
    svc_10, svc_peak, wall = service(args.models, args.recycle)
    print(f"## Memory over {args.models} models ({time.strftime('%Y-%m-%d')})\n")
    print("| | RSS after 10 models, MB | peak RSS, MB | peak / after 10 |")
    print("|---|---:|---:|---:|")
    print(
        f"| one process, clear_session after each model | {peer_10:.0f} | {peer_peak:.0f} | "
        f"{peer_peak / peer_10:.2f} |"
    )
    print(
        f"| service: `search serve --workers 1 --recycle {args.recycle}` | {svc_10:.0f} | "
        f"{svc_peak:.0f} | {svc_peak / svc_10:.2f} |"
    )
    print(
        f"\nCommand: `python bench/memory.py --models {args.models} --recycle {args.recycle}`;"
        f" the service's {args.models} trials took {wall:.0f} s."
    )


if __name__ == "__main__":
    main()
