"""MLflow in a process of its own, beside the trials: its import, its store and its writes.

MLflow's import, store and writes run in a child process on another core (as W&B runs
its service process), not on the GIL of Keras' Python-heavy training loop: bench/tracking.md
times `make search` with the writes here and in a thread of the search's process.

It is started with `python -c`, not `multiprocessing`: a spawned child runs the parent's
main script again, and a user's script calling `run_search` unguarded would start its
search again there.

Runs are created in the child: `study_run` and `child_run` hand back a handle
(``"~run-3"``) that stands for the run in every later call, and `resolve` turns it into
MLflow's run id once the child reports it (at once, so resolving a run made before a trial
trained costs nothing). Only the recorders (`search.tracking.recorder`) hold handles.
`flush` waits for every write sent so far. A failed write is logged as a warning, as the
thread writer does: a tracking hiccup must not end a search. If the store cannot be opened
at all, `resolve` and `flush` raise.

The wire: pickled messages on the child's stdin; replies, pickled, on a private copy of
its stdout (what libraries print in the child goes to stderr).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from search.errors import SearchFailed

log = logging.getLogger("search.tracking")

HANDLE = "~run-"


def pending(run_id: str) -> bool:
    """Whether `run_id` is a handle for a run the child may not have created yet."""
    return run_id.startswith(HANDLE)


class TrackingProcess:
    """The `Tracker` interface, carried out by a child process."""

    def __init__(self, tracking_uri: str, experiment: str, *, artifact_root: Path | None) -> None:
        self.tracking_uri = tracking_uri
        self._ids: dict[str, str | None] = {}
        self._synced = 0
        self._sent_syncs = 0
        self._fatal: str | None = None
        self._dead = False
        self._closed = False
        self._cv = threading.Condition()
        self._counter = itertools.count()
        # This very package, whatever the working directory holds: `-m` and `-c` would put
        # the working directory first on the child's path, where another `search` may be.
        root = str(Path(__file__).resolve().parents[2])
        code = (
            f"import sys; sys.path[0] = {root!r}; from search.tracking.process import main; main()"
        )
        self._child = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._reader = threading.Thread(target=self._read, name="mlflow-replies", daemon=True)
        self._reader.start()
        # Sending never waits on the child: a full pipe blocks this thread, not training.
        self._outbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._write, name="mlflow-sender", daemon=True)
        self._sender.start()
        self._send(("open", tracking_uri, experiment, artifact_root))

    # ------------------------------------------------------------ the Tracker interface

    @property
    def experiment_id(self) -> str:
        return self._wait("experiment") or ""

    def study_run(
        self,
        study: str,
        *,
        run_id: str | None,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> str:
        return self._create(
            "study_run",
            study,
            run_id=run_id,
            tags=dict(tags),
            params=dict(params or {}),
            files=dict(files or {}),
        )

    def child_run(self, parent_id: str, name: str, *, role: str, tags: Mapping[str, str]) -> str:
        return self._create("child_run", parent_id, name, role=role, tags=dict(tags))

    def end(self, run_id: str, status: str = "FINISHED", *, reason: str | None = None) -> None:
        self._call("end", run_id, status, reason=reason)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        series: Iterable[tuple[str, int, float]] = (),
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        self._call(
            "log",
            run_id,
            params=dict(params or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            series=list(series),
            tags=dict(tags or {}),
        )

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self._call("log_text", run_id, text, path)

    def log_json(self, run_id: str, obj: Any, path: str) -> None:
        self.log_text(run_id, json.dumps(obj, indent=2, default=str), path)

    def resolve(self, run_id: str, *, wait: bool = True) -> str | None:
        """MLflow's id of a run this tracker created: waits until the child has it, or
        (`wait=False`) None if the child has not reported it yet."""
        if not pending(run_id):
            return run_id
        if not wait:
            with self._cv:
                return self._ids.get(run_id)
        return self._wait(run_id)

    def flush(self) -> None:
        """Wait until the child has carried out every call sent so far."""
        self._sync()
        with self._cv:
            self._raise_fatal()

    def close(self) -> None:
        """Wait for every write, then let the child exit (its failure is not raised here)."""
        if self._closed:
            return
        self._sync()
        self._closed = True
        self._outbox.put(None)
        self._sender.join()
        self._child.wait()

    def _wait(self, key: str) -> str | None:
        """What the child reported for `key` (a handle, or "experiment")."""
        with self._cv:
            self._cv.wait_for(lambda: key in self._ids or self._dead or bool(self._fatal))
            self._raise_fatal()
            return self._ids.get(key)

    def _sync(self) -> None:
        if self._closed:
            return
        self._sent_syncs += 1
        wanted = self._sent_syncs
        self._send(("sync", wanted))
        with self._cv:
            self._cv.wait_for(lambda: self._synced >= wanted or self._dead)

    # ------------------------------------------------------------ the wire

    def _create(self, method: str, *args: Any, **kwargs: Any) -> str:
        handle = f"{HANDLE}{next(self._counter)}"
        self._send(("call", method, handle, args, kwargs))
        return handle

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        self._send(("call", method, None, args, kwargs))

    def _send(self, message: tuple[Any, ...]) -> None:
        if not (self._dead or self._closed):
            self._outbox.put(message)

    def _write(self) -> None:
        stream = self._child.stdin
        assert stream is not None
        with contextlib.suppress(OSError):
            while (message := self._outbox.get()) is not None:
                try:
                    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # a value that cannot travel: that write only
                    log.warning("an MLflow write failed: %s: %s", type(exc).__name__, exc)
                    continue
                stream.write(data)
                stream.flush()
            stream.close()  # the child's end of its loop
            return
        self._gone("the MLflow process stopped")

    def _read(self) -> None:
        stream = self._child.stdout
        assert stream is not None
        while True:
            try:
                kind, *rest = pickle.load(stream)
            except (EOFError, OSError, pickle.UnpicklingError):
                self._gone("the MLflow process stopped")
                return
            with self._cv:
                if kind == "id":
                    self._ids[rest[0]] = rest[1]
                elif kind == "synced":
                    self._synced = max(self._synced, rest[0])
                elif kind == "fatal":
                    self._fatal = rest[0]
                self._cv.notify_all()
            if kind == "warning":
                log.warning("an MLflow write failed: %s", rest[0])

    def _gone(self, why: str) -> None:
        with self._cv:
            if not self._dead and not self._closed:
                log.warning("%s: the rest of this search is not logged to MLflow", why)
            self._dead = True
            self._cv.notify_all()

    def _raise_fatal(self) -> None:
        if self._fatal:
            raise SearchFailed(f"MLflow tracking store {self.tracking_uri}: {self._fatal}")


# ---------------------------------------------------------------- the child


def serve(requests: IO[bytes], replies: IO[bytes]) -> None:
    """Carry out the parent's calls in order until its end of the pipe closes."""
    from search.tracking.runs import Tracker  # MLflow: in the child only, never the parent

    tracker: Tracker | None = None
    ids: dict[str, str | None] = {}

    def reply(*message: Any) -> None:
        pickle.dump(message, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()

    def real(value: Any) -> Any:
        return ids.get(value, value) if isinstance(value, str) else value

    while True:
        try:
            message = pickle.load(requests)
        except EOFError:
            return
        kind = message[0]
        if kind == "open":
            try:
                tracker = Tracker(*message[1:3], artifact_root=message[3], background=False)
                reply("id", "experiment", tracker.experiment_id)
            except Exception as exc:  # a bad URI, an unreachable server
                reply("fatal", f"{type(exc).__name__}: {exc}")
        elif kind == "sync":
            reply("synced", message[1])
        elif kind == "call":
            _, method, handle, args, kwargs = message
            result = None
            if tracker is not None:  # else the store never opened: "fatal" said why
                try:
                    result = getattr(tracker, method)(*(real(a) for a in args), **kwargs)
                except Exception as exc:
                    reply("warning", f"{method}: {type(exc).__name__}: {exc}")
                for text in tracker.take_warnings():
                    reply("warning", text)
            if handle is not None:
                ids[handle] = result
                reply("id", handle, result)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the search; we drain, then exit
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read at MLflow's import
    logging.getLogger("alembic").setLevel(logging.WARNING)  # an unseeded store's migrations
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # what MLflow and its libraries print must not reach the wire
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, replies)
    replies.close()
    sys.stderr.flush()
    os._exit(0)  # every write is committed; MLflow's and SQLAlchemy's shutdown takes 0.5 s


if __name__ == "__main__":
    main()
