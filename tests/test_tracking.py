"""The tracker's writes go through one background thread: in order, and waited for by flush."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

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
