"""A search tracked on a remote MLflow server (`mlflow server` on 127.0.0.1, proxying
artifacts), as several machines share one: the study's tree, its artifacts and the
champion all go through HTTP, and nothing is written to a local MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from tests.conftest import mlflow_server, run_cli

SPACE = """
study: {name: remote, trials: 2, sampler: random, pruner: none}
data: {source: breast_cancer}
validation: {scheme: kfold, folds: 2}
selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}
params: {depth: 1, width: 8, epochs: 3, patience: 1}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    backend = tmp_path / "server" / "mlflow.db"
    backend.parent.mkdir()
    with mlflow_server(
        "server",
        "--backend-store-uri",
        f"sqlite:///{backend}",
        "--artifacts-destination",
        str(tmp_path / "server" / "artifacts"),
    ) as url:
        yield url


def test_a_search_its_tree_and_its_champion_through_a_tracking_server(
    tmp_path: Path, server: str
) -> None:
    (tmp_path / "remote.yaml").write_text(SPACE)
    out = run_cli("run", "remote.yaml", "--home", "m", "--tracking-uri", server, "-q", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (tmp_path / "m" / "mlflow.db").exists()  # every MLflow write went to the server
    client = MlflowClient(server)
    (experiment,) = [e for e in client.search_experiments() if e.name != "Default"]
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    roles = {r.info.run_id: r.data.tags.get("search.role") for r in runs}
    (study_run,) = [r for r in runs if roles[r.info.run_id] == "study"]
    trials = [r for r in runs if roles[r.info.run_id] == "trial"]
    assert len(trials) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    for trial in trials:  # the tree: trials under the study run, folds under their trial
        assert trial.data.tags["mlflow.parentRunId"] == study_run.info.run_id
    folds = [r for r in runs if roles[r.info.run_id] == "fold"]
    assert {f.data.tags["mlflow.parentRunId"] for f in folds} == {t.info.run_id for t in trials}
    artifacts = {a.path for a in client.list_artifacts(study_run.info.run_id)}
    assert "test_split.json" in artifacts  # artifacts proxied by the server
    # the champion: registered on the server, loaded from it in this process
    mlflow.set_tracking_uri(server)
    champion = mlflow.pyfunc.load_model("models:/remote@champion")
    rows = load_breast_cancer(as_frame=True).data.head(4)
    assert len(champion.predict(rows)) == 4
