"""Share of the service's trial time spent outside Keras `fit` (default space, 3 trials).

    python bench/overhead.py

Each trial records `fit_s` (seconds inside `model.fit`, summed over folds); the rest of
its duration is study, storage, MLflow, preprocessing, model building and clean-up.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from search import backend

backend.start()

import optuna  # noqa: E402

from search.runner import run_search  # noqa: E402
from search.space.schema import load_space  # noqa: E402
from search.study import open_storage  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def main() -> None:
    home = Path(tempfile.mkdtemp())
    try:
        space = load_space(Path(__file__).resolve().parents[1] / "spaces" / "default.yaml")
        run_search(space, n_trials=1, home=home, progress=False, study_name="o")  # warm-up
        started = time.perf_counter()
        run_search(space, n_trials=3, home=home, progress=False, study_name="o")
        wall = time.perf_counter() - started
        trials = optuna.load_study(study_name="o", storage=open_storage(None, home)).trials[1:]
        total = sum(t.duration.total_seconds() for t in trials)
        fit = sum(float(t.user_attrs.get("fit_s", 0.0)) for t in trials)
        print(
            f"3 trials in {wall:.1f} s; inside fit {fit:.1f} s; outside fit "
            f"{100 * (1 - fit / total):.1f}% of trial time, {100 * (1 - fit / wall):.1f}% "
            "of the run's wall time"
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
