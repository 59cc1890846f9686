"""The service against what users would use instead, on the same search, in one run.

Peers: this service (`run_search`, full MLflow logging, pruning on; then `select`),
the same with its pack engine forced (`service_pack`), KerasTuner RandomSearch,
Hyperband and BayesianOptimization, and a plain Optuna + Keras script written as
Optuna's Keras example does (TPE, no pruning). Same data, same rows for training,
validation and test, same space (depth, width, dropout, L1, L2, learning rate,
batch size), same trial and epoch budget, same early-stopping rule (val_loss, patience,
best weights restored). Each peer runs in its own process so its peak RSS is its own.
Then the service runs once more with a time budget instead of a trial budget
(`service_anytime`; `--no-anytime` skips it), to show when it first matches
RandomSearch's best on the same hardware.

    python bench/peers.py --size smoke|full [--data digits breast_cancer] [--seeds 1 2 3]

Scores: the minimum Keras val_loss (what every KerasTuner peer optimises; it includes the
L1/L2 penalty, which depends on the weights, not on the predictions), the validation log
loss without that penalty at the epoch each trial keeps (a proper score of its
predictions, comparable across trials with different regularization), and the test log
loss and accuracy of the model each peer hands back. The time to a target is measured on
both validation scores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

# (seconds since the peer started, a finished trial's val_loss, its validation log loss)
Timeline = list[tuple[float, float, float]]

SIZES = {
    "tiny": {"trials": 2, "epochs": 3, "patience": 1},
    "smoke": {"trials": 6, "epochs": 20, "patience": 4},
    "full": {"trials": 20, "epochs": 60, "patience": 6},
}
PEERS = ["service", "service_pack", "kt_random", "kt_hyperband", "kt_bayes", "optuna_plain"]
# The service with its training engine forced to the pack (`auto` keeps a holdout search
# on a CPU sequential): the same space, trials and epochs, several trials per program.
PACK = "service_pack"
# The service once more with a time budget instead of a trial budget: trials unlimited,
# stopped at this share of the same seed's KerasTuner RandomSearch wall time. It measures
# how soon the service finds a model as good as RandomSearch's best, on the same hardware.
ANYTIME = "service_anytime"
ANYTIME_SHARE = 0.5


# ---------------------------------------------------------------- shared data and space


def arrays(data: str, seed: int) -> dict[str, np.ndarray]:
    """The service's own test split and holdout, scaled on the training rows."""
    from sklearn.preprocessing import StandardScaler

    from search.data.dataset import load_dataset
    from search.data.folds import make_folds
    from search.data.split import split_test
    from search.space.schema import DataSpec, ValidationSpec

    spec = DataSpec(source=data, seed=seed)
    ds = load_dataset(spec, base_dir=Path.cwd())
    split = split_test(ds, spec)
    fold = make_folds(
        ValidationSpec(scheme="holdout"), ds.y[split.train], classification=True, seed=seed
    )[0]
    tr, va = split.train[fold.train], split.train[fold.val]
    scaler = StandardScaler().fit(ds.X.iloc[tr])
    x = {
        k: scaler.transform(ds.X.iloc[rows]).astype("float32")
        for k, rows in (("train", tr), ("val", va), ("test", split.test))
    }
    return {
        "x_train": x["train"],
        "y_train": ds.y[tr],
        "x_val": x["val"],
        "y_val": ds.y[va],
        "x_test": x["test"],
        "y_test": ds.y[split.test],
        "n_classes": np.array(ds.n_classes),
    }


def keras_model(hp: dict[str, Any], n_features: int, n_classes: int) -> Any:
    import keras

    reg = keras.regularizers.L1L2(l1=hp["l1"], l2=hp["l2"])
    model = keras.Sequential([keras.Input(shape=(n_features,))])
    for _ in range(hp["depth"]):
        model.add(keras.layers.Dense(hp["width"], activation="relu", kernel_regularizer=reg))
        model.add(keras.layers.Dropout(hp["dropout"]))
    binary = n_classes == 2
    model.add(
        keras.layers.Dense(
            1 if binary else n_classes, activation="sigmoid" if binary else "softmax"
        )
    )
    model.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"]),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def kt_hp(hp: Any) -> dict[str, Any]:
    return {
        "depth": hp.Int("depth", 1, 3),
        "width": hp.Int("width", 16, 256, sampling="log"),
        "dropout": hp.Float("dropout", 0.0, 0.5),
        "l1": hp.Float("l1", 1e-6, 1e-2, sampling="log"),
        "l2": hp.Float("l2", 1e-6, 1e-2, sampling="log"),
        "learning_rate": hp.Float("learning_rate", 1e-4, 1e-2, sampling="log"),
        "batch_size": hp.Choice("batch_size", [32, 64]),
    }


def optuna_hp(trial: Any) -> dict[str, Any]:
    return {
        "depth": trial.suggest_int("depth", 1, 3),
        "width": trial.suggest_int("width", 16, 256, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "l1": trial.suggest_float("l1", 1e-6, 1e-2, log=True),
        "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64]),
    }


def test_scores(model: Any, a: dict[str, np.ndarray]) -> dict[str, float]:
    from search.metrics import scores

    task = "binary" if int(a["n_classes"]) == 2 else "multiclass"
    out = np.asarray(model(a["x_test"], training=False))
    s = scores(task, a["y_test"], out)
    return {"test_log_loss": s["log_loss"], "test_accuracy": s["accuracy"]}


# ---------------------------------------------------------------- one peer, in its own process


def run_peer(
    peer: str, data: str, seed: int, size: dict[str, int], timeout: float | None = None
) -> dict[str, Any]:
    import keras

    keras.utils.set_random_seed(seed)
    a = arrays(data, seed)
    started = time.perf_counter()
    timeline: Timeline = []
    if peer in ("service", PACK):
        engine = "pack" if peer == PACK else "auto"
        out = _service(data, seed, size, timeline, started, engine=engine)
    elif peer == ANYTIME:
        anytime = size | {"trials": 100 * size["trials"]}
        out = _service(data, seed, anytime, timeline, started, timeout=timeout, select=False)
    elif peer == "optuna_plain":
        out = _optuna_plain(a, seed, size, timeline, started)
    else:
        out = _keras_tuner(peer, a, seed, size, timeline, started)
    out["wall_s"] = out.get("wall_s", time.perf_counter() - started)
    out["timeline"] = timeline
    return out


class EpochCounter:
    """A peer's epochs trained, its last fit's validation log loss at its lowest val_loss,
    and its seconds building models and inside `fit`."""

    def __init__(self) -> None:
        self.epochs = 0
        self.val_loss = float("inf")
        self.val_log_loss = float("inf")
        self.fit_s = 0.0  # seconds inside Keras `fit`
        self.build_s = 0.0  # seconds building and compiling models

    def build(self, hp: dict[str, Any], n_features: int, n_classes: int) -> Any:
        started = time.perf_counter()
        model = keras_model(hp, n_features, n_classes)
        self.build_s += time.perf_counter() - started
        return model

    def fit(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return model.fit(*args, **kwargs)
        finally:
            self.fit_s += time.perf_counter() - started


def _callbacks(size: dict[str, int], counter: EpochCounter) -> list[Any]:
    import keras

    from search.models.forward import penalty

    class Count(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_begin(self, logs: Any = None) -> None:
            counter.val_loss = counter.val_log_loss = float("inf")

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            counter.epochs += 1
            value = float((logs or {}).get("val_loss", float("inf")))
            if value < counter.val_loss:  # the epoch EarlyStopping keeps: drop the penalty
                counter.val_loss, counter.val_log_loss = value, value - penalty(self.model)

    return [
        keras.callbacks.EarlyStopping(
            "val_loss", patience=size["patience"], restore_best_weights=True
        ),
        Count(),
    ]


def _keras_tuner(
    peer: str,
    a: dict[str, np.ndarray],
    seed: int,
    size: dict[str, int],
    timeline: Timeline,
    started: float,
) -> dict[str, Any]:
    import keras_tuner as kt

    n_features, n_classes = a["x_train"].shape[1], int(a["n_classes"])
    counter = EpochCounter()

    class Model(kt.HyperModel):  # type: ignore[misc]
        def build(self, hp: Any) -> Any:
            return counter.build(kt_hp(hp), n_features, n_classes)

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            return counter.fit(model, *args, batch_size=hp.get("batch_size"), **kwargs)

    directory = tempfile.mkdtemp()
    common = {
        "objective": "val_loss",
        "seed": seed or 1,
        "directory": directory,
        "project_name": peer,
        "overwrite": True,
    }
    if peer == "kt_random":
        tuner = kt.RandomSearch(Model(), max_trials=size["trials"], **common)
    elif peer == "kt_bayes":
        tuner = kt.BayesianOptimization(Model(), max_trials=size["trials"], **common)
    else:
        tuner = kt.Hyperband(Model(), max_epochs=size["epochs"], factor=3, **common)

    original = tuner.on_trial_end

    def on_trial_end(trial: Any) -> None:
        original(trial)
        if trial.score is not None:
            now = time.perf_counter() - started
            timeline.append((now, float(trial.score), counter.val_log_loss))

    tuner.on_trial_end = on_trial_end
    tuner.search(
        a["x_train"],
        a["y_train"],
        validation_data=(a["x_val"], a["y_val"]),
        epochs=size["epochs"],
        callbacks=_callbacks(size, counter),
        verbose=0,
    )
    wall, fit_s, build_s = time.perf_counter() - started, counter.fit_s, counter.build_s
    best = tuner.get_best_models(1)[0]
    trials = len(tuner.oracle.trials)
    return {
        "wall_s": wall,
        "trials": trials,
        "epochs": counter.epochs,
        "fit_s": fit_s,
        "build_s": build_s,
        **best_of(timeline),
        **test_scores(best, a),
    }


def _optuna_plain(
    a: dict[str, np.ndarray],
    seed: int,
    size: dict[str, int],
    timeline: Timeline,
    started: float,
) -> dict[str, Any]:
    import keras
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    n_features, n_classes = a["x_train"].shape[1], int(a["n_classes"])
    counter = EpochCounter()

    def objective(trial: Any) -> float:
        hp = optuna_hp(trial)
        keras.backend.clear_session()
        model = counter.build(hp, n_features, n_classes)
        hist = counter.fit(
            model,
            a["x_train"],
            a["y_train"],
            validation_data=(a["x_val"], a["y_val"]),
            epochs=size["epochs"],
            batch_size=hp["batch_size"],
            verbose=0,
            callbacks=_callbacks(size, counter),
        )
        value = float(min(hist.history["val_loss"]))
        timeline.append((time.perf_counter() - started, value, counter.val_log_loss))
        return value

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=size["trials"])
    wall = time.perf_counter() - started
    keras.utils.set_random_seed(seed)  # the user refits the best parameters
    model = keras_model(
        optuna_hp(optuna.trial.FixedTrial(study.best_params)), n_features, n_classes
    )
    model.fit(
        a["x_train"],
        a["y_train"],
        validation_data=(a["x_val"], a["y_val"]),
        epochs=size["epochs"],
        batch_size=study.best_params["batch_size"],
        verbose=0,
        callbacks=_callbacks(size, EpochCounter()),
    )
    return {
        "wall_s": wall,
        "trials": len(study.trials),
        "epochs": counter.epochs,
        "fit_s": counter.fit_s,
        "build_s": counter.build_s,
        **best_of(timeline),
        **test_scores(model, a),
    }


SERVICE_SPACE = """
study: {{name: bench, sampler: tpe, pruner: auto, trials: {trials}, seed: {seed}}}
data: {{source: {data}, seed: {seed}}}
validation: {{scheme: holdout, val_fraction: 0.2}}
selection: {{top_k: 3, recheck_folds: 3, bootstrap: 200}}
params:
  depth: {{low: 1, high: 3}}
  width: {{low: 16, high: 256, log: true}}
  dropout: {{low: 0.0, high: 0.5}}
  l1: {{low: 1.0e-6, high: 1.0e-2, log: true}}
  l2: {{low: 1.0e-6, high: 1.0e-2, log: true}}
  learning_rate: {{low: 1.0e-4, high: 1.0e-2, log: true}}
  batch_size: {{choices: [32, 64]}}
  optimizer: adam
  epochs: {epochs}
  patience: {patience}
"""


def _service(
    data: str,
    seed: int,
    size: dict[str, int],
    timeline: Timeline,
    started: float,
    *,
    timeout: float | None = None,
    select: bool = True,
    engine: str = "auto",
) -> dict[str, Any]:
    import optuna

    from search.runner import run_search
    from search.selection.selector import select as select_model
    from search.space.file import parse_space
    from search.study import open_storage

    home = Path(tempfile.mkdtemp())
    wall_start = time.time() - (time.perf_counter() - started)
    text = f"training: {{engine: {engine}}}\n" + SERVICE_SPACE.format(data=data, seed=seed, **size)
    space = parse_space(text, file="bench.yaml")
    result = run_search(space, home=home, progress=False, timeout=timeout)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name="bench", storage=open_storage(None, home))
    fit_s = build_s = 0.0
    epochs = 0
    for t in study.trials:
        fit_s += float(t.user_attrs.get("fit_s", 0.0))
        build_s += float(t.user_attrs.get("build_s", 0.0))
        epochs += sum(t.user_attrs.get("epochs", []))
        if t.datetime_complete and t.user_attrs.get("val_loss_min"):
            timeline.append(
                (
                    t.datetime_complete.timestamp() - wall_start,
                    float(min(t.user_attrs["val_loss_min"])),
                    float(t.user_attrs["cv_scores"]["cv_log_loss"]),  # at the epoch kept
                )
            )
    out = {
        "wall_s": wall,
        "trials": len(study.trials),
        "epochs": epochs,
        **best_of(timeline),
        "fit_s": fit_s,
        "build_s": build_s,
        "pruned": result.counts["pruned"],
    }
    if select:
        chosen = select_model("bench", home=home)
        out["test_log_loss"] = chosen.test["log_loss"].value
        out["test_accuracy"] = chosen.test["accuracy"].value
    return out


# ---------------------------------------------------------------- the driver


def child(
    peer: str, data: str, seed: int, size: str, timeout: float | None = None
) -> dict[str, Any]:
    """Run one peer in a fresh process; add its own peak RSS."""
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--one",
            peer,
            "--data",
            data,
            "--seeds",
            str(seed),
            "--size",
            size,
            *(["--timeout", str(timeout)] if timeout is not None else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{peer} on {data} failed")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


SCORES = {"best_val_loss": 1, "best_val_log_loss": 2}  # a score's column in a Timeline
SCORE_LABELS = (
    ("best_val_log_loss", "validation log loss"),
    ("best_val_loss", "val_loss (with the L1/L2 penalty)"),
)


def best_of(timeline: Timeline) -> dict[str, float]:
    return {
        key: min((row[col] for row in timeline), default=float("nan"))
        for key, col in SCORES.items()
    }


def time_to(timeline: Timeline, target: float, score: str = "best_val_log_loss") -> float | None:
    """When a peer's finished trials first reached `target` on `score`."""
    for row in sorted(timeline):
        if row[SCORES[score]] <= target:
            return row[0]
    return None


def _share(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{100 * value:.1f}"


def _secs(value: float) -> str:
    return "not reached" if np.isnan(value) else f"{value:.0f}"


def _installed(package: str) -> bool:
    try:
        metadata.version(package)
    except metadata.PackageNotFoundError:
        return False
    return True


def report(results: dict[tuple[str, str, int], dict[str, Any]], size: str) -> str:
    versions = ", ".join(
        f"{p} {metadata.version(p)}"
        for p in ("tensorflow", "jax", "keras", "keras-tuner", "optuna", "mlflow")
        if _installed(p)
    )
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    prefix = "" if backend == "tensorflow" else f"KERAS_BACKEND={backend} "
    lines = [
        f"## Peers ({size} size, Keras backend {backend}), {time.strftime('%Y-%m-%d')}",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()};"
        f" {versions}. Command: `{prefix}python bench/peers.py --size {size} --seeds "
        f"{' '.join(str(s) for s in sorted({s for _, _, s in results}))}`.",
        "",
    ]
    datasets = sorted({d for _, d, _ in results})
    seeds = sorted({s for _, _, s in results})
    for data in datasets:
        lines += [
            f"### {data} (mean of seeds {seeds})",
            "",
            "| peer | wall s | trials | epochs | best val_loss | best val log loss | "
            "test log loss | test accuracy | time to KT random's best val log loss, s | "
            "outside `fit`, % | building models, % | peak RSS MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows: dict[str, dict[str, float]] = {}
        for peer in PEERS:
            runs = [results[(peer, data, s)] for s in seeds if (peer, data, s) in results]
            if not runs:
                continue
            ttt = [_time_to_kt(results, peer, data, s, "best_val_log_loss") for s in seeds]
            reached = [t for t in ttt if t is not None]
            row = {
                k: float(np.mean([r[k] for r in runs]))
                for k in (
                    "wall_s",
                    "trials",
                    "epochs",
                    "best_val_loss",
                    "best_val_log_loss",
                    "test_log_loss",
                    "test_accuracy",
                    "peak_rss_mb",
                )
            }
            row["ttt"] = float(np.mean(reached)) if len(reached) == len(ttt) else float("nan")
            for key in ("fit_s", "build_s"):
                row[key] = float(np.mean([r.get(key, np.nan) for r in runs]))
            rows[peer] = row
            # a packed trial's fit_s is its share of programs that ran side by side
            outside = "-" if peer == PACK else _share(1 - row["fit_s"] / row["wall_s"])
            building = "-" if peer == PACK else _share(row["build_s"] / row["wall_s"])
            lines.append(
                f"| {peer} | {row['wall_s']:.0f} | {row['trials']:.0f} | "
                f"{row['epochs']:.0f} | {row['best_val_loss']:.4f} | "
                f"{row['best_val_log_loss']:.4f} | "
                f"{row['test_log_loss']:.4f} | {row['test_accuracy']:.4f} | "
                f"{_secs(row['ttt'])} | "
                f"{outside} | {building} | "
                f"{row['peak_rss_mb']:.0f} |"
            )
        svc = rows.get("service")
        if svc:
            outside, build = 1 - svc["fit_s"] / svc["wall_s"], svc["build_s"] / svc["wall_s"]
            lines += [
                "",
                f"Service: {_share(outside)}% of its search wall time outside Keras `fit`: "
                f"{_share(build)}% building, compiling and making the variables of its models "
                "(Keras' work, which every peer does too: KerasTuner and the plain script make "
                "the variables inside `fit`), and "
                f"{_share(outside - build)}% its own (imports, study, storage, MLflow, data, "
                "scoring).",
            ]
            lines += [
                "",
                "| ratio service / peer | wall time | epochs | test log loss | trials per hour |",
                "|---|---:|---:|---:|---:|",
            ]
            for name in ("service", PACK):
                own = rows.get(name)
                for peer, row in rows.items() if own else ():
                    if peer not in ("service", PACK):
                        lines.append(
                            f"| {name} / {peer} | {own['wall_s'] / row['wall_s']:.2f} | "
                            f"{own['epochs'] / row['epochs']:.2f} | "
                            f"{own['test_log_loss'] / row['test_log_loss']:.2f} | "
                            f"{_per_hour(own) / _per_hour(row):.2f} |"
                        )
            if "kt_random" in rows:
                lines.append("")
                for score, label in SCORE_LABELS:
                    lines.append(_time_to_line(results, "service", data, seeds, score, label))
            anytime = [results[(ANYTIME, data, s)] for s in seeds if (ANYTIME, data, s) in results]
            if anytime and "kt_random" in rows:
                trials = np.mean([r["trials"] for r in anytime])
                lines += [
                    "",
                    f"The service with a time budget instead of a trial budget (`{ANYTIME}`: "
                    f"trials unlimited, stopped at {ANYTIME_SHARE}x the seed's KT RandomSearch "
                    f"wall time; {trials:.0f} trials on average):",
                    "",
                ]
                for score, label in SCORE_LABELS:
                    lines.append(_time_to_line(results, ANYTIME, data, seeds, score, label))
        lines.append("")
    return "\n".join(lines)


def _per_hour(row: dict[str, float]) -> float:
    return 3600 * row["trials"] / row["wall_s"]


def _time_to_kt(
    results: dict[tuple[str, str, int], dict[str, Any]],
    peer: str,
    data: str,
    seed: int,
    score: str,
) -> float | None:
    """When `peer` first reached the best `score` KerasTuner RandomSearch ended with."""
    if (peer, data, seed) not in results:
        return None
    target = results[("kt_random", data, seed)][score]
    return time_to(results[(peer, data, seed)]["timeline"], target, score)


def _time_to_line(
    results: dict[tuple[str, str, int], dict[str, Any]],
    peer: str,
    data: str,
    seeds: list[int],
    score: str,
    label: str,
) -> str:
    """A service run's time to KT RandomSearch's best, as a share of KT's wall time."""
    ratios = []
    for s in seeds:
        hit = _time_to_kt(results, peer, data, s, score)
        ratios.append(None if hit is None else hit / results[("kt_random", data, s)]["wall_s"])
    per_seed = "; ".join(
        f"seed {s}: " + ("not reached" if r is None else f"{r:.2f}x")
        for s, r in zip(seeds, ratios, strict=True)
    )
    mean = (
        "not reached in every seed"
        if None in ratios
        else f"mean {np.mean([r for r in ratios if r is not None]):.2f}x"
    )
    return (
        f"- Time for `{peer}` to reach KT RandomSearch's best {label}, as a share of KT's "
        f"wall time: {mean} ({per_seed})."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=list(SIZES), default="smoke")
    parser.add_argument("--data", nargs="+", default=["digits", "breast_cancer"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--peers", nargs="+", default=PEERS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, help=argparse.SUPPRESS)
    parser.add_argument(
        "--no-anytime",
        action="store_true",
        help=f"skip {ANYTIME} (the service with a time budget of "
        f"{ANYTIME_SHARE}x KerasTuner RandomSearch's wall time)",
    )
    parser.add_argument("--out", default="bench/peers.md")
    args = parser.parse_args()
    if args.one:
        from search import backend

        backend.start()
        result = run_peer(args.one, args.data[0], args.seeds[0], SIZES[args.size], args.timeout)
        print(json.dumps(result))
        return
    results = {}
    for data in args.data:
        for seed in args.seeds:
            for peer in ["kt_random", *[p for p in args.peers if p != "kt_random"]]:
                print(f"{data} seed {seed}: {peer} ...", file=sys.stderr, flush=True)
                results[(peer, data, seed)] = child(peer, data, seed, args.size)
            if not args.no_anytime:
                print(f"{data} seed {seed}: {ANYTIME} ...", file=sys.stderr, flush=True)
                budget = ANYTIME_SHARE * results[("kt_random", data, seed)]["wall_s"]
                results[(ANYTIME, data, seed)] = child(ANYTIME, data, seed, args.size, budget)
    text = report(results, args.size)
    Path(args.out).write_text(text)
    raw = [{"peer": p, "data": d, "seed": s, **r} for (p, d, s), r in results.items()]
    Path(args.out).with_suffix(".json").write_text(json.dumps(raw, indent=1))
    print(text)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
