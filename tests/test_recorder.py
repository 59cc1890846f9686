"""Run handles stay inside search/tracking/: whatever a search leaves outside it (the
study's and trials' user attributes, the summary, `--json`, MLflow's tags) names runs by
MLflow's own ids, for `search run` (its MLflow process) and for pool workers alike."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.attrs import Study, Trial
from search.pool.queue import Queue, submit
from search.pool.workers import EXIT_NO_WORK
from search.study import open_storage
from search.tracking import default_tracking_uri
from search.tracking.process import HANDLE
from tests.conftest import ROOT, run_cli, tiny_space

RUN_ID = re.compile(r"[0-9a-f]{32}")


def _strings(value: Any) -> list[str]:
    """Every string inside a user attribute's value (lists and dicts walked)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_strings(v)]]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _check_real_ids(home: Path, name: str, parent_run_id: str | None = None) -> None:
    """The study and each of its trials name their MLflow runs by MLflow's ids, and no
    placeholder is in their attributes or in any run's tags and params."""
    study = optuna.load_study(study_name=name, storage=open_storage(None, home))
    client = MlflowClient(default_tracking_uri(home))
    parent = study.user_attrs[Study.RUN_ID]
    assert RUN_ID.fullmatch(parent), parent
    if parent_run_id is not None:
        assert parent_run_id == parent
    top = client.get_run(parent)
    assert top.data.tags["search.role"] == "study" and top.data.tags["search.study"] == name
    assert study.user_attrs[Study.EXPERIMENT_ID] == top.info.experiment_id
    assert study.trials
    for trial in study.trials:
        run_id = trial.user_attrs[Trial.RUN_ID]
        assert RUN_ID.fullmatch(run_id), (trial.number, run_id)
        run = client.get_run(run_id)  # a run of this store, and this trial's
        assert run.data.tags["search.trial"] == str(trial.number)
        assert run.data.tags["mlflow.parentRunId"] == parent
    attrs = [study.user_attrs, *(t.user_attrs for t in study.trials)]
    leaked = [s for a in attrs for s in _strings(a) if HANDLE in s]
    runs = client.search_runs([top.info.experiment_id], max_results=1000)
    roles = [r.data.tags["search.role"] for r in runs]
    assert roles.count("trial") == len(study.trials) and roles.count("fold") == 2 * roles.count(
        "trial"
    )
    for run in runs:
        values = [*run.data.tags.values(), *run.data.params.values(), run.info.run_name]
        leaked += [v for v in values if HANDLE in v]
        if run.info.run_id != parent:  # each trial and fold run under a real run
            assert client.get_run(run.data.tags["mlflow.parentRunId"])
    assert leaked == []


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sequential", "pack"])
def test_search_run_names_mlflow_runs_by_their_ids(tmp_path: Path, engine: str) -> None:
    space = tiny_space(tmp_path, name=f"ids_{engine}", trials=2, folds=2, epochs=2)
    space.write_text(space.read_text() + f"training: {{engine: {engine}}}\n")
    home = tmp_path / "m"
    out = run_cli("run", str(space), "--json", "--home", str(home))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["counts"]["complete"] == 2
    assert RUN_ID.fullmatch(summary["parent_run_id"]), summary["parent_run_id"]
    assert HANDLE not in out.stdout
    _check_real_ids(home, f"ids_{engine}", summary["parent_run_id"])
    selection = summary["selection"]["run_id"]  # `search run` selects once the study is done
    study = optuna.load_study(study_name=f"ids_{engine}", storage=open_storage(None, home))
    assert RUN_ID.fullmatch(selection) and study.user_attrs[Study.SELECTED]["run_id"] == selection
    client = MlflowClient(default_tracking_uri(home))
    assert client.get_run(selection).data.tags["search.role"] == "selection"
    trial_run = client.get_run(study.trials[0].user_attrs[Trial.RUN_ID])
    assert trial_run.data.tags["search.engine"] == engine  # the engine asked for trained it


@pytest.mark.slow
def test_a_pool_worker_names_mlflow_runs_by_their_ids(tmp_path: Path) -> None:
    home = tmp_path / "m"
    submit(tiny_space(tmp_path, name="pooled", trials=2, folds=2, epochs=2), Queue.open(None, home))
    out = subprocess.run(
        [sys.executable, "-m", "search.pool.worker", "--home", str(home)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == EXIT_NO_WORK, out.stderr
    _check_real_ids(home, "pooled")
    study = optuna.load_study(study_name="pooled", storage=open_storage(None, home))
    client = MlflowClient(default_tracking_uri(home))
    # the worker that ran the budget's last trial closed the study's run
    assert client.get_run(study.user_attrs[Study.RUN_ID]).info.status == "FINISHED"


def test_no_module_outside_tracking_handles_a_placeholder() -> None:
    """Outside search/tracking/, no code names the placeholder, asks a writer to turn one
    into a run id, or starts runs through the writer that makes them."""
    package = ROOT / "search"
    pattern = re.compile(
        r"~run-|\bHANDLE\b|\b(tracker|writer)\.resolve\(|"
        r"tracking\.process import (?!TrackingProcess$)"
    )
    outside = []
    for path in sorted(package.rglob("*.py")):
        if path.parent.name == "tracking":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                outside.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert outside == []
