"""The study's MLflow parent run through its life: created (or reopened) with the study's
settings and its test split, its id kept in the study, its trials' runs under it, closed
with the counts and the best trial."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from search.attrs import Study, Trial
from search.prepare import Prepared
from search.space.file import ran_text
from search.study import counts
from search.tracking.environment import environment_tags
from search.tracking.recorder import RunRecorder, TrialRecorder
from search.tracking.runs import RunWriter, Tracker


class StudyRecorder(RunRecorder):
    """The study's parent run, written through either writer; every trial's run starts
    here (`trial`), so `search run` and pool workers record trials the same way."""

    def __init__(self, writer: RunWriter, run: str) -> None:
        super().__init__(writer, run)
        self._remembered = False

    @classmethod
    def start(
        cls,
        writer: RunWriter,
        study: str,
        *,
        run_id: str | None = None,
        tags: Mapping[str, str],
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> StudyRecorder:
        """Reopen study `study`'s run `run_id` (MLflow's id), or the study's run a process
        that died before naming it left; else create it with `tags`, `params` and the
        texts `files` maps from artifact path."""
        run = writer.study_run(study, run_id=run_id, tags=tags, params=params, files=files)
        return cls(writer, run)

    @property
    def tracking_uri(self) -> str:
        return self._writer.tracking_uri

    @property
    def experiment_id(self) -> str:
        """The study's MLflow experiment (waits for a `TrackingProcess` to open it)."""
        return self._writer.experiment_id

    def trial(
        self, number: int, *, tags: Mapping[str, str], params: Mapping[str, Any]
    ) -> TrialRecorder:
        """Start trial `number`'s run under the study's, with `tags` and flat `params`."""
        run = self._child(f"trial-{number}", role="trial", tags=tags)
        recorder = TrialRecorder(self._writer, run)
        recorder.log(params=params)
        return recorder

    def remember(self, study: optuna.Study, trial: FrozenTrial | None = None) -> None:
        """Store the parent run's and the experiment's ids in `study` (a study callback):
        waits for the run's id once; once stored, neither waits nor reads the storage."""
        if self._remembered:
            return
        run_id = self.run_id()
        if run_id is None:  # the writer's process died: nothing to store
            return
        if study.user_attrs.get(Study.RUN_ID) != run_id:
            study.set_user_attr(Study.RUN_ID, run_id)
            study.set_user_attr(Study.EXPERIMENT_ID, self.experiment_id)
        self._remembered = True

    def close(self, study: optuna.Study, status: str) -> None:
        """End the run with `status`, the study's counts and best trial; wait for every
        write sent so far."""
        c = counts(study)
        metrics = {f"trials_{k}": float(v) for k, v in c.items()}
        try:
            best = study.best_trial
            metrics["best_score"] = float(best.value or 0.0)
            metrics["best_trial"] = float(best.number)
        except ValueError:
            best = None
        self.log(metrics=metrics)
        if best is not None:
            self.log_json(
                {
                    "number": best.number,
                    "value": best.value,
                    "params": best.user_attrs.get(Trial.PARAMS, best.params),
                },
                "best_trial.json",
            )
        self._writer.end(self._run, status)
        self.flush()

    def flush(self) -> None:
        """Wait until every write sent so far through this run's writer is in the store."""
        self._writer.flush()


def open_study_run(writer: RunWriter, study: optuna.Study, prep: Prepared) -> StudyRecorder:
    """Reopen the study's MLflow parent run, or create it with the study's settings.

    Its id is not stored in the study yet (`StudyRecorder.remember`): a `TrackingProcess`
    creates the run in the background, and `run_search` stores it after the first trial
    instead of waiting for MLflow's start.
    """
    space, data, split = prep.space, prep.data, prep.split
    return StudyRecorder.start(
        writer,
        study.study_name,
        run_id=study.user_attrs.get(Study.RUN_ID),
        tags={"search.data_fingerprint": data.fingerprint, **environment_tags()},
        params=_study_params(prep),
        files={
            "space.yaml": ran_text(space),
            "test_split.json": json.dumps(
                {"seed": split.seed, "test": split.test.tolist(), "fingerprint": data.fingerprint},
                indent=2,
            ),
        },
    )


def parent_run(tracker: Tracker, study: optuna.Study, prep: Prepared) -> str:
    """Reopen or create the study's parent run in this process, store its id and the
    experiment's in the study; its MLflow id."""
    recorder = open_study_run(tracker, study, prep)
    recorder.remember(study)
    return recorder.run_id() or ""


def reopen_study_run(
    tracking_uri: str, experiment: str, run_id: str, *, artifact_root: Path
) -> StudyRecorder:
    """The study's parent run `run_id` in experiment `experiment`, marked RUNNING, to
    record more trials under, written in this process (a pool worker's)."""
    tracker = Tracker(tracking_uri, experiment, artifact_root=artifact_root)
    if tracker.reader.status(run_id) != "RUNNING":
        tracker.set_status(run_id, "RUNNING")
    return StudyRecorder(tracker, run_id)


def close_parent(tracker: Tracker, run_id: str, study: optuna.Study, status: str) -> None:
    """End the study's parent run `run_id` (`StudyRecorder.close`)."""
    StudyRecorder(tracker, run_id).close(study, status)


def _study_params(prep: Prepared) -> dict[str, object]:
    """The study's settings as its run's parameters: data, test split, validation, search."""
    space, data, split = prep.space, prep.data, prep.split
    return {
        "data.source": space.data.source,
        "data.task": data.task,
        "data.rows": len(data.y),
        "data.dropped_rows": data.dropped_rows,
        "data.features": data.X.shape[1],
        **{
            f"data.columns.{col}": kind
            for col, kind in prep.columns.items()
            if kind not in ("number", "onehot")
        },
        "test.rows": len(split.test),
        "test.seed": split.seed,
        "test.source": space.data.test_source or "held out of data.source",
        "test.digest": split.digest(),
        "validation.scheme": space.validation.scheme,
        "validation.folds": len(prep.folds),
        "sampler": space.study.sampler,
        "pruner": type(prep.pruner).__name__,
        "metric": space.objective.metric,
        "direction": space.direction,
    }
