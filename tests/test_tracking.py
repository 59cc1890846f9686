"""The tracker's writes go through one background thread, or a process of their own: in
order, and waited for by flush; the recorders over either writer leave the same runs."""

from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from search.errors import SearchFailed
from search.tracking.parent import StudyRecorder
from search.tracking.process import TrackingProcess
from search.tracking.runs import RunWriter, Tracker
from search.tracking.store import seed_store
from tests.conftest import ROOT, tiny_space

RUN_ID = re.compile(r"[0-9a-f]{32}")


def _tracker(tmp_path: Path) -> Tracker:
    return Tracker(f"sqlite:///{tmp_path / 'm.db'}", "e", artifact_root=tmp_path / "a")


def test_writes_land_in_order_once_flushed(tmp_path: Path) -> None:
    tracker = _tracker(tmp_path)
    parent = tracker.study_run("s", run_id=None, tags={})
    run = tracker.child_run(parent, "trial-0", role="trial", tags={})
    for step in range(25):
        tracker.log(run, series=[("loss", step, 1.0 / (step + 1))])
    tracker.log_text(run, "hello", "notes.txt")
    tracker.end(run, "FAILED", reason="diverged")
    tracker.flush()
    client = MlflowClient(tracker.tracking_uri)
    got = client.get_run(run)
    assert got.info.status == "FAILED" and got.data.tags["search.reason"] == "diverged"
    steps = [m.step for m in client.get_metric_history(run, "loss")]
    assert sorted(steps) == list(range(25))
    assert [a.path for a in client.list_artifacts(run)] == ["notes.txt"]


def test_a_failed_write_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = _tracker(tmp_path)
    with caplog.at_level(logging.WARNING, logger="search.tracking"):
        tracker.log("0" * 32, metrics={"a": 1.0})  # no such run
        tracker.flush()
    assert any("MLflow write failed" in r.message for r in caplog.records)


def _schema(db: Path) -> tuple[dict[str, list[str]], list[tuple[str]]]:
    """Each table's definition as sorted clauses (MLflow's migrations order a table's
    constraints differently from one run to the next) and the schema version."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT name, sql FROM sqlite_master").fetchall()
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    tables = {
        name: sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())
        for name, sql in rows
    }
    return tables, version


def test_a_new_store_copied_from_the_template_is_the_store_mlflow_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    own = tmp_path / "own.db"
    MlflowClient(f"sqlite:///{own}").search_experiments()  # MLflow builds it: migrations
    copied = tmp_path / "copied.db"
    assert seed_store(f"sqlite:///{copied}")
    assert list((tmp_path / "cache" / "keras-search").glob("mlflow-*.db"))
    assert not seed_store(f"sqlite:///{copied}")  # an existing store is never replaced

    tracker = Tracker(f"sqlite:///{copied}", "e", artifact_root=tmp_path / "a")
    assert _schema(copied) == _schema(own)
    ours, theirs = (
        tracker.client.get_experiment("0"),
        MlflowClient(f"sqlite:///{own}").get_experiment("0"),
    )
    assert (ours.name, ours.artifact_location) == (theirs.name, theirs.artifact_location)
    run = tracker.study_run("s", run_id=None, tags={})
    tracker.log(run, metrics={"a": 1.0})
    tracker.flush()
    assert tracker.client.get_run(run).data.metrics == {"a": 1.0}


def _record(writer: RunWriter) -> dict[str, str | None]:
    """One study's runs through the recorders: a trial complete, one pruned in its fold,
    one failed in its fold, one interrupted; MLflow's id of each."""
    study = StudyRecorder.start(
        writer, "s", tags={"k": "v"}, params={"p": 1}, files={"space.yaml": "a: 1"}
    )
    trials = [study.trial(n, tags={"search.trial": str(n)}, params={"width": 8}) for n in range(4)]
    done, pruned, failed, killed = trials
    fold = done.fold("trial-0-fold-0", tags={"search.fold": "0"})
    fold.log(params={"fold": 0}, metrics={"val_loss": 0.5}, series=_series("epoch/loss"))
    fold.end()
    done.log(series=_series("fold_0/loss"))
    done.log_text("hello", "notes.txt")
    done.log_json({"width": 8}, "params.json")
    done.end("COMPLETE", duration_s=1.5)
    pruned.fold("trial-1-fold-0", tags={}).end(pruned=True)
    pruned.end("PRUNED", reason="pruned at epoch 3", duration_s=0.5)
    failed.fold("trial-2-fold-0", tags={}).fail("TrialFailed: diverged")
    failed.end("FAILED", reason="TrialFailed: diverged")
    killed.end("INTERRUPTED", reason="interrupted (Ctrl-C)")
    study.close(optuna.create_study(), "FINISHED")
    return {"s": study.run_id(), **{f"trial-{n}": t.run_id() for n, t in enumerate(trials)}}


def _series(key: str) -> list[tuple[str, int, float]]:
    return [(key, step, 1.0 / (step + 1)) for step in range(25)]


def _layout(uri: str) -> dict[str, Any]:
    """Every run of a store by name: its status, tags (its parent by name), params, metric
    histories and artifacts with their text; what differs between two stores of the same
    writes (ids, times, folders) left out."""
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    names = {r.info.run_id: r.info.run_name for r in runs}
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            rid, tags = run.info.run_id, dict(run.data.tags)
            if "mlflow.parentRunId" in tags:
                tags["mlflow.parentRunId"] = names[tags["mlflow.parentRunId"]]
            files = [a.path for a in client.list_artifacts(rid)]
            out[run.info.run_name] = {
                "status": run.info.status,
                "tags": tags,
                "params": run.data.params,
                "metrics": {
                    k: [(m.step, m.value) for m in client.get_metric_history(rid, k)]
                    for k in run.data.metrics
                },
                "files": {
                    f: Path(client.download_artifacts(rid, f, tmp)).read_text() for f in files
                },
            }
    return out


def test_both_writers_record_the_same_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`search run` writes through its MLflow process, pool workers in-process: one
    recorder over both, and the same runs, tags, params, metrics and artifacts."""
    decoy = tmp_path / "search"  # another `search` in the working directory is not ours
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the wrong package')\n")
    monkeypatch.chdir(tmp_path)
    thread = Tracker(f"sqlite:///{tmp_path / 't.db'}", "e", artifact_root=tmp_path / "a")
    in_thread = _record(thread)
    process = TrackingProcess(f"sqlite:///{tmp_path / 'p.db'}", "e", artifact_root=tmp_path / "b")
    try:
        in_process = _record(process)
    finally:
        process.close()
    assert all(RUN_ID.fullmatch(i or "") for i in [*in_thread.values(), *in_process.values()])
    layout = _layout(process.tracking_uri)
    assert layout == _layout(thread.tracking_uri)
    for name, run_id in in_process.items():  # each id is the run recorded under that name
        assert MlflowClient(process.tracking_uri).get_run(run_id or "").info.run_name == name
    done = layout["trial-0"]
    assert (done["status"], done["tags"]["search.state"]) == ("FINISHED", "COMPLETE")
    assert done["tags"]["mlflow.parentRunId"] == "s" and done["params"] == {"width": "8"}
    assert [s for s, _ in done["metrics"]["fold_0/loss"]] == list(range(25))
    assert done["metrics"]["duration_s"] == [(0, 1.5)]
    assert done["files"] == {"notes.txt": "hello", "params.json": '{\n  "width": 8\n}'}
    fold = layout["trial-0-fold-0"]
    assert fold["status"] == "FINISHED" and "search.state" not in fold["tags"]
    assert (fold["tags"]["search.role"], fold["tags"]["mlflow.parentRunId"]) == ("fold", "trial-0")
    assert layout["trial-1-fold-0"]["tags"]["search.state"] == "PRUNED"
    pruned = layout["trial-1"]
    assert (pruned["status"], pruned["tags"]["search.state"]) == ("FINISHED", "PRUNED")
    assert pruned["tags"]["search.reason"] == "pruned at epoch 3"
    failed_fold = layout["trial-2-fold-0"]
    assert failed_fold["status"] == "FAILED"
    assert failed_fold["tags"]["search.reason"] == "TrialFailed: diverged"
    assert (layout["trial-2"]["status"], layout["trial-2"]["tags"]["search.state"]) == (
        "FAILED",
        "FAILED",
    )
    killed = layout["trial-3"]
    assert (killed["status"], killed["tags"]["search.state"]) == ("KILLED", "INTERRUPTED")
    study = layout["s"]
    assert study["status"] == "FINISHED" and study["params"] == {"p": "1"}
    assert study["tags"]["k"] == "v" and study["files"] == {"space.yaml": "a: 1"}
    assert study["metrics"]["trials_complete"] == [(0, 0.0)]


def test_a_tracking_process_logs_a_failed_write_and_raises_a_store_it_cannot_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = TrackingProcess(f"sqlite:///{tmp_path / 'm.db'}", "e", artifact_root=None)
    with caplog.at_level(logging.WARNING, logger="search.tracking"):
        tracker.log("0" * 32, metrics={"a": 1.0})  # no such run
        study = StudyRecorder.start(tracker, "s", tags={})
        study.log(tags={"callable": lambda: 0})  # cannot be pickled to the child
        study.log(metrics={"b": 2.0})  # what follows still lands
        tracker.close()
    failed = [r.message for r in caplog.records if "MLflow write failed" in r.message]
    assert len(failed) == 2 and "no such run" not in failed[1].lower()
    got = MlflowClient(tracker.tracking_uri).get_run(study.run_id() or "")
    assert got.data.metrics == {"b": 2.0}

    broken = TrackingProcess("nowhere://at/all", "e", artifact_root=None)
    trial = StudyRecorder.start(broken, "s", tags={}).trial(0, tags={}, params={})
    with pytest.raises(SearchFailed, match="nowhere://at/all"):
        trial.run_id()
    broken.close()  # does not raise again, nor hang


def test_a_search_leaves_mlflow_to_its_tracking_process(tmp_path: Path) -> None:
    """MLflow's import and store never load in the process that trains."""
    space = tiny_space(tmp_path, name="apart", trials=2, folds=2, epochs=2)
    code = (
        "import sys; from search import run_search; "
        f"r = run_search({str(space)!r}, home={str(tmp_path / 'home')!r}, progress=False); "
        "print(r.tracking_uri); print(r.parent_run_id); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    uri, parent, modules = out.stdout.strip().splitlines()[-3:]
    assert modules == "[]"
    client = MlflowClient(uri)
    trials = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    for t in trials:  # each epoch's values, logged from the child
        assert len(client.get_metric_history(t.info.run_id, "fold_1/val_accuracy")) == 2


def test_a_search_stopped_in_its_first_trial_still_names_its_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C before any run id came back: the study still records the ids, and MLflow
    shows the search and the trial as killed, not running."""
    import optuna

    from search import run_search
    from search.study import open_storage
    from search.tracking import default_tracking_uri

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("search.engines.sequential.fit_fold", interrupted)  # the sequential engine
    monkeypatch.setattr("search.engines.pack.group.Group.start", interrupted)  # the pack engine
    home = tmp_path / "home"
    with pytest.raises(KeyboardInterrupt):
        run_search(tiny_space(tmp_path, name="stop", trials=2), home=home, progress=False)
    study = optuna.load_study(study_name="stop", storage=open_storage(None, home))
    client = MlflowClient(default_tracking_uri(home))
    assert client.get_run(study.user_attrs["mlflow_run_id"]).info.status == "KILLED"
    trial = client.get_run(study.trials[0].user_attrs["mlflow_run_id"])
    assert trial.info.status == "KILLED" and trial.data.tags["search.state"] == "INTERRUPTED"
    assert study.user_attrs["experiment_id"] == trial.info.experiment_id


def test_an_experiment_made_by_another_run_in_the_meantime_is_used(tmp_path: Path) -> None:
    """Two runs of a new study started at once both find no experiment and both create
    it; the one that loses the race uses the winner's (it failed the search before)."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    first = Tracker(uri, "together", artifact_root=tmp_path / "a", background=False)
    second = Tracker(uri, "other", artifact_root=tmp_path / "a", background=False)
    # the loser's state: it looked before the winner created the experiment
    assert second._create_experiment("together", tmp_path / "a") == first.experiment_id
    assert [e.name for e in MlflowClient(uri).search_experiments()].count("together") == 1


def test_only_the_tracking_package_reaches_mlflow() -> None:
    """MLflow is imported, and its client called, in search/tracking/ alone."""
    import re

    package = ROOT / "search"
    outside = []
    for path in sorted(package.rglob("*.py")):
        if path.parent.name == "tracking":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"^\s*(import mlflow|from mlflow)|MlflowClient|\.client\.", line):
                outside.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert outside == []
