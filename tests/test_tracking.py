"""The tracker's writes go through one background thread: in order, and waited for by flush."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from search.mlflowdb import seed_store
from search.tracking import Tracker


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
