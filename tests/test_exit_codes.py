"""The command line's exit codes, from real processes: 0 done, 1 a failed search or a run
that did not reproduce, 2 bad input (tests/test_bad_input.py), 130 interrupted
(tests/test_faults.py); and the commands that read a study."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.conftest import run_cli

SPACE = """
study: {{name: codes, trials: 2, sampler: random, pruner: none}}
data: {{source: iris}}
validation: {{scheme: holdout}}
params: {{depth: 1, width: 4, epochs: 2, patience: 1, learning_rate: {rate},
          optimizer: sgd}}
training: {{engine: sequential}}
selection: {{top_k: 1, recheck_folds: 2, bootstrap: 100}}
"""


def test_a_search_whose_every_trial_fails_exits_1(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SPACE.format(rate="1.0e+12"))  # diverges at once
    out = run_cli("run", "s.yaml", "--home", "m", cwd=tmp_path)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "search failed: all 2 trials failed: TrialFailed: training diverged" in out.stderr


def test_reproduce_exits_1_when_the_numbers_differ_and_0_when_they_agree(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SPACE.format(rate="0.05"))
    out = run_cli("run", "s.yaml", "--home", "m", "--no-select", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    client = MlflowClient(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    trial = client.search_runs(
        [summary["experiment_id"]], filter_string="tags.`search.role` = 'trial'"
    )[0]
    run_id = trial.info.run_id
    same = run_cli("reproduce", run_id, "--home", "m", cwd=tmp_path)
    assert same.returncode == 0, same.stdout + same.stderr[-2000:]
    client.log_metric(run_id, "score", trial.data.metrics["score"] + 0.5)  # a record that lies
    differs = run_cli("reproduce", run_id, "--home", "m", cwd=tmp_path)
    assert differs.returncode == 1, differs.stdout + differs.stderr[-2000:]
    assert "trial score" in differs.stdout


def test_the_commands_that_read_a_study(tmp_path: Path) -> None:
    """`best`, `submit`, `status`, `select` and `report` from the command line on a
    searched study; `--no-select` left the selection to `select`."""
    (tmp_path / "s.yaml").write_text(SPACE.format(rate="0.05"))
    out = run_cli("run", "s.yaml", "--home", "m", "--no-select", cwd=tmp_path)
    assert out.returncode == 0 and "final test" not in out.stdout, out.stderr[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    roles = {r.data.tags.get("search.role") for r in client.search_runs(["1"])}
    assert "trial" in roles and "selection" not in roles  # --no-select: no selection run
    assert client.search_registered_models() == []  # and no model registered
    best = run_cli("best", "codes", "--home", "m", cwd=tmp_path)
    assert best.returncode == 0 and best.stdout.splitlines()[1].startswith("trial"), best.stdout
    empty = run_cli("status", "--home", "m", cwd=tmp_path)  # the queue: nothing submitted
    assert empty.returncode == 0 and "no studies queued" in empty.stdout, empty.stdout
    submitted = run_cli("submit", "s.yaml", "--trials", "3", "--home", "m", cwd=tmp_path)
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    status = run_cli("status", "--home", "m", cwd=tmp_path)
    assert status.returncode == 0 and "codes" in status.stdout, status.stdout
    chosen = run_cli("select", "codes", "--home", "m", cwd=tmp_path)
    assert chosen.returncode == 0 and "final test (trial" in chosen.stdout, chosen.stderr[-2000:]
    report = run_cli("report", "codes", "--home", "m", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    marked = run_cli("best", "codes", "--home", "m", cwd=tmp_path)
    assert "selected" in marked.stdout  # the selection is marked where `best` lists it


def test_timeout_ends_a_search_before_its_budget(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SPACE.format(rate="0.05"))
    out = run_cli(
        "run",
        "s.yaml",
        "--trials",
        "1000",
        "--timeout",
        "5",
        "--no-select",
        "--json",
        "--home",
        "m",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    done = summary["counts"]["complete"] + summary["counts"]["pruned"]
    assert 1 <= done < 1000  # stopped by the clock, with what it finished kept
    client = MlflowClient(f"sqlite:///{tmp_path / 'm' / 'mlflow.db'}")
    assert "RUNNING" not in {r.info.status for r in client.search_runs(["1"])}
