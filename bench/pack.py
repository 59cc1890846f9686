"""The pack engine against the sequential engine, on the shipped spaces, in one run.

    python bench/pack.py [--spaces spaces/default.yaml spaces/digits.yaml] [--seeds 1 2 3]
    python bench/pack.py --limit      # model-epochs per second: pack engine vs pure JAX
    python bench/pack.py --memory 200 # peak RSS of one process over a 200-trial search

Each (space, seed, engine) runs in a process of its own: the search (`run_search`, every
trial logged to MLflow), then the selection (recheck, refit, one test). Reported: the
search's wall time, the best cross-validated score, the final test log loss, and the
ratio of the pack's wall time to the sequential engine's on the same seed. `--limit`
trains the same members (a pack of breast_cancer folds, 2 x 64 units, Adam, 30 epochs,
no early stopping) through the pack engine and through a hand-written pure-JAX `vmap`
loop, the limit of this machine for that work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def one(space_file: str, seed: int, engine: str) -> dict[str, Any]:
    """One search and its selection, in this process."""
    from search.runner import run_search
    from search.selection.selector import select
    from search.space.file import load_space

    text = Path(space_file).read_text()
    text = f"training: {{engine: {engine}}}\n" + text.replace(
        "study:\n", f"study:\n  seed: {seed}\n", 1
    )
    path = Path(tempfile.mkdtemp()) / Path(space_file).name
    path.write_text(text)
    home = path.parent / "home"
    started = time.perf_counter()
    result = run_search(load_space(path), home=home, progress=False)
    search_s = time.perf_counter() - started
    chosen = select(result.study_name, home=home)
    return {
        "search_s": search_s,
        "total_s": time.perf_counter() - started,
        "trials": result.new_trials,
        "best_cv": result.best_value,
        "test_log_loss": chosen.test["log_loss"].value if "log_loss" in chosen.test else None,
    }


def limit() -> dict[str, float]:
    """Model-epochs per second on the same members: the pack engine, and pure JAX."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from search.data.foldarrays import fold_arrays
    from search.engines.base import Member
    from search.engines.pack.engine import PackEngine
    from search.params import TrialParams
    from search.prepare import prepare
    from search.space.file import load_space

    prep = prepare(load_space(ROOT / "spaces/default.yaml"))
    folds = [fold_arrays(prep.data, prep.split.train, f) for f in prep.folds]
    params = {
        "depth": 2,
        "widths": [64, 64],
        "activation": "relu",
        "dropout": 0.0,
        "l1": 0.0,
        "l2": 0.0,
        "batch_norm": False,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "batch_size": 32,
        "epochs": 30,
        "patience": 1000,
        "precision": "float32",
    }
    trial = TrialParams.read(params)
    members = [Member(t, i, trial, t * 10 + i, a) for t in range(8) for i, a in enumerate(folds)]
    list(PackEngine().train(members, prep.data))  # compile outside the clock
    started = time.perf_counter()
    list(PackEngine().train(members, prep.data))
    pack = len(members) * 30 / (time.perf_counter() - started)

    n = min(len(f.y_train) for f in folds)
    x = jnp.stack([f.x_train[:n] for f in folds] * 8)
    y = jnp.stack([f.y_train[:n] for f in folds] * 8).astype(jnp.float32)
    k, feats, steps = len(members), x.shape[2], n // 32

    def init(key: Any) -> dict[str, Any]:
        a, b, c = jax.random.split(key, 3)
        return {
            "w0": jax.random.normal(a, (feats, 64)) * 0.1,
            "w1": jax.random.normal(b, (64, 64)) * 0.1,
            "w2": jax.random.normal(c, (64, 1)) * 0.1,
        }

    def loss(p: dict[str, Any], xb: Any, yb: Any) -> Any:
        z = jax.nn.relu(jax.nn.relu(xb @ p["w0"]) @ p["w1"]) @ p["w2"]
        return jnp.mean(
            jnp.maximum(z[:, 0], 0) - z[:, 0] * yb + jnp.log1p(jnp.exp(-jnp.abs(z[:, 0])))
        )

    def epoch(p: Any, m: Any, v: Any, xs: Any, ys: Any, key: Any) -> Any:
        order = jax.random.permutation(key, n)

        def step(c: Any, i: Any) -> Any:
            p, m, v = c
            idx = jax.lax.dynamic_slice(order, (i * 32,), (32,))
            g = jax.grad(loss)(p, xs[idx], ys[idx])
            m = jax.tree.map(lambda m, g: 0.9 * m + 0.1 * g, m, g)
            v = jax.tree.map(lambda v, g: 0.999 * v + 0.001 * g * g, v, g)
            p = jax.tree.map(lambda p, m, v: p - 1e-3 * m / (jnp.sqrt(v) + 1e-7), p, m, v)
            return (p, m, v), None

        return jax.lax.scan(step, (p, m, v), jnp.arange(steps))[0]

    run = jax.jit(jax.vmap(epoch))
    p = jax.vmap(init)(jax.random.split(jax.random.key(0), k))
    m = jax.tree.map(jnp.zeros_like, p)
    v = jax.tree.map(jnp.zeros_like, p)
    keys = jax.random.split(jax.random.key(1), k)
    jax.block_until_ready(run(p, m, v, x, y, keys))
    started = time.perf_counter()
    state = (p, m, v)
    for e in range(30):
        epoch_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, e)
        state = run(*state, x, y, epoch_keys)
    jax.block_until_ready(state)
    pure = k * 30 / (time.perf_counter() - started)
    return {
        "pack_model_epochs_per_s": pack,
        "pure_jax_model_epochs_per_s": pure,
        "ratio": pure / pack,
        "members": k,
        "rows": float(np.asarray(n)),
    }


MEMORY_SPACE = """
study: {{name: mem, trials: {n}, sampler: random, pruner: none}}
data: {{source: breast_cancer}}
validation: {{scheme: holdout}}
training: {{engine: pack}}
params: {{depth: {{low: 1, high: 3}}, width: {{low: 16, high: 128}}, epochs: 5, patience: 3,
         batch_size: {{choices: [16, 32, 64]}}, optimizer: {{choices: [adam, rmsprop]}}}}
"""


def memory(n: int) -> dict[str, float]:
    """Peak RSS of one process over an n-trial pack search, against its RSS after 10."""
    import threading

    import optuna

    from search.runner import run_search
    from search.space.file import parse_space
    from search.study import open_storage

    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append((time.time(), int(line.split()[1]) / 1024))

    home = Path(tempfile.mkdtemp())
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    run_search(parse_space(MEMORY_SPACE.format(n=n)), home=home, progress=False)
    done.set()
    thread.join()
    study = optuna.load_study(study_name="mem", storage=open_storage(None, home))
    ends = sorted(t.datetime_complete.timestamp() for t in study.trials if t.datetime_complete)
    after_10 = max(r for t, r in samples if t <= ends[9])
    return {"after_10": after_10, "peak": max(r for _, r in samples), "trials": len(ends)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--spaces", nargs="+", default=["spaces/default.yaml", "spaces/digits.yaml"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--limit", action="store_true")
    parser.add_argument("--memory", type=int, metavar="TRIALS")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.one[2])))
        return
    if args.memory:
        m = memory(args.memory)
        print("| trials | RSS after 10 trials, MB | peak RSS, MB | peak / after 10 |")
        print("|---:|---:|---:|---:|")
        print(
            f"| {m['trials']:.0f} | {m['after_10']:.0f} | {m['peak']:.0f} | "
            f"{m['peak'] / m['after_10']:.2f} |"
        )
        return
    if args.limit:
        out = limit()
        print("| members | pack engine | pure-JAX loop | pure / pack |\n|---:|---:|---:|---:|")
        print(
            f"| {out['members']} | {out['pack_model_epochs_per_s']:.0f} model-epochs/s | "
            f"{out['pure_jax_model_epochs_per_s']:.0f} model-epochs/s | {out['ratio']:.2f}x |"
        )
        return
    columns = "space | seed | engine | search s | total s | trials | best CV | test log loss"
    print(f"| {columns} | pack / sequential |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for space in args.spaces:
        for seed in args.seeds:
            rows = {}
            for engine in ("sequential", "pack"):
                done = subprocess.run(
                    [sys.executable, __file__, "--one", space, str(seed), engine],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows[engine] = json.loads(done.stdout.strip().splitlines()[-1])
            for engine, r in rows.items():
                ratio = r["search_s"] / rows["sequential"]["search_s"]
                test = "" if r["test_log_loss"] is None else f"{r['test_log_loss']:.4f}"
                print(
                    f"| {Path(space).stem} | {seed} | {engine} | {r['search_s']:.1f} | "
                    f"{r['total_s']:.1f} | {r['trials']} | {r['best_cv']:.4f} | {test} | "
                    f"{ratio:.2f}x |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
