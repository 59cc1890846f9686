"""What a trial records in MLflow, typed: its run, its folds' runs, and how each ended.

A `TrialRecorder` (and the `FoldRecorder`s it makes) writes through either writer: the
in-process `Tracker` (pool workers) or the `TrackingProcess` child (`search run`). The
run it writes to is known to it alone: a `TrackingProcess` creates runs in the background
and hands back a placeholder until MLflow's id is known, and no placeholder leaves this
package. What a caller gets back is MLflow's run id, from `run_id()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from search.tracking.runs import RunWriter

__all__ = ["FoldRecorder", "RunRecorder", "TrialEnd", "TrialRecorder"]

TrialEnd = Literal["COMPLETE", "PRUNED", "FAILED", "INTERRUPTED"]
"""How a trial ended: its `search.state` tag."""

STATUS: dict[TrialEnd, str] = {
    "COMPLETE": "FINISHED",
    "PRUNED": "FINISHED",  # stopped on purpose: FINISHED, its state in the tag
    "FAILED": "FAILED",
    "INTERRUPTED": "KILLED",  # Ctrl-C, SIGTERM, a pool's stop
}
"""The MLflow status of a run that ended so."""

STATE = "search.state"
REASON = "search.reason"


class RunRecorder:
    """One MLflow run, written through a `RunWriter`: values, tags, texts, JSON files."""

    def __init__(self, writer: RunWriter, run: str) -> None:
        self._writer = writer
        self._run = run  # MLflow's id, or the writer's placeholder for it: never handed out

    def log(
        self,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        series: Iterable[tuple[str, int, float]] = (),
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        """Log params, last-value metrics, `(key, step, value)` series and tags."""
        self._writer.log(self._run, params=params, metrics=metrics, series=series, tags=tags)

    def log_text(self, text: str, path: str) -> None:
        """Write `text` as the run's artifact at `path`."""
        self._writer.log_text(self._run, text, path)

    def log_json(self, obj: Any, path: str) -> None:
        """Write `obj` as indented JSON, the run's artifact at `path`."""
        self._writer.log_json(self._run, obj, path)

    def run_id(self, *, wait: bool = True) -> str | None:
        """MLflow's id of this run. `wait=False`: None while the writer does not know it
        yet; `wait=True`: waits for it (None only when the writer's process has died;
        `SearchFailed` when its store could not be opened)."""
        return self._writer.resolve(self._run, wait=wait)

    def _child(self, name: str, *, role: str, tags: Mapping[str, str]) -> str:
        return self._writer.child_run(self._run, name, role=role, tags=tags)


class FoldRecorder(RunRecorder):
    """A fold's run, under its trial's run."""

    def end(self, *, pruned: bool = False) -> None:
        """End the fold's run FINISHED; a fold the pruner stopped also tagged PRUNED."""
        if pruned:
            self.log(tags={STATE: "PRUNED"})
        self._writer.end(self._run, "FINISHED")

    def fail(self, reason: str) -> None:
        """End the fold's run FAILED with `reason`."""
        self._writer.end(self._run, "FAILED", reason=reason)


class TrialRecorder(RunRecorder):
    """A trial's run, under its study's run, and its folds' runs under it."""

    def fold(self, name: str, *, tags: Mapping[str, str]) -> FoldRecorder:
        """Start a fold's run named `name`, with `tags`."""
        return FoldRecorder(self._writer, self._child(name, role="fold", tags=tags))

    def end(
        self, state: TrialEnd, *, reason: str | None = None, duration_s: float | None = None
    ) -> None:
        """End the trial's run: `state` as its `search.state` tag, the status that state
        means in MLflow (`STATUS`), `reason` as its `search.reason` tag, and `duration_s`
        (when given) as a metric."""
        metrics = None if duration_s is None else {"duration_s": duration_s}
        self.log(metrics=metrics, tags={STATE: state})
        self._writer.end(self._run, STATUS[state], reason=reason)
