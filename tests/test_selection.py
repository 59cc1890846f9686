"""Selection, the champion in a fresh process, and exact reproduction, on real stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_breast_cancer

from search.errors import DataError, InputError, SearchFailed
from search.reproduction import reproduce
from search.runner import run_search
from search.selection.selector import SelectionResult, select
from search.study import open_storage
from search.summary import SearchResult
from search.tracking import ROLE

SPACE = """
study: {name: bc, trials: 3, sampler: random, pruner: none, seed: 5}
data: {source: bc.csv, target: target, test_size: 0.3}
validation: {scheme: kfold, folds: 2}
selection: {top_k: 2, recheck_folds: 2, bootstrap: 200}
params:
  depth: 1
  width: {low: 8, high: 16}
  learning_rate: {low: 0.003, high: 0.03, log: true}
  batch_size: 32
  epochs: 15
  patience: 3
"""


@pytest.fixture(scope="module")
def selected(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, SearchResult, SelectionResult]:
    tmp = tmp_path_factory.mktemp("sel")
    load_breast_cancer(as_frame=True).frame.to_csv(tmp / "bc.csv", index=False)
    (tmp / "bc.yaml").write_text(SPACE)
    result = run_search(tmp / "bc.yaml", home=tmp / "m", progress=False)
    return tmp, result, select("bc", home=tmp / "m")


def test_selection_rechecks_candidates_and_beats_the_baseline(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    _, _result, sel = selected
    assert len(sel.candidates) == 2  # top_k
    assert sel.chosen.recheck_score == min(c.recheck_score for c in sel.candidates)
    for iv in sel.test.values():
        assert iv.low <= iv.value <= iv.high
    assert set(sel.test) >= {"accuracy", "roc_auc", "f1", "log_loss"}
    assert sel.baseline["roc_auc"].value == pytest.approx(0.5)  # a constant predictor
    assert sel.beats_baseline and sel.difference["log_loss"].high < 0
    assert "final test" in str(sel) and "baseline" in str(sel)


def test_a_linear_model_stands_beside_the_baseline(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    """A logistic regression on the same features of the same training rows, its strength
    chosen by cross-validation there, scored on the same test rows: in the table, the
    selection run's metrics, and paired with the model."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from search.prepare import prepare
    from search.space.file import load_space

    tmp, result, sel = selected
    assert set(sel.linear) == set(sel.test) == set(sel.versus_linear)
    assert sel.linear_model.startswith("logistic regression (C=")
    for name, diff in sel.versus_linear.items():
        assert diff.value == pytest.approx(sel.test[name].value - sel.linear[name].value)
        assert diff.low <= diff.value <= diff.high
        assert sel.linear[name].low <= sel.linear[name].value <= sel.linear[name].high
    prep = prepare(load_space(tmp / "bc.yaml"))
    x, y = prep.data.X.to_numpy(), prep.data.y
    train, test = prep.split.refit_rows, prep.split.test
    alone = make_pipeline(
        StandardScaler(),
        LogisticRegressionCV(
            Cs=np.logspace(-3, 3, 7),
            cv=3,
            max_iter=500,
            scoring="neg_log_loss",
            l1_ratios=(0.0,),
            use_legacy_attributes=False,
        ),
    ).fit(x[train], y[train])
    expected = log_loss(y[test], alone.predict_proba(x[test]))
    assert sel.linear["log_loss"].value == pytest.approx(expected, rel=1e-3)
    table = str(sel)
    assert "model - linear" in table
    verdict = [x for x in table.splitlines() if "linear model" in x and x.startswith("the ")]
    assert len(verdict) == 1 and "on log_loss" in verdict[0]
    worse = sel.versus_linear["log_loss"].low > 0  # the linear model's log loss is lower
    assert worse == verdict[0].startswith("the linear model beats the model")
    run = MlflowClient(result.tracking_uri).get_run(sel.run_id)
    assert run.data.metrics["linear_log_loss"] == pytest.approx(sel.linear["log_loss"].value)
    assert {"diff_linear_log_loss_low", "diff_linear_log_loss_high"} <= set(run.data.metrics)
    assert run.data.params["linear_model"] == sel.linear_model


def test_the_gap_and_the_recheck_tell_one_story(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    """The gap and its warning read the chosen trial's recheck score, the number the
    candidates' line prints: the warning appears exactly when that number lies outside
    the test interval, and the line says which number it is."""
    _, _, sel = selected
    test = sel.test[sel.metric]
    assert sel.gap == pytest.approx(test.value - sel.chosen.recheck_score)
    outside = sel.chosen.recheck_score < test.low  # log loss: lower is better
    assert outside == any("recheck score" in w for w in sel.warnings)
    table = str(sel)
    assert f"{sel.chosen.recheck_score:.4f} ±" in table
    assert f"recheck-to-test gap {sel.gap:+.4f} (test - trial {sel.chosen.trial}'s recheck" in table


def test_selection_run_sits_under_the_study_run(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    _, result, sel = selected
    run = MlflowClient(result.tracking_uri).get_run(sel.run_id)
    assert run.data.tags[ROLE] == "selection" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
    assert run.data.metrics["test_accuracy"] == sel.test["accuracy"].value
    assert {"test_log_loss_low", "baseline_accuracy", "gap"} <= set(run.data.metrics)


def test_champion_loads_in_a_fresh_process_from_raw_rows(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    tmp, result, sel = selected
    study = optuna.load_study(study_name="bc", storage=open_storage(None, tmp / "m"))
    assert study.user_attrs["test_digest"]
    client = MlflowClient(result.tracking_uri)
    path = client.download_artifacts(result.parent_run_id, "test_split.json", str(tmp))
    test_rows = json.loads(Path(path).read_text())["test"]
    raw = pd.read_csv(tmp / "bc.csv").iloc[test_rows]
    raw.drop(columns="target").to_csv(tmp / "rows.csv", index=False)
    code = (
        "import mlflow, pandas as pd, sys\n"
        f"mlflow.set_tracking_uri({result.tracking_uri!r})\n"
        "m = mlflow.pyfunc.load_model('models:/bc@champion')\n"
        f"rows = pd.read_csv({str(tmp / 'rows.csv')!r})\n"
        "out = m.predict(rows, params={'output': 'proba'})\n"
        f"out.to_csv({str(tmp / 'pred.csv')!r}, index=False)\n"
        "plain = m.predict(rows)\n"
        "assert plain.name == 'prediction' and plain.ndim == 1, plain\n"
        "assert plain.dtype.kind == 'i', plain.dtype  # labels in the target's own type\n"
        "rows['mean radius'] = rows['mean radius'].round().astype(int)  # integers accepted\n"
        "assert len(m.predict(rows)) == len(rows)\n"
        "assert 'optuna' not in sys.modules, 'predicting imported Optuna'\n"
        f"full = pd.read_csv({str(tmp / 'rows.csv')!r})\n"
        f"full['target'] = pd.read_csv({str(tmp / 'truth.csv')!r})['target']\n"
        "ev = mlflow.models.evaluate('models:/bc@champion', full, targets='target',\n"
        "                            model_type='classifier', evaluators=['default'])\n"
        "print('EVAL', ev.metrics['accuracy_score'])\n"
    )
    raw[["target"]].to_csv(tmp / "truth.csv", index=False)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pred = pd.read_csv(tmp / "pred.csv")
    truth = raw["target"].astype(str).to_numpy()
    accuracy = float(np.mean(pred["prediction"].astype(str).to_numpy() == truth))
    # the champion, from raw rows in another process, gives the logged test accuracy
    assert accuracy == pytest.approx(sel.test["accuracy"].value, abs=1e-12)
    assert {"proba_0", "proba_1"} <= set(pred.columns)
    evaluated = float(done.stdout.split("EVAL")[-1])  # mlflow.models.evaluate, as is
    assert evaluated == pytest.approx(sel.test["accuracy"].value, abs=1e-12)


def test_alias_moves_only_for_a_better_model(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    tmp, result, first = selected
    client = MlflowClient(result.tracking_uri)

    def champion() -> str:
        return str(client.get_model_version_by_alias("bc", "champion").version)

    assert first.promoted and first.version == "1" and champion() == "1"
    again = select("bc", home=tmp / "m")  # same data, same seeds: the same score, not better
    assert again.version == "2" and not again.promoted and champion() == "1"
    assert "@champion stays on version 1" in again.registry
    # the champion's recorded score made worse (as a worse model's would be): the next,
    # same-split model beats it and the alias moves
    client.set_model_version_tag("bc", "1", "test_log_loss", "99.0")
    better = select("bc", home=tmp / "m")
    assert better.version == "3" and better.promoted and champion() == "3"
    assert "beats version 1" in better.registry
    # a champion tested on another split cannot be compared: the alias stays, even though
    # its recorded score is the worst there is
    client.set_model_version_tag("bc", "3", "test_log_loss", "99.0")
    client.set_model_version_tag("bc", "3", "test_digest", "another split")
    other = select("bc", home=tmp / "m")
    assert other.version == "4" and not other.promoted and champion() == "3"
    assert "another test split" in other.registry


def test_champion_has_a_signature_and_an_input_example(
    selected: tuple[Path, SearchResult, SelectionResult],
) -> None:
    tmp, result, sel = selected
    mlflow.set_tracking_uri(result.tracking_uri)
    info = mlflow.models.get_model_info(sel.model_uri)
    columns = [c for c in pd.read_csv(tmp / "bc.csv").columns if c != "target"]
    assert info.signature is not None
    assert info.signature.inputs.input_names() == columns  # the raw columns, in order
    assert info.signature.outputs.input_names() == ["prediction"]
    assert info.signature.params is not None  # {"output": "proba"} is a declared parameter
    assert [(p.name, p.default) for p in info.signature.params.params] == [("output", "labels")]
    model = mlflow.models.Model.load(sel.model_uri)
    local = mlflow.artifacts.download_artifacts(sel.model_uri, dst_path=str(tmp / "ex"))
    example = model.load_input_example(local)
    assert isinstance(example, pd.DataFrame) and list(example.columns) == columns
    assert len(example) > 0 and not example.isna().any().any()


def test_trial_reproduces_exactly(selected: tuple[Path, SearchResult, SelectionResult]) -> None:
    tmp, _, _ = selected
    study = optuna.load_study(study_name="bc", storage=open_storage(None, tmp / "m"))
    run_id = study.best_trial.user_attrs["mlflow_run_id"]
    rep = reproduce(run_id, home=tmp / "m")
    assert rep.equal, str(rep)  # equality, not closeness
    assert any(name == "trial score" for name, _, _ in rep.rows)


def test_selection_reproduces_exactly(selected: tuple[Path, SearchResult, SelectionResult]) -> None:
    tmp, _, sel = selected
    rep = reproduce(sel.run_id, home=tmp / "m")
    assert rep.equal, str(rep)
    assert {"test_accuracy", "test_log_loss"} <= {name for name, _, _ in rep.rows}


def test_bad_run_ids_are_refused(selected: tuple[Path, SearchResult, SelectionResult]) -> None:
    tmp, result, _ = selected
    with pytest.raises(InputError, match="not found"):
        reproduce("0" * 32, home=tmp / "m")
    with pytest.raises(InputError, match="a study run"):
        reproduce(result.parent_run_id, home=tmp / "m")
    with pytest.raises(InputError, match="study 'nope' not found"):
        select("nope", home=tmp / "m")


def test_study_without_complete_trial(tmp_path: Path) -> None:
    (tmp_path / "nan.yaml").write_text("""
study: {name: nan, trials: 1, pruner: none}
data: {source: diabetes}
validation: {scheme: holdout}
params: {optimizer: sgd, learning_rate: 1.0e+12, depth: 1, width: 4, epochs: 2, patience: 1}
""")
    with pytest.raises(SearchFailed, match="all 1 trials failed"):
        run_search(tmp_path / "nan.yaml", home=tmp_path / "m", progress=False)
    with pytest.raises(InputError, match="no complete trial"):
        select("nan", home=tmp_path / "m")


def test_changed_data_is_refused(selected: tuple[Path, SearchResult, SelectionResult]) -> None:
    tmp, _, sel = selected
    original = (tmp / "bc.csv").read_bytes()  # put back after: the tests run in any order
    try:
        frame = pd.read_csv(tmp / "bc.csv")
        frame.iloc[0, 0] += 1.0
        frame.to_csv(tmp / "bc.csv", index=False)
        with pytest.raises(DataError, match="no longer matches"):
            reproduce(sel.run_id, home=tmp / "m")
        with pytest.raises(DataError, match="the data changed"):
            select("bc", home=tmp / "m")
        with pytest.raises(DataError, match="the data changed"):  # resuming the search
            run_search(tmp / "bc.yaml", n_trials=4, home=tmp / "m", progress=False)
    finally:
        (tmp / "bc.csv").write_bytes(original)
