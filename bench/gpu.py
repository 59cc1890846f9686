"""Trials per hour on one GPU: the service packing 1, 2, 4, 8 trials on it, against KerasTuner.

    python bench/gpu.py [--data digits] [--trials 32] [--epochs 20] [--packs 1 2 4 8]

Three parts, in one run on the same GPU:
1. epoch time of one model by precision (float32, mixed_bfloat16, mixed_float16) and
   steps_per_execution, for a small and a wide MLP: what `precision: auto` rests on;
2. `search run SPACE --gpus 0 --per-gpu K` for each K: trials per hour, epochs, mean GPU
   utilisation and peak GPU memory (nvidia-smi, sampled every 0.5 s);
3. KerasTuner RandomSearch in one process on the same GPU, same space, trials and epochs.
Prints Markdown. Needs a GPU; any Keras backend (KERAS_BACKEND) that sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_cost import MLP
from peers import SERVICE_SPACE, _installed, _keras_tuner, arrays


class GpuSampler:
    """nvidia-smi every 0.5 s in a thread: mean utilisation and peak memory used."""

    def __init__(self) -> None:
        self.util: list[float] = []
        self.mem: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and shutil.which("nvidia-smi"):
            out = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split("\n")[0]
            try:
                util, mem = (float(v) for v in out.split(","))
            except ValueError:
                pass
            else:
                self.util.append(util)
                self.mem.append(mem)
            self._stop.wait(0.5)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> tuple[float, float]:
        return (statistics.fmean(self.util) if self.util else 0.0, max(self.mem, default=0.0))


def epoch_times(data: str, precisions: list[str], spes: list[int]) -> list[dict[str, Any]]:
    """Seconds per epoch of one MLP by precision and steps_per_execution (after a warm-up)."""
    import keras

    from search.engines.feed import fit_inputs
    from search.models.build import build_model
    from search.params import TrialParams

    a = arrays(data, 1)
    n_classes = int(a["n_classes"])
    task = "binary" if n_classes == 2 else "multiclass"
    rows = []
    for width, batch in ((64, 64), (1024, 256)):
        for precision in precisions:
            for spe in spes:
                keras.config.set_dtype_policy(precision)
                params = MLP | {"widths": [width] * 3}
                model = build_model(
                    TrialParams.read(params),
                    n_features=a["x_train"].shape[1],
                    task=task,
                    n_classes=n_classes,
                    steps_per_execution=spe,
                )
                feed = fit_inputs(a["x_train"], a["y_train"], batch_size=batch, seed=1)
                model.fit(**feed, epochs=1, verbose=0)  # compile and warm up
                started = time.perf_counter()
                model.fit(**feed, epochs=10, verbose=0)
                per_epoch = (time.perf_counter() - started) / 10
                rows.append(
                    {
                        "width": width,
                        "batch": batch,
                        "precision": precision,
                        "spe": spe,
                        "epoch_ms": 1000 * per_epoch,
                    }
                )
                keras.backend.clear_session()
    keras.config.set_dtype_policy("float32")
    return rows


def service(data: str, trials: int, epochs: int, pack: int, precision: str) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp())
    space = home / "gpu.yaml"
    text = SERVICE_SPACE.format(data=data, seed=1, trials=trials, epochs=epochs, patience=4)
    space.write_text(text + f"training: {{precision: {precision}}}\n")
    command = [
        sys.executable,
        "-m",
        "search.cli.main",
        "run",
        str(space),
        "--home",
        str(home),
        "--gpus",
        "0",
        "--per-gpu",
        str(pack),
        "--no-select",
        "-q",
    ]
    started = time.perf_counter()
    with GpuSampler() as gpu:
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"service failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    import optuna

    from search.study import open_storage

    study = optuna.load_study(study_name="bench", storage=open_storage(None, home))
    done = [t for t in study.trials if t.state.is_finished()]
    util, mem = gpu.summary()
    # the objective: the validation log loss of the restored model's predictions
    best = min((t.value for t in done if t.value is not None), default=float("nan"))
    return {
        "peer": f"service, {pack} per GPU, {precision}",
        "wall_s": wall,
        "trials": len(done),
        "epochs": sum(sum(t.user_attrs.get("epochs", [])) for t in done),
        "best_val_loss": min(
            (
                float(min(t.user_attrs["val_loss_min"]))
                for t in done
                if "val_loss_min" in t.user_attrs
            ),
            default=best,
        ),
        "best_val_log_loss": best,
        "fit_s": sum(float(t.user_attrs.get("fit_s", 0.0)) for t in done),
        "build_s": sum(float(t.user_attrs.get("build_s", 0.0)) for t in done),
        "gpu_util": util,
        "gpu_mem_mb": mem,
    }


def keras_tuner(data: str, trials: int, epochs: int) -> dict[str, Any]:
    """KerasTuner RandomSearch in one process, as bench/peers.py runs it."""
    size = {"trials": trials, "epochs": epochs, "patience": 4}
    with GpuSampler() as gpu:
        out = _keras_tuner("kt_random", arrays(data, 1), 1, size, [], time.perf_counter())
    util, mem = gpu.summary()
    return {
        "peer": "KerasTuner RandomSearch, one process",
        **{
            k: out[k]
            for k in (
                *("wall_s", "trials", "epochs", "fit_s", "build_s"),
                *("best_val_loss", "best_val_log_loss"),
            )
        },
        "gpu_util": util,
        "gpu_mem_mb": mem,
    }


def gpu_name() -> str:
    if shutil.which("nvidia-smi") is None:
        return "no GPU"
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "no GPU"


def markdown(
    args: argparse.Namespace, epochs: list[dict[str, Any]], runs: list[dict[str, Any]]
) -> str:
    import keras

    versions = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in ("keras", "jax", "tensorflow", "optuna", "mlflow")
        if _installed(p)
    )
    lines = [
        f"## One GPU: packing trials ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {gpu_name()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}; "
        f"Keras backend {keras.backend.backend()}; {versions}. Command: `python bench/gpu.py "
        f"--data {args.data} --trials {args.trials} --epochs {args.epochs}`.",
        "",
        "### Epoch time of one model",
        "",
        "| width x 3 | batch | precision | steps_per_execution | ms per epoch |",
        "|---:|---:|---|---:|---:|",
    ]
    lines += [
        f"| {r['width']} | {r['batch']} | {r['precision']} | {r['spe']} | {r['epoch_ms']:.1f} |"
        for r in epochs
    ]
    kt = next((r for r in runs if r["peer"].startswith("KerasTuner")), None)
    lines += [
        "",
        f"### {args.data}: {args.trials} trials of at most {args.epochs} epochs",
        "",
        "| peer | wall s | trials | epochs | trials per hour | vs KerasTuner | best val_loss "
        "| best val log loss | in `fit` s | building models s | mean GPU util % | peak GPU MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        per_hour = 3600 * r["trials"] / r["wall_s"]
        ratio = per_hour / (3600 * kt["trials"] / kt["wall_s"]) if kt else float("nan")
        lines.append(
            f"| {r['peer']} | {r['wall_s']:.0f} | {r['trials']} | {r['epochs']} | {per_hour:.0f} "
            f"| {ratio:.2f}x | {r['best_val_loss']:.4f} | {r['best_val_log_loss']:.4f} "
            f"| {r['fit_s']:.0f} | {r['build_s']:.0f} | {r['gpu_util']:.0f} "
            f"| {r['gpu_mem_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--skip-epochs", action="store_true")
    parser.add_argument(
        "--precisions", nargs="+", default=["float32", "mixed_bfloat16", "mixed_float16"]
    )
    parser.add_argument("--spe", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    from search import backend

    backend.start()
    epochs = [] if args.skip_epochs else epoch_times(args.data, args.precisions, args.spe)
    print(json.dumps(epochs), file=sys.stderr, flush=True)
    runs = [keras_tuner(args.data, args.trials, args.epochs)]
    print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    for pack in args.packs:
        runs.append(service(args.data, args.trials, args.epochs, pack, args.precision))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"epochs": epochs, "runs": runs}, indent=1))
    print(markdown(args, epochs, runs))


if __name__ == "__main__":
    main()
