"""XLA compilations of a search on the JAX backend, by the service's call site.

    KERAS_BACKEND=jax python bench/compiles.py [--trials 6] [--data digits]

JAX compiles every jitted function, and every eager op, once per new input shape; a
search's trials have new widths, hence new shapes. On a GPU a compilation costs 0.1 to
0.3 s, so the count per call site says what a trial pays outside the arithmetic.
Counts XLA's compile calls (a private JAX function, patched for this run only).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import SERVICE_SPACE


def site(stack: list[traceback.FrameSummary]) -> str:
    """The innermost frames of the service or Keras' trainer that asked for the compile."""
    frames = [
        f"{Path(f.filename).name}:{f.name}"
        for f in reversed(stack)
        if "/search/" in f.filename or "trainers/" in f.filename or "jax/trainer" in f.filename
    ]
    return " < ".join(frames[:3]) or "elsewhere"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--data", default="digits")
    args = parser.parse_args()

    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit("run with KERAS_BACKEND=jax")
    import jax._src.compiler as compiler

    from search.runner import run_search

    counts: collections.Counter[str] = collections.Counter()
    seconds: collections.Counter[str] = collections.Counter()
    original = compiler.backend_compile_and_load

    def counted(*a: Any, **k: Any) -> Any:
        key = site(traceback.extract_stack())
        started = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            seconds[key] += time.perf_counter() - started
            counts[key] += 1

    compiler.backend_compile_and_load = counted
    home = Path(tempfile.mkdtemp())
    space = home / "compiles.yaml"
    text = SERVICE_SPACE.format(data=args.data, seed=1, trials=args.trials, epochs=20, patience=4)
    space.write_text(text)
    started = time.perf_counter()
    run_search(space, home=home, progress=False)
    wall = time.perf_counter() - started
    print(f"{args.trials} trials on {args.data}: {wall:.1f} s, {sum(counts.values())} compilations")
    print("\n| compilations | s | where |\n|---:|---:|---|")
    for key, n in counts.most_common():
        print(f"| {n} | {seconds[key]:.2f} | {key} |")


if __name__ == "__main__":
    main()
