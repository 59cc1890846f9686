"""Several studies on one shared storage: submit, status, claim a trial, heartbeats, recovery.

A study's budget counts complete and pruned trials. Workers claim trials under a lock (a
file lock for the journal file and SQLite, an advisory lock for PostgreSQL), so no study
runs more trials than its budget however many workers ask at once. Every running trial
carries its worker's host, pid and a heartbeat in its user attributes; a trial whose
worker died is marked failed, its MLflow runs end FAILED, and it is retried once.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from search.attrs import Study
from search.errors import InputError
from search.liveness import GRACE_S, HEARTBEAT_S, mark_started, recover_stale
from search.prepare import Prepared, prepare
from search.space.check import checked_study_name
from search.space.file import load_space
from search.space.schema import Space
from search.storage.optuna_private import study_id
from search.study import DEFAULT_HOME, open_storage, open_study
from search.tracking import Tracker, default_tracking_uri

_LAST_RECOVERY: dict[int, float] = {}


@dataclass(frozen=True)
class Queue:
    """Where the studies live: one Optuna storage and one MLflow store."""

    storage_url: str | None
    home: Path
    tracking_uri: str
    heartbeat_s: float = HEARTBEAT_S
    grace_s: float = GRACE_S

    @classmethod
    def open(
        cls,
        storage: str | None = None,
        home: str | Path = DEFAULT_HOME,
        tracking_uri: str | None = None,
        **timing: float,
    ) -> Queue:
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        return cls(storage, home, tracking_uri or default_tracking_uri(home), **timing)

    def storage(self) -> BaseStorage:
        return open_storage(self.storage_url, self.home)

    @contextlib.contextmanager
    def lock(self, storage: BaseStorage) -> Iterator[None]:
        """One claim at a time across processes (and machines, for PostgreSQL)."""
        if isinstance(storage, RDBStorage) and storage.engine.dialect.name == "postgresql":
            from sqlalchemy import text

            with storage.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(7391)"))
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(7391)"))
            return
        path = self.home / "claims.lock"
        with open(path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def submit(
    space: Space | Prepared | str | Path,
    queue: Queue,
    *,
    trials: int | None = None,
    priority: int = 0,
    study_name: str | None = None,
) -> str:
    """Queue a study: validate everything, create it, record its budget and priority."""
    from search.tracking.parent import parent_run  # MLflow: not for `search status`

    if isinstance(space, Prepared):
        prep, space = space, space.space
    else:
        space = load_space(space) if isinstance(space, str | Path) else space
        prep = prepare(space)
    budget = trials if trials is not None else space.study.trials
    if budget is None or budget < 1:
        raise InputError(f"--trials must be >= 1, got {budget}")
    name = checked_study_name(space, study_name)  # before anything is written
    study = open_study(prep, queue.storage(), name)
    tracker = Tracker(queue.tracking_uri, name, artifact_root=queue.home / "artifacts")
    parent = parent_run(tracker, study, prep)
    tracker.flush()
    tracker.set_status(parent, "SCHEDULED")
    study.set_user_attr(Study.BUDGET, int(budget))
    study.set_user_attr(Study.PRIORITY, int(priority))
    study.set_user_attr(Study.QUEUED_AT, time.time())
    return name


@dataclass(frozen=True)
class StudyStatus:
    name: str
    priority: int
    budget: int
    complete: int
    pruned: int
    failed: int
    running: int
    best: float | None

    @property
    def done(self) -> int:
        return self.complete + self.pruned

    @property
    def state(self) -> str:
        if self.done >= self.budget:
            return "finished"
        return "running" if self.running or self.done or self.failed else "queued"


def status(queue: Queue) -> list[StudyStatus]:
    storage = queue.storage()
    out = []
    for summary in storage.get_all_studies():
        if Study.BUDGET not in summary.user_attrs:
            continue
        trials = storage.get_all_trials(study_id(storage, summary), deepcopy=False)
        out.append(_status(summary, trials))
    return sorted(out, key=lambda s: (-s.priority, s.name))


def _status(summary: Any, trials: list[FrozenTrial]) -> StudyStatus:
    name, attrs = summary.study_name, summary.user_attrs
    states = [t.state for t in trials]
    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    best = None
    if values:
        best = max(values) if summary.direction.name == "MAXIMIZE" else min(values)
    return StudyStatus(
        name,
        int(attrs.get(Study.PRIORITY, 0)),
        int(attrs[Study.BUDGET]),
        states.count(TrialState.COMPLETE),
        states.count(TrialState.PRUNED),
        states.count(TrialState.FAIL),
        states.count(TrialState.RUNNING),
        best,
    )


def status_table(rows: list[StudyStatus]) -> str:
    if not rows:
        return "no studies queued (search submit SPACE)"
    head = (
        f"{'study':<24} {'state':<9} {'prio':>4} {'done/budget':>11} {'pruned':>6} "
        f"{'failed':>6} {'running':>7} {'best':>10}"
    )
    lines = [head]
    for r in rows:
        best = "" if r.best is None else f"{r.best:.4f}"
        lines.append(
            f"{r.name:<24} {r.state:<9} {r.priority:>4} {r.done:>5}/{r.budget:<5} "
            f"{r.pruned:>6} {r.failed:>6} {r.running:>7} {best:>10}"
        )
    return "\n".join(lines)


@dataclass
class Claim:
    study: optuna.Study
    trial: optuna.Trial


def claim(queue: Queue, storage: BaseStorage) -> Claim | None:
    """Take the next trial of the most urgent unfinished study, or None when none has room."""
    with queue.lock(storage):
        now = time.time()
        if now - _LAST_RECOVERY.get(id(storage), 0.0) >= queue.heartbeat_s:
            recover(queue, storage)  # at most once a heartbeat per worker
            _LAST_RECOVERY[id(storage)] = now
        candidates = []
        for summary in storage.get_all_studies():
            attrs = summary.user_attrs
            if Study.BUDGET not in attrs:
                continue
            trials = storage.get_all_trials(study_id(storage, summary), deepcopy=False)
            s = _status(summary, trials)
            taken = s.complete + s.pruned + s.running
            if taken >= s.budget or s.failed >= max(3, 2 * s.budget):
                continue  # full, or giving up on a study whose trials keep failing
            candidates.append((-s.priority, taken, summary.study_name))
        if not candidates:
            return None
        name = min(candidates)[2]
        study = optuna.load_study(study_name=name, storage=storage)
        trial = study.ask()
        mark_started(trial)
        return Claim(study, trial)


def claim_more(queue: Queue, storage: BaseStorage, study: optuna.Study, k: int) -> list[Any]:
    """Up to `k` more trials of a claimed trial's study, within its budget: the rest of a
    pack for a worker whose engine trains several trials at once."""
    if k <= 0:
        return []
    with queue.lock(storage):
        summary = next(s for s in storage.get_all_studies() if s.study_name == study.study_name)
        s = _status(summary, storage.get_all_trials(study_id(storage, summary), deepcopy=False))
        room = s.budget - (s.complete + s.pruned + s.running)
        trials = [study.ask() for _ in range(max(0, min(k, room)))]
        for trial in trials:
            mark_started(trial)
        return trials


def pending(storage: BaseStorage) -> bool:
    """Is any queued study still unfinished (so a trial may need a retry later)?"""
    for summary in storage.get_all_studies():
        if Study.BUDGET in summary.user_attrs:
            trials = storage.get_all_trials(study_id(storage, summary), deepcopy=False)
            if _status(summary, trials).state != "finished":
                return True
    return False


def recover(queue: Queue, storage: BaseStorage, studies: list[str] | None = None) -> list[int]:
    """`recover_stale` on this queue's stores."""
    return recover_stale(
        storage,
        tracking_uri=queue.tracking_uri,
        home=queue.home,
        grace_s=queue.grace_s,
        studies=studies,
    )


def _sweep(tracker: Tracker, study: optuna.Study) -> None:
    """End trial and fold runs left RUNNING although their trial is no longer running."""
    running = {
        str(t.number) for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING
    }
    stale = tracker.reader.running(tracker.experiment_id)
    for run in stale:
        tags = run.data.tags
        if tags.get("search.role") in ("trial", "fold") and tags.get("search.trial") not in running:
            tracker.end(run.info.run_id, "KILLED", reason="the worker pool stopped")
    tracker.flush()


def close_parents(queue: Queue) -> None:
    """After the pool stops: no study run is left RUNNING."""
    from search.tracking.parent import close_parent  # MLflow: not for `search status`

    storage = queue.storage()
    for st in status(queue):
        study = optuna.load_study(study_name=st.name, storage=storage)
        run_id = study.user_attrs.get(Study.RUN_ID)
        if not run_id:
            continue
        tracker = Tracker(queue.tracking_uri, st.name, artifact_root=queue.home / "artifacts")
        _sweep(tracker, study)
        if tracker.reader.status(run_id) in ("RUNNING", "SCHEDULED"):
            final = "FINISHED" if st.state == "finished" else "KILLED"
            if st.state == "queued":
                continue  # nobody worked on it: it stays SCHEDULED
            close_parent(tracker, run_id, study, final)
