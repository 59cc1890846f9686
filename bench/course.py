"""The course's data sizes and images: issue 20's targets, measured.

1. MNIST-shaped data (60,000 + 10,000 synthetic 28 x 28 images written as Keras' own
   `mnist.npz` in a temporary Keras cache): a 10-trial holdout search (`search run
   --no-select`, its own process) against the raw array's size as float32 (peak RSS of
   the search process), and the search's seconds per epoch inside `fit` against a plain
   Keras `fit` of the same network on the same rows (the peer, in this process after).
2. The digits as 8 x 8 images through convolution blocks (`spaces/digits_images.yaml`)
   against the dense network of `spaces/digits.yaml`, the same budget of trials: test log
   loss and accuracy of the champions, wall time of search + selection.

    python bench/course.py [--trials 10] [--digits-trials 12] > bench/course.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEARCH = [sys.executable, "-m", "search.cli.main"]

MNIST_SPACE = """
study: {{name: mnist, trials: {trials}, sampler: random, pruner: none, seed: 1}}
data: {{source: 'keras:mnist'}}
validation: {validation}
params: {{depth: 1, width: {{low: 64, high: 256, log: true}}, epochs: 3, patience: 3,
          batch_size: 128, learning_rate: 0.001}}
"""


def synthetic_mnist(path: Path, n_train: int = 60_000, n_test: int = 10_000) -> int:
    """`n_train` + `n_test` images with a learnable signal, as keras.datasets stores MNIST;
    the raw array's size as float32, in bytes."""
    rng = np.random.default_rng(0)

    def part(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 80, size=(n, 28, 28), dtype=np.uint8)
        for label in range(10):
            x[y == label, label * 2 : label * 2 + 4] += 150
        return x, y

    (x_train, y_train), (x_test, y_test) = part(n_train), part(n_test)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return (len(x_train) + len(x_test)) * 28 * 28 * 4


HOLDOUT = "{scheme: holdout, val_fraction: 0.1667}"
KFOLD = "{scheme: kfold, folds: 3}"


def peak_search(tmp: Path, trials: int, validation: str = HOLDOUT) -> tuple[float, float]:
    """Peak RSS (bytes) and wall seconds of `search run --no-select` on the cache in `tmp`,
    in a process of its own (measured in a child of a fresh `python -c` so that earlier
    runs' peaks do not count)."""
    (tmp / "mnist.yaml").write_text(MNIST_SPACE.format(trials=trials, validation=validation))
    env = dict(os.environ, KERAS_HOME=str(tmp / "keras"), TF_CPP_MIN_LOG_LEVEL="3")
    home = "m" if validation == HOLDOUT else "k"
    command = [*SEARCH, "run", "mnist.yaml", "--home", home, "--no-select", "--json"]
    code = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        f"r = subprocess.run({command!r}, capture_output=True, text=True)\n"
        "assert r.returncode == 0, r.stderr[-3000:]\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "print(peak, time.perf_counter() - t)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    peak, wall = done.stdout.split()
    return float(peak), float(wall)


def mnist(trials: int, tmp: Path) -> dict[str, Any]:
    small = tmp / "small"
    synthetic_mnist(small / "keras" / "datasets" / "mnist.npz", 600, 100)
    floor, _ = peak_search(small, trials)  # the libraries' own memory, on 700 images
    raw = synthetic_mnist(tmp / "keras" / "datasets" / "mnist.npz")
    peak, wall = peak_search(tmp, trials)
    kfold_floor, _ = peak_search(small, 3, KFOLD)
    kfold_peak, kfold_wall = peak_search(tmp, 3, KFOLD)
    import optuna

    from search.study import open_storage

    study = optuna.load_study(study_name="mnist", storage=open_storage(None, tmp / "m"))
    complete = [t for t in study.trials if t.user_attrs.get("epochs")]
    fit_s = sum(float(t.user_attrs["fit_s"]) for t in complete)
    epochs = sum(sum(t.user_attrs["epochs"]) for t in complete)
    widths = [int(t.params["width"]) for t in complete]
    plain = plain_fit(tmp / "keras" / "datasets" / "mnist.npz", widths)
    return {
        "raw_mb": raw / 2**20,
        "peak_mb": peak / 2**20,
        "floor_mb": floor / 2**20,
        "wall_s": wall,
        "epoch_s": fit_s / epochs,
        "plain_epoch_s": plain,
        "trials": len(complete),
        # the lower floor of the two (the small k-fold search packs, and loads more)
        "kfold_mb": (kfold_peak - min(floor, kfold_floor)) / 2**20,
        "kfold_wall_s": kfold_wall,
    }


def plain_fit(path: Path, widths: list[int]) -> float:
    """Seconds an epoch of a plain Keras `fit` of each trial's network on the same rows
    (standardized as the service does, its holdout's training share), averaged."""
    import keras
    from sklearn.preprocessing import StandardScaler

    with np.load(path) as f:
        x, y = f["x_train"].reshape(60_000, -1).astype(np.float32), f["y_train"]
    n_train = int(len(x) * (1 - 0.1667))  # the holdout's training rows; the rest validate
    scaler = StandardScaler().fit(x[:n_train])
    x_val, y_val = scaler.transform(x[n_train:]).astype(np.float32), y[n_train:]
    x, y = scaler.transform(x[:n_train]).astype(np.float32), y[:n_train]
    seconds, epochs = 0.0, 0
    for width in widths:
        model = keras.Sequential(
            [
                keras.Input(shape=(784,)),
                keras.layers.Dense(width, activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        started = time.perf_counter()
        model.fit(x, y, batch_size=128, epochs=3, validation_data=(x_val, y_val), verbose=0)
        seconds += time.perf_counter() - started
        epochs += 3
        keras.backend.clear_session()
    return seconds / epochs


def digits(trials: int, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for space in ("digits.yaml", "digits_images.yaml"):
        home = tmp / space.replace(".yaml", "")
        started = time.perf_counter()
        done = subprocess.run(
            [*SEARCH, "run", str(ROOT / "spaces" / space), "--trials", str(trials), "--home",
             str(home), "--json"],
            cwd=tmp,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        test = json.loads(done.stdout)["selection"]["test"]
        rows.append(
            {
                "space": space,
                "log_loss": test["log_loss"],
                "accuracy": test["accuracy"],
                "wall_s": wall,
            }
        )
    return rows


def _iv(iv: dict[str, float]) -> str:
    return f"{iv['value']:.4f} [{iv['low']:.4f}, {iv['high']:.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--digits-trials", type=int, default=12)
    parser.add_argument("--no-digits", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        m = mnist(args.trials, tmp)
        d = [] if args.no_digits else digits(args.digits_trials, tmp)
    print("# The course's sizes and images (bench/course.py)\n")
    print(f"`python bench/course.py --trials {args.trials} --digits-trials {args.digits_trials}`\n")
    print("## MNIST-shaped data, a holdout search (and a 3-fold one)\n")
    print("| measure | value |")
    print("| --- | --- |")
    print(f"| raw array, float32 (70,000 x 784) | {m['raw_mb']:.0f} MiB |")
    print(f"| peak RSS of the search ({m['trials']} trials, 3 epochs) | {m['peak_mb']:.0f} MiB |")
    print(
        f"| peak RSS of the same search on 700 images (the libraries) | {m['floor_mb']:.0f} MiB |"
    )
    data = m["peak_mb"] - m["floor_mb"]
    print(f"| peak RSS / raw array | {m['peak_mb'] / m['raw_mb']:.2f}x (target <= 3x) |")
    print(f"| (peak - libraries) / raw array | {data / m['raw_mb']:.2f}x |")
    print(f"| seconds an epoch in the search's `fit` | {m['epoch_s']:.2f} |")
    plain = m["plain_epoch_s"]
    print(f"| seconds an epoch, plain Keras `fit`, same networks and rows | {plain:.2f} |")
    ratio = m["epoch_s"] / m["plain_epoch_s"]
    print(f"| search / plain | {ratio:.2f}x (target <= 1.5x) |")
    print(f"| wall time of the search | {m['wall_s']:.0f} s |")
    kfold = m["kfold_mb"] / m["raw_mb"]
    print(f"| 3-fold search, 3 trials: (peak - libraries) / raw array | {kfold:.2f}x |")
    print(f"| wall time of the 3-fold search | {m['kfold_wall_s']:.0f} s |\n")
    n = args.digits_trials
    print(f"## Digits: dense network against convolution blocks, {n} trials each\n")
    print("| space | test log loss [95%] | test accuracy [95%] | wall (search + selection) |")
    print("| --- | --- | --- | --- |")
    for row in d:
        print(
            f"| {row['space']} | {_iv(row['log_loss'])} | {_iv(row['accuracy'])} | "
            f"{row['wall_s']:.0f} s |"
        )


if __name__ == "__main__":
    main()
