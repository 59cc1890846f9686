"""End to end on real stores in temporary folders: the run tree, resume, failures, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.params import TrialParams
from search.prepare import prepare
from search.runner import run_search
from search.space.file import load_space, parse_space
from search.space.sampling import center
from search.study import open_storage
from search.summary import SearchResult
from search.tracking import ROLE
from tests.conftest import run_cli, tiny_space


def _runs(result: SearchResult) -> list:  # type: ignore[type-arg]
    client = MlflowClient(result.tracking_uri)
    return client.search_runs([result.experiment_id], max_results=1000)


def _tree(result: SearchResult) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {}
    for run in _runs(result):
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            children.setdefault(parent, []).append(run.info.run_id)
    return children


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchResult]:
    tmp = tmp_path_factory.mktemp("e2e")
    space = tiny_space(tmp, name="tree", trials=2, folds=3)
    return tmp, run_search(space, home=tmp / "mlruns", progress=False)


def test_run_tree_is_study_then_trials_then_folds(searched: tuple[Path, SearchResult]) -> None:
    _, result = searched
    runs = {r.info.run_id: r for r in _runs(result)}
    roles = {rid: r.data.tags[ROLE] for rid, r in runs.items()}
    tree = _tree(result)
    studies = [rid for rid, role in roles.items() if role == "study"]
    assert studies == [result.parent_run_id]
    trials = tree[result.parent_run_id]
    assert len(trials) == 2 and all(roles[t] == "trial" for t in trials)
    for t in trials:
        folds = tree[t]
        assert len(folds) == 3 and all(roles[f] == "fold" for f in folds)
    # nothing is left RUNNING
    assert {r.info.status for r in runs.values()} == {"FINISHED"}


def test_the_first_trial_is_the_center_and_its_run_says_so(
    searched: tuple[Path, SearchResult],
) -> None:
    tmp, result = searched
    trials = {r.data.tags["search.trial"]: r for r in _runs(result) if r.data.tags[ROLE] == "trial"}
    assert {k: r.data.tags["search.origin"] for k, r in trials.items()} == {
        "0": "center",
        "1": "random",  # the space's sampler
    }
    study = optuna.load_study(study_name="tree", storage=open_storage(None, tmp / "mlruns"))
    space = parse_space(study.user_attrs["space_text"])
    assert study.trials[0].params == center(space.params) != study.trials[1].params


def test_trial_runs_carry_params_metrics_tags_and_artifacts(
    searched: tuple[Path, SearchResult],
) -> None:
    tmp, result = searched
    client = MlflowClient(result.tracking_uri)
    trial = next(r for r in _runs(result) if r.data.tags[ROLE] == "trial")
    assert {"depth", "width_0", "learning_rate", "batch_size"} <= set(trial.data.params)
    assert {"score", "score_std", "cv_accuracy", "fold_0/best_epoch"} <= set(trial.data.metrics)
    tags = trial.data.tags
    for key in (
        "search.study",
        "search.trial",
        "search.seed",
        "search.data_fingerprint",
        "search.version.tensorflow",
        "search.version.optuna",
    ):
        assert key in tags
    history = client.get_metric_history(trial.info.run_id, "fold_0/val_loss")
    assert [m.step for m in history] == list(range(len(history))) and len(history) >= 1
    for key in ("fold_0/loss", "fold_0/val_data_loss"):  # one value an epoch, nothing else
        steps = [m.step for m in client.get_metric_history(trial.info.run_id, key)]
        assert sorted(steps) == list(range(len(history)))
    study = optuna.load_study(study_name="tree", storage=open_storage(None, tmp / "mlruns"))
    number = int(tags["search.trial"])
    fold_scores = study.trials[number].user_attrs["fold_scores"]
    assert trial.data.metrics["fold_0/score"] == pytest.approx(fold_scores[0])
    names = {a.path for a in client.list_artifacts(trial.info.run_id)}
    assert {"space.yaml", "params.json", "history.csv", "model_summary.txt"} <= names


def test_objective_is_mean_of_fold_scores(searched: tuple[Path, SearchResult]) -> None:
    tmp, _result = searched
    study = optuna.load_study(study_name="tree", storage=open_storage(None, tmp / "mlruns"))
    for t in study.trials:
        folds = t.user_attrs["fold_scores"]
        assert len(folds) == 3
        assert t.value == pytest.approx(float(np.mean(folds)))
        assert t.user_attrs["score_std"] == pytest.approx(float(np.std(folds)))
        assert len(t.user_attrs["best_epochs"]) == 3


def test_no_test_row_reaches_the_search(searched: tuple[Path, SearchResult]) -> None:
    tmp, result = searched
    prep = prepare(load_space(tmp / "tree.yaml"))
    test = set(prep.split.test.tolist())
    for fold in prep.folds:
        train, val = prep.split.train[fold.train], prep.split.train[fold.val]
        assert not set(train) & set(val)
        assert not (set(train) | set(val)) & test
    # the test rows recorded with the study are the ones the split makes
    client = MlflowClient(result.tracking_uri)
    path = client.download_artifacts(result.parent_run_id, "test_split.json", str(tmp))
    assert sorted(json.loads(Path(path).read_text())["test"]) == sorted(test)


def test_second_run_resumes_the_study(tmp_path: Path) -> None:
    """`trials` is the study's budget in all: running again finishes it, no more."""
    space = tiny_space(tmp_path, name="resume", trials=1, folds=2, epochs=2)
    first = run_search(space, home=tmp_path / "m", progress=False)
    done = run_search(space, home=tmp_path / "m", progress=False)
    assert done.new_trials == 0 and done.counts["complete"] == 1
    second = run_search(space, n_trials=2, home=tmp_path / "m", progress=False)
    assert second.parent_run_id == first.parent_run_id
    assert second.counts["complete"] == 2 and second.new_trials == 1
    assert len(_tree(second)[first.parent_run_id]) == 2  # both trials under one parent


def test_diverging_trial_fails_and_the_study_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "nan.yaml"
    path.write_text("""
study: {name: nan, trials: 2, sampler: grid, pruner: none}
data: {source: diabetes}
validation: {scheme: holdout}
params:
  optimizer: sgd
  learning_rate: {choices: [1.0e+12, 0.001]}
  depth: 1
  width: 8
  epochs: 3
  patience: 1
""")
    result = run_search(path, home=tmp_path / "m", progress=False)
    assert result.counts["fail"] == 1 and result.counts["complete"] == 1
    study = optuna.load_study(study_name="nan", storage=open_storage(None, tmp_path / "m"))
    failed = next(t for t in study.trials if t.state.name == "FAIL")
    assert "NaN" in failed.user_attrs["fail_reason"]
    run = MlflowClient(result.tracking_uri).get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "NaN" in run.data.tags["search.reason"]


def test_holdout_pruning_sees_the_loss_without_the_regularization_penalty(
    tmp_path: Path,
) -> None:
    """The pruner must rank what the objective ranks: Keras' val_loss adds the L1/L2
    penalty of the weights, which would prune a trial for its regularization."""
    path = tmp_path / "penalty.yaml"
    path.write_text("""
study: {name: penalty, trials: 1, sampler: random, pruner: median}
data: {source: breast_cancer}
validation: {scheme: holdout}
params: {depth: 1, width: 32, l2: 0.01, learning_rate: 0.003, epochs: 4, patience: 4}
""")
    run_search(path, home=tmp_path / "m", progress=False)
    study = optuna.load_study(study_name="penalty", storage=open_storage(None, tmp_path / "m"))
    trial = study.trials[0]
    (best,) = trial.user_attrs["best_epochs"]
    reported = trial.intermediate_values[best - 1]  # the epoch early stopping restored
    assert reported == pytest.approx(trial.user_attrs["cv_scores"]["cv_log_loss"], rel=1e-3)
    (val_loss,) = trial.user_attrs["val_loss_min"]  # Keras' own, penalty included
    assert val_loss > reported + 0.01


def test_early_stopping_restores_the_epoch_whose_predictions_score_best(tmp_path: Path) -> None:
    """Keras' val_loss adds the L1/L2 penalty, which keeps falling while the weights shrink:
    restoring its minimum hands back a model with a worse validation log loss than an
    earlier epoch had. Early stopping follows the loss of the predictions alone."""
    from search.data.dataset import load_dataset
    from search.data.foldarrays import fold_arrays
    from search.data.folds import make_folds
    from search.data.split import split_test
    from search.engines.sequential import fit_fold
    from search.space.schema import DataSpec, ValidationSpec

    spec = DataSpec(source="breast_cancer")
    data = load_dataset(spec, base_dir=tmp_path)
    rows = split_test(data, spec).train
    (fold,) = make_folds(
        ValidationSpec(scheme="holdout"), data.y[rows], classification=True, seed=1
    )
    params = {
        **{"widths": [32], "activation": "relu", "dropout": 0.0, "batch_norm": False},
        **{"l1": 0.0, "l2": 0.03, "optimizer": "adam", "learning_rate": 0.01},
        **{"batch_size": 32, "epochs": 30, "patience": 30, "precision": "float32"},
    }
    _, result = fit_fold(
        TrialParams.read(params), fold_arrays(data, rows, fold), data=data, seed=3, spe=4
    )
    data_loss = np.array(result.history["val_data_loss"])
    assert result.best_epoch == int(np.argmin(data_loss)) + 1
    assert result.scores["log_loss"] == pytest.approx(data_loss.min(), rel=1e-3)
    keras_best = int(np.argmin(result.history["val_loss"]))  # what the old rule restored
    assert data_loss[keras_best] > result.scores["log_loss"] + 0.005


@pytest.mark.parametrize(
    ("space", "match"),
    [
        ("params: {dropout: 2}\ndata: {source: iris}\n", "params.dropout"),
        ("data: {source: missing.csv, target: y}\n", "no such data file"),
        ("data: {source: iris}\nvalidation: {folds: 60}\n", "largest class has"),
        ("data: {source: diabetes}\nobjective: {metric: accuracy}\n", "objective.metric"),
    ],
)
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path, space: str, match: str) -> None:
    (tmp_path / "bad.yaml").write_text(space)
    out = run_cli("run", "bad.yaml", "--home", "store", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.yaml" in lines[0] and match in lines[0]
    assert not (tmp_path / "store").exists() and not (tmp_path / "mlflow.db").exists()


def test_cli_runs_a_search_and_prints_json(tmp_path: Path) -> None:
    space = tiny_space(tmp_path, name="cli", trials=1, folds=2, epochs=2)
    out = run_cli("run", str(space), "--json", "--home", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["study_name"] == "cli" and summary["counts"]["complete"] == 1
    assert "oneDNN" not in out.stderr and "cuda" not in out.stderr.lower()
    assert " INFO mlflow" not in out.stderr  # quieted before MLflow's import, not after
