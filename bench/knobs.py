"""Do the course's knobs matter? Class weights and a tuned threshold on an imbalanced set.

breast_cancer with the malignant class cut to 30 rows (about 8% of 387), the rare class
as the positive one; the same search three ways (plain, `class_weight: balanced`,
`objective.threshold: tuned`), each with its final test scores and 95% intervals.

    python bench/knobs.py [--trials N] > bench/knobs.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_breast_cancer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPACE = """
study: {{name: {name}, trials: {trials}, sampler: tpe, pruner: none, seed: 5}}
data: {{source: rare.csv, target: malignant, test_size: 0.3}}
validation: {{scheme: kfold, folds: 4}}
objective: {{metric: f1{threshold}}}
params:
  depth: {{low: 1, high: 2}}
  width: {{low: 8, high: 64, log: true}}
  dropout: {{low: 0.0, high: 0.4}}
  learning_rate: {{low: 1.0e-3, high: 3.0e-2, log: true}}
  epochs: 80
  patience: 8{weight}
training: {{engine: sequential}}
selection: {{top_k: 3, recheck_folds: 4}}
"""

WAYS = {
    "plain": ("", ""),
    "class_weight: balanced": ("", "\n  class_weight: balanced"),
    "threshold: tuned": (", threshold: tuned", ""),
}


def main() -> None:
    from search import run_search, select

    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="knobs-"))
    frame = load_breast_cancer(as_frame=True).frame
    frame["malignant"] = 1 - frame.pop("target")  # the rare class is the positive one
    rare = pd.concat([frame[frame.malignant == 0], frame[frame.malignant == 1].head(30)])
    rare.to_csv(folder / "rare.csv", index=False)
    print(
        f"## Class weights and a tuned threshold on an imbalanced set (`bench/knobs.py "
        f"--trials {args.trials}`, {time.strftime('%Y-%m-%d')})"
    )
    print()
    print("breast_cancer, malignant cut to 30 of 387 rows, objective F1; final test scores:")
    print()
    print("| way | F1 | recall | precision | balanced accuracy | PR AUC | seconds |")
    print("|---|---|---|---|---|---|---:|")
    for i, (way, (threshold, weight)) in enumerate(WAYS.items()):
        name = f"knobs{i}"
        text = SPACE.format(name=name, trials=args.trials, threshold=threshold, weight=weight)
        (folder / f"{name}.yaml").write_text(text)
        started = time.perf_counter()
        run_search(folder / f"{name}.yaml", home=folder / "m", progress=False, quiet=True)
        result = select(name, home=folder / "m")
        seconds = time.perf_counter() - started
        cells = " | ".join(
            str(result.test[k])
            for k in ("f1", "recall", "precision", "balanced_accuracy", "pr_auc")
        )
        extra = f" (threshold {result.threshold:.3f})" if result.threshold is not None else ""
        print(f"| {way}{extra} | {cells} | {seconds:.0f} |", flush=True)
    print()


if __name__ == "__main__":
    main()
