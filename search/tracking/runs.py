"""MLflow: the study as a parent run, trials as children, folds as grandchildren.

`Tracker` uses `MlflowClient` with explicit run ids (no active-run stack), so it works the
same from threads and from worker processes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from search.tracking.records import RunReader
from search.tracking.store import seed_store, store_lock
from search.tracking.tags import ROLE, STUDY

# MLflow 3's UI opens an experiment in its classic training view, not its GenAI one, by this
KIND, TRAINING = "mlflow.experimentKind", "custom_model_development"
BATCH = 1000  # MLflow's limit of metrics per log_batch call
PACKAGES = ("tensorflow", "keras", "optuna", "mlflow", "scikit-learn", "pandas", "numpy")


def default_tracking_uri(home: Path) -> str:
    return f"sqlite:///{(home / 'mlflow.db').resolve()}"


log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient


class RunWriter(Protocol):
    """What the recorders (`search.tracking.recorder`) write through: a `Tracker`, or a
    `TrackingProcess`, whose run ids may be placeholders until `resolve`."""

    tracking_uri: str

    def study_run(
        self,
        study: str,
        *,
        run_id: str | None,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None = ...,
        files: Mapping[str, str] | None = ...,
    ) -> str: ...

    def child_run(
        self, parent_id: str, name: str, *, role: str, tags: Mapping[str, str]
    ) -> str: ...

    def end(self, run_id: str, status: str = ..., *, reason: str | None = ...) -> None: ...

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = ...,
        metrics: Mapping[str, float] | None = ...,
        series: Iterable[tuple[str, int, float]] = ...,
        tags: Mapping[str, Any] | None = ...,
    ) -> None: ...

    def log_text(self, run_id: str, text: str, path: str) -> None: ...

    def log_json(self, run_id: str, obj: Any, path: str) -> None: ...

    def resolve(self, run_id: str, *, wait: bool = ...) -> str | None: ...

    def flush(self) -> None: ...

    @property
    def experiment_id(self) -> str: ...


class Tracker:
    """Writes runs of one study's experiment.

    Runs are created at once (their ids are needed); what is written into them afterwards
    (values, tags, texts, the end) goes in order through the process's one writer thread, so that a
    trial's logging overlaps its next fold's training instead of adding to it. `flush()`
    waits for those writes: every public function that writes (run_search, select,
    study_report, submit) and every worker flushes before it returns, so what a caller
    reads back afterwards is there; the process's exit waits for the rest. With
    `background=False` (in `TrackingProcess`'s child) each write is carried out at once,
    and a failed one is kept for `take_warnings`.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        *,
        artifact_root: Path | None,
        background: bool = True,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        seed_store(tracking_uri)  # a new SQLite store: copied, not migrated anew
        self.client: MlflowClient = MlflowClient(tracking_uri)
        self.background = background
        self._pending: list[Future[None]] = []
        self._warnings: list[str] = []
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            self.experiment_id: str = self._create_experiment(experiment, artifact_root)
        else:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            self.experiment_id = str(found.experiment_id)
            if found.tags.get(KIND) != TRAINING:  # made by an older version
                self.client.set_experiment_tag(self.experiment_id, KIND, TRAINING)

    def _create_experiment(self, experiment: str, artifact_root: Path | None) -> str:
        """Create the experiment; when another process of the same study created it first
        (two runs started together), use theirs."""
        from mlflow.exceptions import MlflowException

        location = None
        if artifact_root is not None:
            location = (artifact_root / experiment).resolve().as_uri()
        try:
            return str(
                self.client.create_experiment(
                    experiment, artifact_location=location, tags={KIND: TRAINING}
                )
            )
        except MlflowException:
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                raise
            return str(found.experiment_id)

    # ------------------------------------------------------------ runs

    def study_run(
        self,
        study: str,
        *,
        run_id: str | None,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> str:
        """Reopen the study's parent run; or create it (also when this store lacks it), with
        `params` and the texts `files` maps from artifact path."""
        if run_id is not None:
            try:
                self.client.update_run(run_id, status="RUNNING")
                return run_id
            except Exception:  # the run is not in this tracking store: start a new parent
                pass
        with store_lock(self.tracking_uri):  # two processes starting one study: one parent
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`{ROLE}` = 'study' and tags.`{STUDY}` = '{study}'",
                order_by=["attributes.start_time ASC"],
                max_results=1,
            )
            if found:  # made by a run that died before it could name it in the study
                self.client.update_run(found[0].info.run_id, status="RUNNING")
                return str(found[0].info.run_id)
            run = self.client.create_run(
                self.experiment_id, run_name=study, tags={ROLE: "study", STUDY: study, **tags}
            )
        new = str(run.info.run_id)
        if params:
            self.log(new, params=params)
        for path, text in (files or {}).items():
            self.log_text(new, text, path)
        return new

    def child_run(self, parent_id: str, name: str, *, role: str, tags: Mapping[str, str]) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={"mlflow.parentRunId": parent_id, ROLE: role, **tags},
        )
        return str(run.info.run_id)

    def end(self, run_id: str, status: str = "FINISHED", *, reason: str | None = None) -> None:
        if reason:
            self._write(self.client.set_tag, run_id, "search.reason", reason[:5000])
        self._write(self.client.set_terminated, run_id, status=status)

    # ------------------------------------------------------------ the writer thread

    @property
    def reader(self) -> RunReader:
        """What the store's runs recorded (statuses, histories, texts)."""
        return RunReader(self.tracking_uri)

    def set_status(self, run_id: str, status: str) -> None:
        """Mark a run RUNNING, SCHEDULED, ... at once (not through the writer)."""
        self.client.update_run(run_id, status=status)

    def log_image(self, run_id: str, image: Any, path: str) -> None:
        self.client.log_image(run_id, image, path)

    def resolve(self, run_id: str, *, wait: bool = True) -> str | None:
        """MLflow's id of a run this writer created: this tracker creates runs at once, so
        it is `run_id` itself (a `TrackingProcess` may know it only later: `wait`)."""
        return run_id

    def take_warnings(self) -> list[str]:
        taken, self._warnings = self._warnings, []
        return taken

    def _write(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if not self.background:
            try:
                call(*args, **kwargs)
            except Exception as exc:
                self._warnings.append(f"{type(exc).__name__}: {exc}")
            return
        self._pending = [f for f in self._pending if not (f.done() and _reported(f))]
        self._pending.append(_writer().submit(call, *args, **kwargs))

    def flush(self) -> None:
        """Wait for every queued write (a failed one is logged as a warning, not raised:
        a tracking hiccup must not end a search)."""
        pending, self._pending = self._pending, []
        for future in pending:
            _reported(future)

    # ------------------------------------------------------------ values

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        series: Iterable[tuple[str, int, float]] = (),
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log params, last-value metrics, per-step series and tags in as few calls as possible."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
        rows += [Metric(k, float(v), now, step) for k, step, v in series]
        p = [Param(k, _short(v)) for k, v in (params or {}).items()]
        t = [RunTag(k, _short(v)) for k, v in (tags or {}).items()]
        for start in range(0, max(len(rows), 1), BATCH):
            chunk = rows[start : start + BATCH]
            self._write(
                self.client.log_batch,
                run_id,
                metrics=chunk,
                params=p if start == 0 else [],
                tags=t if start == 0 else [],
            )

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._write(self.client.log_text, run_id, text, path)

    def log_json(self, run_id: str, obj: Any, path: str) -> None:
        self.log_text(run_id, json.dumps(obj, indent=2, default=str), path)


_WRITER: list[ThreadPoolExecutor] = []


def _writer() -> ThreadPoolExecutor:
    """One writer thread per process, shared by every Tracker: writes keep their order."""
    if not _WRITER:
        _WRITER.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-writer"))
    return _WRITER[0]


def _reported(future: Future[None]) -> bool:
    """Wait for a write; log its failure, if any. True once it is done."""
    exc = future.exception()
    if exc is not None:
        log.warning("an MLflow write failed: %s: %s", type(exc).__name__, exc)
    return True


def _short(value: Any) -> str:
    return str(value)[:6000]
