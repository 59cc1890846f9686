"""Running trials carry their owner and a heartbeat; trials whose owner died are recovered.

Every way of running trials (`search run`, the worker pool, Ray actors) marks each trial it
starts with `worker` (host:pid) and refreshes `heartbeat` from a background thread. Any
command that opens a study fails the trials whose owner is gone (its process no longer
exists on this host, or its heartbeat is older than the grace period), ends their MLflow
runs FAILED with the reason, and retries each once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Collection
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from search.attrs import Trial
from search.storage.optuna_private import storage_of, study_id, trial_id

HEARTBEAT_S = 5.0
GRACE_S = 30.0


def owner() -> str:
    """This process, as a running trial names its owner."""
    return f"{socket.gethostname()}:{os.getpid()}"


def mark_started(trial: optuna.Trial) -> None:
    """Name this process as the trial's owner, with a first heartbeat."""
    trial.set_user_attr(Trial.WORKER, owner())
    trial.set_user_attr(Trial.HEARTBEAT, time.time())


class Heartbeat:
    """Refresh the heartbeats of this process's running trials from a background thread."""

    def __init__(
        self, storage: BaseStorage, trial_ids: Collection[int] = (), every: float = HEARTBEAT_S
    ) -> None:
        self._ids = set(trial_ids)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(storage, every), daemon=True)

    def add(self, trial_id: int) -> None:
        self._ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        self._ids.discard(trial_id)

    def _beat(self, storage: BaseStorage, every: float) -> None:
        while not self._stop.wait(every):
            for held in list(self._ids):
                with contextlib.suppress(Exception):  # the trial may have just finished
                    storage.set_trial_user_attr(held, Trial.HEARTBEAT, time.time())

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def dead(trial: FrozenTrial, grace_s: float, now: float) -> str | None:
    """Why a RUNNING trial's owner is gone, or None while it lives."""
    host, _, pid = str(trial.user_attrs.get(Trial.WORKER, ":")).rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return f"its process {host}:{pid} died (killed, out of memory or a power cut)"
        except PermissionError:
            pass
    start = trial.datetime_start.timestamp() if trial.datetime_start else now
    beat = float(trial.user_attrs.get(Trial.HEARTBEAT, start))
    if now - beat > grace_s:
        who = f"{host}:{pid}" if pid else "its process"
        return f"{who} stopped its heartbeat {now - beat:.0f}s ago"
    return None


def recover_stale(
    storage: BaseStorage,
    *,
    tracking_uri: str,
    home: Path,
    grace_s: float = GRACE_S,
    studies: Collection[str] | None = None,
) -> list[int]:
    """Fail the trials of dead owners, end their MLflow runs FAILED, retry each once.

    `studies` limits the sweep to those names; the numbers of the recovered trials return.
    """
    recovered = []
    now = time.time()
    for summary in storage.get_all_studies():
        if studies is not None and summary.study_name not in studies:
            continue
        trials = storage.get_all_trials(study_id(storage, summary), deepcopy=False)
        stale = [
            (t, reason)
            for t in trials
            if t.state == TrialState.RUNNING and (reason := dead(t, grace_s, now)) is not None
        ]
        if not stale:
            continue
        retried = {t.user_attrs.get(Trial.RETRY_OF) for t in trials}
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t, reason in stale:
            storage.set_trial_user_attr(trial_id(t), Trial.FAIL_REASON, reason)
            storage.set_trial_state_values(trial_id(t), TrialState.FAIL)
            if t.number not in retried and Trial.RETRY_OF not in t.user_attrs:
                study.enqueue_trial(t.params, user_attrs={Trial.RETRY_OF: t.number})
            recovered.append(t.number)
        _end_runs(study, stale, tracking_uri, home)
    return recovered


def _end_runs(
    study: optuna.Study, stale: list[tuple[FrozenTrial, str]], tracking_uri: str, home: Path
) -> None:
    """The MLflow runs of dead trials end FAILED; the study run too, when nothing runs now."""
    from search.tracking.runs import Tracker  # MLflow: loaded only when a run must end

    tracker = Tracker(tracking_uri, study.study_name, artifact_root=home / "artifacts")
    running = tracker.reader.running(tracker.experiment_id)
    reasons = {str(t.number): reason for t, reason in stale}
    for run in running:
        tags = run.data.tags
        if tags.get("search.role") in ("trial", "fold") and tags.get("search.trial") in reasons:
            tracker.end(run.info.run_id, "FAILED", reason=reasons[tags["search.trial"]])
    if not any(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
        for run in running:  # the study run, named in the study or not yet
            tags = run.data.tags
            if tags.get("search.role") == "study" and tags.get("search.study") == study.study_name:
                tracker.end(run.info.run_id, "KILLED", reason="the process running it died")
    tracker.flush()


def retry_interrupted(study: optuna.Study) -> list[int]:
    """Enqueue once each trial that Ctrl-C ended, so that running again retries it."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(Trial.RETRY_OF) for t in trials}
    again = [
        t
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get(Trial.INTERRUPTED)
        and t.number not in retried
        and Trial.RETRY_OF not in t.user_attrs
    ]
    for t in again:
        study.enqueue_trial(t.params, user_attrs={Trial.RETRY_OF: t.number})
    return [t.number for t in again]


def fail_own_running(study: optuna.Study) -> list[int]:
    """After Ctrl-C: this process's trials still RUNNING (the signal landed between two of
    Optuna's writes) end FAIL as interrupted, to be retried by the next run."""
    ended = []
    storage = storage_of(study)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get(Trial.WORKER) == owner():
            storage.set_trial_user_attr(trial_id(t), Trial.FAIL_REASON, "KeyboardInterrupt: ")
            storage.set_trial_user_attr(trial_id(t), Trial.INTERRUPTED, True)
            storage.set_trial_state_values(trial_id(t), TrialState.FAIL)
            ended.append(t.number)
    return ended
