"""Faults a real machine has: a `search run` killed with SIGKILL, Ctrl-C, a resumed budget.

Real processes, real stores: nothing is left RUNNING in Optuna or MLflow, nothing is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from tests.conftest import ROOT, run_cli
from tests.shutdown import ctrl_c_once_handler_goes

SLOW = """
study: {{name: {name}, trials: {trials}, sampler: random, pruner: none, seed: 5}}
data: {{source: breast_cancer, test_size: 0.25}}
validation: {{scheme: holdout}}
params: {{depth: 1, width: {{low: 8, high: 16}}, epochs: {epochs}, patience: {epochs},
         learning_rate: 0.0001}}
training: {{engine: {engine}}}
"""


def _space(tmp_path: Path, *, name: str, trials: int, epochs: int, engine: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SLOW.format(name=name, trials=trials, epochs=epochs, engine=engine))
    return path


def _study(home: Path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(home / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "search.cli.main", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _wait_for_running(home: Path, name: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        journal = home / "optuna.journal"
        if journal.exists():
            try:
                trials = _study(home, name).get_trials(deepcopy=False)
            except KeyError:
                trials = []
            started = any(
                t.state == TrialState.RUNNING and "heartbeat" in t.user_attrs for t in trials
            )
            if started and _mlflow_trial_running(home):  # its MLflow runs written (background)
                return
        time.sleep(0.5)
    raise AssertionError("no trial started")


def _mlflow_trial_running(home: Path) -> bool:
    if not (home / "mlflow.db").exists():
        return False
    try:
        return any(name.startswith("trial-") for name in _mlflow_running(home))
    except Exception:  # the store still being made by the run under test
        return False


def _mlflow_running(home: Path) -> list[str]:
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="attributes.status = 'RUNNING'",
    )
    return [r.info.run_name for r in runs]


@pytest.mark.parametrize("engine", ["sequential", "pack"])
@pytest.mark.parametrize("opener", ["run", "status", "select"])
def test_a_killed_run_is_recovered_by_the_next_command(
    tmp_path: Path, engine: str, opener: str
) -> None:
    name = f"killed_{engine}"
    space = _space(tmp_path, name=name, trials=2, epochs=3000, engine=engine)
    home = tmp_path / "m"
    proc = _start("run", str(space), "--home", str(home), "--no-select")
    _wait_for_running(home, name, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # as the out-of-memory killer or a power cut would
    proc.wait()
    running = [t for t in _study(home, name).get_trials() if t.state == TrialState.RUNNING]
    assert running  # what the kill left behind
    assert _mlflow_running(home)

    if opener == "status":
        out = run_cli("status", "--home", str(home))
        assert out.returncode == 0, out.stderr[-2000:]
    elif opener == "select":
        out = run_cli("select", name, "--home", str(home))
        assert out.returncode == 2 and "no complete trial" in out.stderr  # but it recovered
    else:
        (tmp_path / f"{name}.yaml").write_text(
            space.read_text().replace("epochs: 3000, patience: 3000", "epochs: 2, patience: 2")
        )
        out = run_cli("run", str(space), "--home", str(home), "--no-select", "--json")
        assert out.returncode == 0, out.stderr[-2000:]
    trials = _study(home, name).get_trials()
    for t in running:
        dead = trials[t.number]
        assert dead.state == TrialState.FAIL
        assert "died" in dead.user_attrs["fail_reason"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") is not None]
    assert sorted(t.user_attrs["retry_of"] for t in retries) == sorted(t.number for t in running)
    assert _mlflow_running(home) == []  # trial, fold and study runs all ended
    if opener == "run":
        assert all(t.state == TrialState.COMPLETE for t in retries)  # the retry ran
        summary = json.loads(out.stdout)
        assert summary["counts"]["complete"] == 2  # the budget, not more
        assert summary["counts"]["running"] == 0
    else:
        assert all(t.state == TrialState.WAITING for t in retries)  # for the next run


def test_json_is_alone_on_stdout_when_a_trial_diverges(tmp_path: Path) -> None:
    """Keras prints "Batch N: Invalid loss" to standard output; --json's stdout stays JSON."""
    path = tmp_path / "nan.yaml"
    path.write_text(
        "study: {name: nan, trials: 2, sampler: grid, pruner: none}\n"
        "data: {source: diabetes}\nvalidation: {scheme: holdout}\n"
        "params: {optimizer: sgd, learning_rate: {choices: [1.0e+12, 0.001]}, depth: 1,\n"
        "         width: 8, epochs: 3, patience: 1}\n"
        "training: {engine: sequential}\n"
    )
    out = run_cli("run", str(path), "--no-select", "--json", "--home", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)  # the whole of stdout is one JSON document
    assert summary["counts"]["fail"] == 1 and summary["counts"]["complete"] == 1
    assert "Invalid loss" in out.stderr  # Keras did print it, on stderr now


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_ctrl_c_after_the_command_has_its_exit_code_does_not_kill_it(tmp_path: Path) -> None:
    """A search that has finished ends with 0 even when a Ctrl-C lands while the
    interpreter shuts down (it put the default action back for the command's handler,
    and the process died by the signal, -2, with no word, after its work was done)."""
    space = _space(tmp_path, name="late", trials=1, epochs=2, engine="sequential")
    proc = _start("run", str(space), "--home", str(tmp_path / "m"), "--no-select")
    sent = ctrl_c_once_handler_goes(proc)
    _, err = proc.communicate(timeout=120)
    assert sent
    assert proc.returncode == 0, err[-2000:]


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
def test_ctrl_c_at_any_moment_of_start_up_stops_the_command(tmp_path: Path, delay: float) -> None:
    """Ctrl-C while TensorFlow and JAX load (where Python can swallow it) still stops, and
    cleanly: an import cut in the middle left TensorFlow half made and the process
    aborted at exit (SIGABRT or SIGSEGV, found at 5-8 s on 2 cores)."""
    space = _space(tmp_path, name="startup", trials=2, epochs=3000, engine="sequential")
    home = tmp_path / "m"
    proc = _start("run", str(space), "--home", str(home), "--no-select")
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    signalled = time.time()
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError(f"still running 60 s after Ctrl-C at {delay} s") from None
    # 130 from the command's own handler; -SIGINT if Python itself was still starting (a
    # shell reports both as 130)
    assert proc.returncode in (130, -signal.SIGINT), err[-2000:]
    assert time.time() - signalled < 30  # stopped, not run to the end
    if (home / "optuna.journal").exists():
        trials = (
            _study(home, "startup").get_trials()
            if "startup"
            in (
                s.study_name
                for s in optuna.get_all_study_summaries(
                    JournalStorage(JournalFileBackend(str(home / "optuna.journal")))
                )
            )
            else []
        )
        assert TrialState.RUNNING not in {t.state for t in trials}


def test_two_runs_of_one_study_share_its_run_and_its_budget(tmp_path: Path) -> None:
    space = _space(tmp_path, name="twice", trials=4, epochs=30, engine="sequential")
    home = tmp_path / "m"
    home.mkdir()
    procs = [_start("run", str(space), "--home", str(home), "--no-select") for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    trials = _study(home, "twice").get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # the budget is shared; two trials that start at the same instant may pass it by one
    assert 4 <= len(done) <= 5, [t.state for t in trials]
    assert TrialState.RUNNING not in {t.state for t in trials}
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "twice"]
    studies = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'study'"
    )
    assert len(studies) == 1 and studies[0].info.status == "FINISHED"
    children = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`search.role` = 'trial'"
    )
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {studies[0].info.run_id}
    assert len(children) == len(trials)


@pytest.mark.parametrize("engine", ["sequential", "pack"])
def test_running_again_after_ctrl_c_retries_the_interrupted_trial_and_stops_at_the_budget(
    tmp_path: Path, engine: str
) -> None:
    name = f"resume_{engine}"
    space = _space(tmp_path, name=name, trials=3, epochs=3000, engine=engine)
    home = tmp_path / "m"
    proc = _start("run", str(space), "--home", str(home), "--no-select")
    _wait_for_running(home, name, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    # the trial Ctrl-C stopped: FAIL, or (when the signal landed between two of Optuna's
    # writes) RUNNING with a dead owner, which the next run recovers; either is retried
    left = (TrialState.FAIL, TrialState.RUNNING)
    interrupted = [t.number for t in _study(home, name).get_trials() if t.state in left]
    assert interrupted
    space.write_text(
        space.read_text().replace("epochs: 3000, patience: 3000", "epochs: 2, patience: 2")
    )
    out = run_cli("run", str(space), "--home", str(home), "--no-select")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"study '{name}': 3 trials left of 3" in out.stderr  # said before it starts
    trials = _study(home, name).get_trials()
    retried = {t.user_attrs.get("retry_of"): t.state for t in trials if "retry_of" in t.user_attrs}
    assert retried == dict.fromkeys(interrupted, TrialState.COMPLETE)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3  # the budget, not 3 more
    again = run_cli("run", str(space), "--home", str(home), "--no-select")
    assert again.returncode == 0 and "already has 3 of its 3 trials" in again.stderr
    assert len(_study(home, name).get_trials()) == len(trials)


def test_two_runs_of_one_study_make_one_selection(tmp_path: Path) -> None:
    space = _space(tmp_path, name="once", trials=2, epochs=20, engine="sequential")
    space.write_text(
        space.read_text() + "selection: {top_k: 1, recheck_folds: 2, bootstrap: 100}\n"
    )
    home = tmp_path / "m"
    home.mkdir()
    procs = [_start("run", str(space), "--home", str(home)) for _ in range(2)]
    errs = []
    for proc in procs:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        errs.append(err)
    assert sum("already selected for this budget" in err for err in errs) == 1
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    versions = client.search_model_versions("name = 'once'")
    assert len(versions) == 1  # one champion registered, not one per process


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path: Path) -> None:
    space = _space(tmp_path, name="term", trials=2, epochs=3000, engine="sequential")
    home = tmp_path / "m"
    proc = _start("run", str(space), "--home", str(home), "--no-select")
    _wait_for_running(home, "term", proc)
    proc.terminate()  # SIGTERM to the command alone, as `kill PID` sends
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    trials = _study(home, "term").get_trials()
    assert TrialState.RUNNING not in {t.state for t in trials}
    assert _mlflow_running(home) == []
