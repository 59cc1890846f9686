"""The service's final model against scikit-learn's usual models, on the same rows.

For each shipped data set: the service's search and selection (its shipped space, or
the default one pointed at the data set), then HistGradientBoosting, RandomForest and a
linear model (logistic regression / ridge, strength chosen by cross-validation) fitted
on the same training rows with the same preprocessing, all scored on the same test rows
with the service's own metrics; the difference service - best peer with a paired 95%
bootstrap interval, and each one's wall time.

    python bench/models.py [--trials N] [--sets a,b] > bench/models.md

The service's seconds include its selection (recheck, refit, test, registering).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETS = {  # name -> (space file, data source or None to keep the space's)
    "breast_cancer": ("breast_cancer.yaml", None),
    "digits": ("digits.yaml", None),
    "diabetes": ("diabetes.yaml", None),
    "wine": ("default.yaml", "wine"),
    "iris": ("default.yaml", "iris"),
    "churn": ("churn_csv.yaml", str(ROOT / "spaces" / "data" / "churn.csv")),
}


def _space(name: str, trials: int | None, folder: Path) -> Path:
    file, source = SETS[name]
    raw = yaml.safe_load((ROOT / "spaces" / file).read_text())
    raw["study"] = {**raw.get("study", {}), "name": f"bench-{name}"}
    if trials is not None:
        raw["study"]["trials"] = trials
    if source is not None:
        raw["data"]["source"] = source
    raw["model"] = {
        k: str(ROOT / "spaces" / v) if k == "hypermodel" else v
        for k, v in raw.get("model", {}).items()
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _peers(task: str) -> dict[str, Any]:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    if task == "regression":
        return {
            "hist_gb": HistGradientBoostingRegressor(random_state=0),
            "forest": RandomForestRegressor(n_estimators=300, random_state=0, n_jobs=-1),
            "linear": RidgeCV(alphas=np.logspace(-3, 3, 13)),
        }
    return {
        "hist_gb": HistGradientBoostingClassifier(random_state=0),
        "forest": RandomForestClassifier(n_estimators=300, random_state=0, n_jobs=-1),
        "linear": LogisticRegressionCV(Cs=13, max_iter=5000),
    }


def _output(task: str, model: Any, x: np.ndarray) -> np.ndarray:
    """A fitted model's output as the service's network gives it."""
    if task == "regression":
        return np.asarray(model.predict(x), dtype=float).reshape(-1, 1)
    proba = np.asarray(model.predict_proba(x), dtype=float)
    return proba[:, 1:] if task == "binary" else proba


def bench(name: str, trials: int | None) -> dict[str, Any]:
    """The service and the peers on one data set: test scores, outputs, seconds."""
    from search import run_search
    from search.data.dataset import make_preprocessor
    from search.metrics import scores
    from search.prepare import prepare
    from search.selection.selector import select
    from search.space.file import load_space

    folder = Path(tempfile.mkdtemp(prefix=f"models-{name}-"))
    space_path = _space(name, trials, folder)
    started = time.perf_counter()
    run_search(space_path, home=folder / "m", progress=False, quiet=True)
    result = select(f"bench-{name}", home=folder / "m")
    service_s = time.perf_counter() - started
    prep = prepare(load_space(space_path))
    data, split = prep.data, prep.split
    y_test = data.y[split.test]
    rows = {"service": _service(result.model_uri, folder, data, split.test, service_s)}
    pre = make_preprocessor(data.encodings).fit(data.X.iloc[split.train])
    x_train = pre.transform(data.X.iloc[split.train])
    x_test = pre.transform(data.X.iloc[split.test])
    for peer, model in _peers(data.task).items():
        t0 = time.perf_counter()
        model.fit(x_train, data.y[split.train])
        out = _output(data.task, model, x_test)
        seconds = time.perf_counter() - t0
        rows[peer] = {"scores": scores(data.task, y_test, out), "seconds": seconds, "output": out}
    return {"task": data.task, "rows": rows, "y": y_test}


def _service(uri: str, folder: Path, data: Any, test: np.ndarray, seconds: float) -> dict[str, Any]:
    """The registered champion's outputs on the raw test rows, as a user gets them."""
    import mlflow

    from search.metrics import scores

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'm' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model(uri)
    frame = model.predict(data.X.iloc[test], params={"output": "proba"})
    if data.task == "regression":
        out = np.asarray(frame["prediction"], dtype=float).reshape(-1, 1)
    else:
        proba = frame[[f"proba_{label}" for label in data.labels]].to_numpy(dtype=float)
        out = proba[:, 1:] if data.task == "binary" else proba
    return {"scores": scores(data.task, data.y[test], out), "seconds": seconds, "output": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, help="the budget (default: each space's own)")
    parser.add_argument("--sets", default=",".join(SETS))
    args = parser.parse_args()
    print(
        "## The service against scikit-learn's models "
        f"(`bench/models.py{f' --trials {args.trials}' if args.trials else ''}`, "
        f"{time.strftime('%Y-%m-%d')}; each shipped space's own budget unless --trials)"
    )
    print()
    print(
        "| data | metric | service | hist_gb | forest | linear | best peer "
        "| service - best [95%] | seconds (service / hgb / rf / linear) |"
    )
    print("|---|---|---:|---:|---:|---:|---|---|---|")
    for name in args.sets.split(","):
        out = bench(name, args.trials)
        for line in _lines(name, out):
            print(line, flush=True)
    print()


def _lines(name: str, out: dict[str, Any]) -> list[str]:
    from search.selection.bootstrap import bootstrap_scores, resample_counts

    task, rows, y = out["task"], out["rows"], out["y"]
    metrics = ("mae", "mse") if task == "regression" else ("log_loss", "accuracy")
    counts = resample_counts(len(y), 1000, 0)
    peers = [p for p in rows if p != "service"]
    lines = []
    for metric in metrics:
        higher = metric == "accuracy"
        best = (max if higher else min)(peers, key=lambda p: rows[p]["scores"][metric])
        diff = rows["service"]["scores"][metric] - rows[best]["scores"][metric]
        a = bootstrap_scores(task, y, rows["service"]["output"], counts)[metric]
        b = bootstrap_scores(task, y, rows[best]["output"], counts)[metric]
        lo, hi = np.nanpercentile(a - b, [2.5, 97.5])
        seconds = " / ".join(f"{rows[p]['seconds']:.1f}" for p in ["service", *peers])
        cells = " | ".join(f"{rows[p]['scores'][metric]:.4f}" for p in ["service", *peers])
        lines.append(
            f"| {name} | {metric} | {cells} | {best} | {diff:+.4f} [{lo:+.4f}, {hi:+.4f}] "
            f"| {seconds} |"
        )
    return lines


if __name__ == "__main__":
    main()
