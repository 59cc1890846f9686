"""The Ray engine on a local Ray runtime that declares logical GPUs (no GPU needed)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.pool.queue import Queue, submit
from search.study import open_storage

if os.environ.get("CI") == "true":  # CI installs the dev extras: Ray must be there
    import ray
else:
    ray = pytest.importorskip("ray")

SPACE = """
study: {name: r, trials: 4, sampler: random, pruner: none}
data: {source: iris}
validation: {scheme: kfold, folds: 2}
params: {depth: 1, width: 4, epochs: 2, patience: 1}
"""


def test_ray_actors_get_gpus_and_run_the_queue(tmp_path: Path) -> None:
    from search.pool.cluster import serve_ray

    (tmp_path / "r.yaml").write_text(SPACE)
    home = tmp_path / "m"
    submit(tmp_path / "r.yaml", Queue.open(None, home))
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = serve_ray(
            None,
            workers=4,
            gpus_per_worker=0.5,
            storage=None,
            home=home,
            tracking_uri=None,
            recycle=10,
        )
    finally:
        ray.shutdown()
    # two workers packed on each of the two logical GPUs
    assert Counter(report.devices) == {"0": 2, "1": 2}
    trials = optuna.load_study(study_name="r", storage=open_storage(None, home)).trials
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 4
    slot_gpu = {int(s): d for s, d in enumerate(report.devices)}
    for t in done:  # each trial ran with the GPU its actor was given
        assert t.user_attrs["cuda_visible_devices"] == slot_gpu[int(t.user_attrs["slot"])]
