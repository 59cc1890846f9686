"""The worker pool on CPU with real processes and a real journal storage."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from search.pool.queue import Queue, status, submit
from search.pool.workers import EXIT_NO_WORK, plan_slots, serve
from search.redact import mask_password
from search.study import open_storage
from search.tracking import ROLE
from tests.conftest import ROOT, run_cli
from tests.shutdown import ctrl_c_once_handler_goes

SPACE = """
study: {{name: {name}, trials: {trials}, sampler: random, pruner: none}}
data: {{source: iris}}
validation: {{scheme: kfold, folds: 2}}
params: {{depth: 1, width: {{low: 4, high: 8}}, epochs: {epochs}, patience: {epochs}}}
"""


def _space(tmp: Path, name: str, trials: int, epochs: int = 2) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(SPACE.format(name=name, trials=trials, epochs=epochs))
    return path


def _trials(home: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=open_storage(None, home)).trials


def _runs(home: Path) -> list:  # type: ignore[type-arg]
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, max_results=5000)


def test_slots_pin_gpus() -> None:
    assert [s.gpu for s in plan_slots("0,1", per_gpu=2)] == ["0", "0", "1", "1"]
    assert [s.gpu for s in plan_slots(None, workers=3)] == [None, None, None]


def test_four_workers_two_studies_exact_budgets(tmp_path: Path) -> None:
    home = tmp_path / "m"
    queue = Queue.open(None, home)
    submit(_space(tmp_path, "a", 7), queue)
    submit(_space(tmp_path, "b", 5), queue, priority=1)
    report = serve(
        plan_slots("0,1", per_gpu=2), storage=None, home=home, tracking_uri=None, recycle=2
    )
    assert report.recycled >= 1  # workers were replaced by fresh processes along the way
    for name, budget in (("a", 7), ("b", 5)):
        trials = _trials(home, name)
        finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished) == budget  # never more than the budget, however many workers
        assert len({t.number for t in trials}) == len(trials)
        # each slot saw the GPU it was given: slots 0, 1 -> GPU 0; slots 2, 3 -> GPU 1
        for t in finished:
            expected = "0" if t.user_attrs["slot"] in ("0", "1") else "1"
            assert t.user_attrs["cuda_visible_devices"] == expected
    runs = _runs(home)
    parents = {
        r.data.tags["search.study"]: r.info.run_id for r in runs if r.data.tags.get(ROLE) == "study"
    }
    trial_runs = [r for r in runs if r.data.tags.get(ROLE) == "trial"]
    for r in trial_runs:
        assert r.data.tags["mlflow.parentRunId"] == parents[r.data.tags["search.study"]]
    assert Counter(r.data.tags["search.study"] for r in trial_runs) == {"a": 7, "b": 5}
    assert "RUNNING" not in {r.info.status for r in runs}
    # workers train packs: some claims took more than one trial, all within the budgets
    assert any(r.data.tags.get("search.engine") == "pack" for r in trial_runs)
    packs = [t.user_attrs.get("pack.trials", []) for n in ("a", "b") for t in _trials(home, n)]
    assert max(len(p) for p in packs) >= 2
    assert {s.name: s.state for s in status(queue)} == {"a": "finished", "b": "finished"}


def _serve_process(home: Path, workers: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "search.cli.main",
            "serve",
            "--workers",
            str(workers),
            "--home",
            str(home),
            "--heartbeat",
            "0.5",
            "--grace",
            "3",
        ],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(home: Path, name: str, state: TrialState, timeout: float = 180.0) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for t in _trials(home, name):
            if t.state == state and "worker" in t.user_attrs and t.params:  # it is training
                return t.number
        time.sleep(0.3)
    raise AssertionError(f"no {state.name} trial within {timeout}s")


def test_killed_worker_trial_fails_and_is_retried(tmp_path: Path) -> None:
    home = tmp_path / "m"
    # long enough that the kill lands mid-trial: a pack whose program is cached trained
    # 2,000 epochs of these in about the second the test waits on a quiet machine, and the
    # trial completed before the kill (CI, 2026-12-02)
    submit(_space(tmp_path, "k", 4, epochs=5000), Queue.open(None, home))
    pool = _serve_process(home, workers=2)
    try:
        number = _wait_for(home, "k", TrialState.RUNNING)
        victim = next(t for t in _trials(home, "k") if t.number == number)
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        time.sleep(1.0)  # mid-trial
        os.kill(pid, signal.SIGKILL)
        _out, err = pool.communicate(timeout=600)
    finally:
        pool.kill()
    assert pool.returncode == 0, err[-3000:]
    trials = {t.number: t for t in _trials(home, "k")}
    killed = trials[number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["fail_reason"]
    retry = [t for t in trials.values() if t.user_attrs.get("retry_of") == number]
    assert len(retry) == 1 and retry[0].params == killed.params
    states = Counter(t.state for t in trials.values())
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 4
    assert states[TrialState.RUNNING] == 0
    runs = {r.info.run_id: r for r in _runs(home)}
    assert runs[killed.user_attrs["mlflow_run_id"]].info.status == "FAILED"
    assert "RUNNING" not in {r.info.status for r in runs.values()}


def test_interrupted_serve_resumes_to_the_budget(tmp_path: Path) -> None:
    home = tmp_path / "m"
    # long enough that Ctrl-C lands before the budget is done with either engine
    submit(_space(tmp_path, "i", 5, epochs=1500), Queue.open(None, home))
    pool = _serve_process(home, workers=2)
    try:
        _wait_for(home, "i", TrialState.COMPLETE)
        pool.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = pool.communicate(timeout=300)
    finally:
        pool.kill()
    assert pool.returncode == 130, err[-3000:]
    trials = _trials(home, "i")
    assert TrialState.RUNNING not in {t.state for t in trials}
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert stopped  # the trials that were training when Ctrl-C came
    reasons = [t.user_attrs["fail_reason"] for t in stopped]  # packed or not
    assert all(r == "interrupted (Ctrl-C)" for r in reasons), reasons
    assert "RUNNING" not in {r.info.status for r in _runs(home)}
    done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert done < 5  # it did stop early
    again = _serve_process(home, workers=2)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    trials = _trials(home, "i")
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 5


def test_a_stop_request_during_a_claim_waits_until_the_claim_returns() -> None:
    """The signal goes to another thread (as in a worker, which runs TensorFlow's and
    MLflow's threads); Python still runs the handler in the main thread, mid-claim."""
    from search.engines.base import STOP
    from search.pool import worker

    go, sent = threading.Event(), threading.Event()

    def other_thread() -> None:
        go.wait()
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    helper = threading.Thread(target=other_thread)
    helper.start()
    stop = worker.StopRequest()
    old = signal.signal(signal.SIGINT, stop)
    claimed = []
    try:
        with pytest.raises(KeyboardInterrupt), stop.held():
            go.set()
            sent.wait(5)
            for _ in range(100):  # bytecode boundaries where a handler would run
                time.sleep(0.001)
            claimed.append("trial")  # what `claim` returns reaches its caller
        assert claimed == ["trial"] and STOP.is_set()
    finally:
        signal.signal(signal.SIGINT, old)
        helper.join()
        STOP.clear()


@pytest.mark.parametrize("handler", ["search.interrupt", "worker"])
def test_a_stop_request_during_a_journal_write_waits_until_the_lock_is_released(
    tmp_path: Path, handler: str
) -> None:
    """Either Ctrl-C handler this package installs (the command's, a worker's) holds the
    request back while Optuna's journal lock is held: a worker's used to raise inside the
    lock's release, and the trial failed with a FileNotFoundError instead of stopping."""
    from search import interrupt
    from search.engines.base import STOP
    from search.pool import worker
    from search.storage.journal import open_journal

    path = tmp_path / "optuna.journal"
    backend = open_journal(path)
    own = worker.StopRequest() if handler == "worker" else interrupt._handler
    old = signal.signal(signal.SIGINT, own)
    written = []
    try:
        with pytest.raises(KeyboardInterrupt), interrupt.deferred():
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, in this thread
            for _ in range(100):
                time.sleep(0.001)
            backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s"}])
            written.append(True)
        assert written == [True]
        assert not any(p.name != path.name for p in tmp_path.iterdir())  # no lock left
        assert path.read_text().count("\n") == 1
    finally:
        signal.signal(signal.SIGINT, old)
        STOP.clear()
        interrupt.REQUESTED.clear()


def _lone_worker(tmp_path: Path) -> subprocess.Popen[str]:
    """A worker process on an empty home (it loads its libraries, then finds no work),
    in a session of its own, as a terminal's Ctrl-C reaches a group."""
    return subprocess.Popen(
        [sys.executable, "-m", "search.pool.worker", "--home", str(tmp_path / "m")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


# from 2 s: before that the interpreter itself may still be starting, before any handler
@pytest.mark.parametrize("delay", [2.0, 3.0, 4.0, 5.0, 6.0])
def test_ctrl_c_while_a_worker_loads_its_libraries_ends_it_cleanly(
    tmp_path: Path, delay: float
) -> None:
    """A worker's own Ctrl-C handler is in place before TensorFlow loads, and holds the
    request until the import is whole: the worker ends with 130 (or finds no work first),
    never killed by a signal (an import cut in the middle aborted the process at exit)."""
    proc = _lone_worker(tmp_path)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, EXIT_NO_WORK), err[-2000:]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_ctrl_c_after_a_worker_has_its_exit_code_does_not_kill_it(tmp_path: Path) -> None:
    """A worker that found no work ends with that code even when a Ctrl-C lands as the
    interpreter shuts down (it used to put the default action back for the handler, and
    the worker died by the signal, -2, with no word)."""
    proc = _lone_worker(tmp_path)
    sent = ctrl_c_once_handler_goes(proc)
    _, err = proc.communicate(timeout=120)
    assert sent  # the window is a few hundred ms after TensorFlow has loaded
    assert proc.returncode == EXIT_NO_WORK, err[-2000:]


def test_password_is_masked() -> None:
    assert mask_password("postgresql://bob:s3cret@db:5432/x") == "postgresql://bob:***@db:5432/x"
    assert "s3cret" not in mask_password("postgresql+psycopg://u:s3cret@h/d")


@pytest.mark.parametrize(("gpus", "match"), [("x,1", "--gpus"), ("0", None)])
def test_bad_gpu_list(gpus: str, match: str | None) -> None:
    from search.errors import InputError

    if match is None:
        assert [s.gpu for s in plan_slots(gpus)] == ["0"]
    else:
        with pytest.raises(InputError, match=match):
            plan_slots(gpus)


def test_run_with_workers_prints_json_alone(tmp_path: Path) -> None:
    space = _space(tmp_path, "pooljson", trials=2)
    home = tmp_path / "m"
    out = run_cli("run", str(space), "--workers", "1", "--json", "--no-select", "--home", str(home))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)  # the whole of stdout
    assert summary["study_name"] == "pooljson" and summary["budget"] == 2
    assert summary["counts"]["complete"] + summary["counts"]["pruned"] == 2
    assert summary["counts"]["running"] == 0


def test_a_higher_priority_is_served_first_and_equals_share(tmp_path: Path) -> None:
    """The real claim on a real journal: every trial of the urgent study first, then the
    two equal studies in turn (the one with fewer trials taken next)."""
    from search.pool.queue import claim

    home = tmp_path / "m"
    queue = Queue.open(None, home)
    submit(_space(tmp_path, "low_a", 3), queue)
    submit(_space(tmp_path, "low_b", 3), queue)
    submit(_space(tmp_path, "urgent", 2), queue, priority=5)
    storage = queue.storage()
    order = []
    while (got := claim(queue, storage)) is not None:
        order.append(got.study.study_name)
        got.study.tell(got.trial, 0.5)
    assert order[:2] == ["urgent", "urgent"]
    rest = order[2:]
    assert sorted(rest) == ["low_a"] * 3 + ["low_b"] * 3  # every budget, never more
    for k in range(0, len(rest), 2):  # fair: neither runs two ahead of the other
        assert set(rest[k : k + 2]) == {"low_a", "low_b"}, rest


def test_recycled_workers_start_again_from_a_fresh_process(tmp_path: Path) -> None:
    home = tmp_path / "m"
    path = _space(tmp_path, "r", 4)
    path.write_text(path.read_text() + "training: {engine: sequential}\n")  # a trial a claim
    submit(path, Queue.open(None, home))
    report = serve(
        plan_slots(None, workers=1), storage=None, home=home, tracking_uri=None, recycle=2
    )
    assert report.recycled >= 1
    trials = sorted(_trials(home, "r"), key=lambda t: t.datetime_start)
    owners = [t.user_attrs["worker"] for t in trials]
    assert owners[0] == owners[1] != owners[2] == owners[3]  # two trials a process
    rss = [t.user_attrs["worker_rss_mb"] for t in trials]
    # memory stays flat: the fresh process starts its first trial smaller than the one it
    # replaced started its last (which held what its first trial left behind)
    assert rss[2] < rss[1], rss


def test_a_slot_is_configured_by_arguments_and_its_gpu_by_cuda() -> None:
    """A worker's settings are on its command line; only what CUDA reads (its GPU) and
    GPU sharing are in its environment (the stores' URLs travel there too: secrets)."""
    from search.pool.workers import Slot, slot_args, slot_env

    cpu, gpu = Slot(1, None, 2), Slot(3, "1", 4)
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    assert slot_args(cpu) == ["--slot", "1", "--threads", threads]
    assert slot_args(gpu, gpu_memory_mb=900) == ["--slot", "3", "--gpu-memory-mb", "900"]
    assert slot_env(gpu)["CUDA_VISIBLE_DEVICES"] == "1"
    assert not [k for k in slot_env(cpu) if k.startswith("SEARCH_") and k not in os.environ]
