"""Fixed cost of one model per backend: building it, its first epoch, then 10 epochs.

    KERAS_BACKEND=jax python bench/model_cost.py      # or tensorflow (the default)

Compares, in one run, the service's way (host-drawn Glorot weights on JAX/PyTorch, full
batches of a fresh permutation each epoch, the optimizer's and metrics' variables created
before `fit`: `search.models.build.build_state`) with the same less that last step, and with
Keras' defaults (its own initialiser, NumPy arrays with a ragged last batch), on digits'
1,150 training rows, 3 models of different widths each (a search varies widths, so every
model compiles anew). Prints Markdown.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MLP = {  # the built-in MLP's parameters, less its widths (shared with bench/gpu.py)
    "batch_norm": False,
    "activation": "relu",
    "dropout": 0.1,
    "l1": 0.0,
    "l2": 1e-4,
    "optimizer": "adam",
    "learning_rate": 1e-3,
}


def main() -> None:
    from search import backend

    backend.start()
    import keras
    from sklearn.datasets import load_digits

    from search.engines.feed import fit_inputs, validation_inputs
    from search.models import build as service_model
    from search.params import TrialParams

    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype("float32")
    xt, yt, xv, yv = x[:1150], y[:1150], x[1150:1440], y[1150:1440]
    params = MLP
    own_init = service_model._kernel_initializer
    rows = []
    late = "service, variables left to the first trace"
    for way in ("Keras defaults", late, "service"):
        if way == "Keras defaults":
            service_model._kernel_initializer = lambda: "glorot_uniform"  # type: ignore[assignment]
        else:
            service_model._kernel_initializer = own_init  # type: ignore[assignment]
        times: dict[str, list[float]] = {"build": [], "first": [], "ten": []}
        for width in (61, 97, 133):
            keras.utils.set_random_seed(width)
            t0 = time.perf_counter()
            net = service_model.build_model(
                TrialParams.read(params | {"widths": [width] * 3}),
                n_features=64,
                task="multiclass",
                n_classes=10,
            )
            if way == "service":
                service_model.build_state(net, xt, yt)
            t1 = time.perf_counter()
            if way == "Keras defaults":
                feed = {"x": xt, "y": yt, "batch_size": 32, "validation_data": (xv, yv)}
            else:
                feed = fit_inputs(xt, yt, batch_size=32, seed=width) | validation_inputs(xv, yv)
            net.fit(**feed, epochs=1, verbose=0)
            t2 = time.perf_counter()
            net.fit(**feed, epochs=10, verbose=0)
            t3 = time.perf_counter()
            times["build"].append(t1 - t0)
            times["first"].append(t2 - t1)
            times["ten"].append(t3 - t2)
            keras.backend.clear_session()
        rows.append((way, {k: statistics.fmean(v) for k, v in times.items()}))
    print(f"### Cost of one model, Keras backend {keras.backend.backend()}\n")
    print("| way | build s | first epoch s | 10 more epochs s |")
    print("|---|---:|---:|---:|")
    for way, t in rows:
        print(f"| {way} | {t['build']:.2f} | {t['first']:.2f} | {t['ten']:.2f} |")


if __name__ == "__main__":
    main()
