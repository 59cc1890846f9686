"""Early stopping follows the objective's metric when the space asks; that metric is
scored after each epoch, so a holdout search is pruned on it and its curve is logged."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest

from search import reproduce, run_search
from search.data.dataset import load_dataset
from search.data.foldarrays import fold_arrays
from search.data.folds import make_folds
from search.data.split import split_test
from search.engines.base import StopRule, stop_rule
from search.engines.choose import make_engine
from search.engines.sequential import fit_fold
from search.metrics import DATA_LOSS
from search.params import TrialParams
from search.space.file import load_space
from search.space.schema import DataSpec, ValidationSpec
from tests.conftest import ROOT, run_cli

SPACE = """
study: {{name: {name}, trials: {trials}, sampler: random, pruner: {pruner}, seed: 4}}
data: {{source: breast_cancer, test_size: 0.25}}
validation: {{scheme: holdout}}
objective: {{metric: {metric}, early_stopping: {stopping}}}
params: {{depth: 1, width: {{low: 4, high: 16}}, learning_rate: {{low: 0.001, high: 0.05}},
          epochs: 12, patience: 3}}
training: {{engine: {engine}}}
"""


def _space(tmp: Path, **values: object) -> Path:
    fields = {
        "name": "stop",
        "trials": 3,
        "pruner": "none",
        "metric": "roc_auc",
        "stopping": "objective",
        "engine": "auto",
        **values,
    }
    path = tmp / "s.yaml"
    path.write_text(SPACE.format(**fields))
    return path


@pytest.mark.parametrize(
    ("metric", "stopping", "rule"),
    [
        ("roc_auc", "objective", StopRule("val_roc_auc", "max", "roc_auc")),
        ("roc_auc", "loss", StopRule(DATA_LOSS, "min", "roc_auc")),
        ("accuracy", "objective", StopRule("val_accuracy", "max", "")),
        ("f1", "objective", StopRule("val_f1", "max", "f1")),
        ("loss", "objective", StopRule(DATA_LOSS, "min", "")),
    ],
)
def test_the_rule_follows_the_space(
    tmp_path: Path, metric: str, stopping: str, rule: StopRule
) -> None:
    space = load_space(_space(tmp_path, metric=metric, stopping=stopping))
    assert stop_rule(space) == rule


def test_a_fold_stops_and_restores_on_the_objective(tmp_path: Path) -> None:
    """The restored model's ROC AUC is the best epoch's, and the best epoch is the one
    with the highest per-epoch ROC AUC (not the lowest loss)."""
    spec = DataSpec(source="breast_cancer")
    data = load_dataset(spec, base_dir=ROOT)
    rows = split_test(data, spec).train
    fold = make_folds(ValidationSpec(scheme="holdout"), data.y[rows], classification=True, seed=1)[
        0
    ]
    params = {
        "widths": [8], "activation": "relu", "dropout": 0.0, "l1": 0.0, "l2": 0.0,
        "batch_norm": False, "optimizer": "adam", "learning_rate": 0.05, "batch_size": 32,
        "epochs": 15, "patience": 4, "precision": "float32",
    }  # fmt: skip
    rule = StopRule("val_roc_auc", "max", "roc_auc")
    _, result = fit_fold(
        TrialParams.read(params),
        fold_arrays(data, rows, fold),
        data=data,
        seed=2,
        spe=1,
        rule=rule,
    )
    auc = result.history["val_roc_auc"]
    assert len(auc) == result.epochs == len(result.history[DATA_LOSS])
    assert result.best_epoch == int(np.argmax(auc)) + 1
    assert result.scores["roc_auc"] == pytest.approx(auc[result.best_epoch - 1], abs=1e-6)


def test_a_holdout_search_reports_and_reproduces_the_objective_each_epoch(tmp_path: Path) -> None:
    """Each holdout trial reports ROC AUC per epoch to the pruner (so it can be pruned on
    it), logs the curve, and its fold reproduces number for number."""
    space = _space(tmp_path, pruner="median")
    result = run_search(space, home=tmp_path / "m", progress=False, quiet=True)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "m" / "optuna.journal"))
    )
    study = optuna.load_study(study_name="stop", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for trial in done:
        curve = list(trial.intermediate_values.values())
        assert curve and all(0.0 <= v <= 1.0 for v in curve)  # AUCs, not losses
        assert max(curve) == pytest.approx(trial.value, abs=1e-6)  # restored on the best AUC
    mlflow.set_tracking_uri(result.tracking_uri)
    run_id = done[0].user_attrs["mlflow_run_id"]
    history = mlflow.MlflowClient().get_metric_history(run_id, "fold_0/val_roc_auc")
    assert len(history) == len(done[0].intermediate_values)
    assert reproduce(run_id, home=tmp_path / "m").equal


def test_auto_trains_one_model_at_a_time_and_pack_is_refused(tmp_path: Path) -> None:
    space = load_space(_space(tmp_path))
    assert make_engine(space).name == "sequential"
    (tmp_path / "p").mkdir()
    _space(tmp_path / "p", engine="pack")
    out = run_cli("run", "s.yaml", "--home", "store", cwd=tmp_path / "p", timeout=120)
    assert out.returncode == 2, out.stderr
    assert "s.yaml:5: objective.early_stopping" in out.stderr
    assert "needs engine: sequential" in out.stderr
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["s.yaml"]
