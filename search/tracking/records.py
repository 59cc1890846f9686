"""What runs recorded, read back from a tracking store: a run, its fold runs, its texts."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from search.errors import InputError
from search.redact import mask_password
from search.tracking.tags import ROLE


class RunReader:
    """Reads the runs of one tracking store (MLflow's `Run` entities, as they are)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)

    def run(self, run_id: str) -> Any:
        """The run; InputError when the store has none of that id."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            where = mask_password(self.tracking_uri)
            raise InputError(f"run {run_id!r} not found in {where}") from None

    def folds(self, run_id: str) -> list[Any]:
        """The fold runs under a trial run."""
        run = self.client.get_run(run_id)
        found = self.client.search_runs(
            [run.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{run_id}'",
            max_results=1000,
        )
        return [r for r in found if r.data.tags.get(ROLE) == "fold"]

    def text(self, run_id: str, path: str) -> str:
        """A text artifact of the run; InputError when it has none at `path`."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(run_id, path, tmp)
            except (MlflowException, OSError):
                raise InputError(
                    f"run {run_id} has no {path} artifact; it cannot be reproduced"
                ) from None
            return Path(local).read_text()

    def status(self, run_id: str) -> str:
        """RUNNING, SCHEDULED, FINISHED, FAILED or KILLED."""
        return str(self.client.get_run(run_id).info.status)

    def running(self, experiment_id: str) -> list[Any]:
        """The experiment's runs still RUNNING."""
        found: list[Any] = self.client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'"
        )
        return found

    def history(self, run_id: str, key: str) -> list[Any]:
        """A metric's values, with their steps, as logged."""
        found: list[Any] = self.client.get_metric_history(run_id, key)
        return found

    def latest(self, experiment_id: str, role: str) -> Any | None:
        """The newest run of a role (`selection`, ...) in the experiment, or None."""
        found = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{ROLE}` = '{role}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return found[0] if found else None
